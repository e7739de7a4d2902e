"""Eigenvalue clusters and the rotation of a cluster onto the principal axes of the signals."""

from __future__ import annotations

import math

import pytest
import torch

from niso_geom.niso.cluster_pca import eigenvalue_clusters, rotate_clusters_to_principal_axes
from niso_geom.niso.operator import orthonormality_error
from tests.conftest import operator_with_basis

F64 = torch.float64


def test_clusters_are_runs_of_small_gaps_cut_to_size():
    evals = torch.tensor([0.0, 0.1, 0.15, 2.0, 4.0, 4.2, 4.3, 4.35, 4.4, 9.0])
    assert eigenvalue_clusters(evals, 0.5) == [[0, 1, 2], [4, 5, 6, 7, 8]]
    assert eigenvalue_clusters(evals, 0.5, max_size=2) == [[0, 1], [4, 5], [6, 7]]  # lone 2 and 8 dropped
    assert eigenvalue_clusters(evals, 0.01) == []
    with pytest.raises(ValueError, match="gap"):
        eigenvalue_clusters(evals, 0.0)
    with pytest.raises(ValueError, match="max_size"):
        eigenvalue_clusters(evals, 0.5, max_size=1)


def test_a_mixed_pair_is_unmixed_and_nothing_else_changes():
    """Four orthonormal vectors of powers 4, 3, 2, 1 with the middle two mixed at 45° inside a
    cluster: the rotation restores the pure vectors (highest power first), keeps Λ, M and
    Φᵀ M Φ = I, leaves the vectors outside clusters alone, and rotates Adam's first moments."""
    n = 6
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=F64))
    pure = q[:, :4]
    powers = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=F64)
    moment = pure @ torch.diag(powers) @ pure.T  # signals with these principal axes
    mixed = pure.clone()
    mixed[:, 1], mixed[:, 2] = (pure[:, 1] + pure[:, 2]) / math.sqrt(2), (pure[:, 1] - pure[:, 2]) / math.sqrt(2)
    evals = torch.tensor([0.0, 5.0, 5.1, 9.0], dtype=F64)
    op = operator_with_basis(mixed, evals)
    before = op()
    assert torch.allclose(before.phi, mixed, atol=1e-10)
    opt = torch.optim.AdamW(op.parameters(), lr=1e-3)
    snapshot = {k: v.clone() for k, v in op.state_dict().items()}
    op().phi.square().mul(torch.arange(4.0, dtype=F64)).sum().backward()
    opt.step()
    op.load_state_dict(snapshot)  # undo the step, keep Adam's moments
    avg = opt.state[op.phi_raw]["exp_avg"].clone()
    assert rotate_clusters_to_principal_axes(op, moment, gap=0.5, optimizer=opt) == 1
    after = op()
    assert torch.allclose(after.evals, before.evals) and torch.allclose(after.mass, before.mass)
    assert orthonormality_error(after).item() < 1e-10
    assert torch.allclose(after.phi[:, [0, 3]], pure[:, [0, 3]], atol=1e-10)
    overlap = (after.phi[:, 1:3].T @ pure[:, 1:3]).abs()  # ± the pure vectors, power 3 first
    assert torch.allclose(overlap, torch.eye(2, dtype=F64), atol=1e-10)
    rot = mixed[:, 1:3].T @ after.phi[:, 1:3]
    assert torch.allclose(opt.state[op.phi_raw]["exp_avg"][:, 1:3], avg[:, 1:3] @ rot, atol=1e-12)
    assert rotate_clusters_to_principal_axes(op, moment, gap=0.05) == 0  # no cluster that tight
