"""Pose head, SO(3) lifts, geodesic errors and closed-form recovery of R from Wigner-D (niso_geom.niso.pose)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from niso_geom.harmonics.sphere import real_sph_harm
from niso_geom.harmonics.wigner import random_rotation, wigner_D, wigner_D_all
from niso_geom.niso.pose import (
    PoseHead,
    SkipMLP,
    chordal_loss,
    geodesic_angle,
    geodesic_deg,
    gram_schmidt_6d,
    haar_mean_deg,
    haar_median_deg,
    orientation_loss,
    rotation_from_coefficients,
    rotation_from_wigner,
    special_orthogonalize,
)

F64 = torch.float64


def _is_rotation(R: torch.Tensor, tol: float) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert (R.mT @ R - eye).abs().max() < tol
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=tol, rtol=0)


@pytest.mark.parametrize("rep", ["9d", "6d"])
def test_head_returns_rotations_with_finite_gradients(rep):
    torch.manual_seed(0)
    head = PoseHead((6, 6), features=16, num_layers=4, rep=rep).double()
    x = torch.randn(5, 6, 6, dtype=F64)
    R = head(x)
    assert R.shape == (5, 3, 3)
    _is_rotation(R, 1e-10)
    target = torch.from_numpy(random_rotation(0, 5))
    loss = orientation_loss(target, R) + chordal_loss(target, R)
    loss.backward()
    grads = [p.grad for p in head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    with pytest.raises(ValueError, match="PoseHead expects"):
        head(torch.randn(5, 36, dtype=F64))


def test_svd_lift_fixes_the_determinant_and_is_the_nearest_rotation():
    R = torch.from_numpy(random_rotation(1, 4))
    torch.testing.assert_close(special_orthogonalize(R.reshape(4, 9)), R)  # rotations are fixed points
    reflected = R * torch.tensor([1.0, 1.0, -1.0], dtype=F64)  # det −1: the lift must return det +1
    _is_rotation(special_orthogonalize(reflected), 1e-12)
    noisy = R + 0.05 * torch.randn(4, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    lifted = special_orthogonalize(noisy)
    _is_rotation(lifted, 1e-12)
    assert float(geodesic_deg(lifted, R).max()) < 10.0
    # gradient through repeated singular values (the identity) stays finite
    m = torch.eye(3, dtype=F64).reshape(9).requires_grad_()
    special_orthogonalize(m).sum().backward()
    assert torch.isfinite(m.grad).all()


def test_gram_schmidt_lift_matches_the_reference_construction():
    R = torch.from_numpy(random_rotation(2, 3))
    six = torch.cat([3.0 * R[..., :, 0], R[..., :, 1] + 0.3 * R[..., :, 0]], dim=-1)  # first two columns, skewed
    torch.testing.assert_close(gram_schmidt_6d(six), R)


def test_skip_mlp_shapes_and_layer_split():
    net = SkipMLP(10, 8, 9, num_layers=5)
    assert len(net.first.layers) == 3 and len(net.second.layers) == 2
    assert net(torch.randn(4, 10)).shape == (4, 9)
    with pytest.raises(ValueError, match="num_layers >= 2"):
        SkipMLP(10, 8, 9, num_layers=1)


def test_geodesic_angle_zero_pi_and_known_angles():
    R = random_rotation(3, 6)
    np.testing.assert_allclose(geodesic_angle(R, R), 0.0, atol=1e-7)
    half_turn = np.diag([1.0, -1.0, -1.0])  # 180° about x
    assert geodesic_angle(np.eye(3), half_turn) == pytest.approx(math.pi, abs=1e-12)
    assert geodesic_deg(R[0], R[0] @ half_turn) == pytest.approx(180.0, abs=1e-6)
    c, s = math.cos(0.3), math.sin(0.3)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    assert geodesic_angle(R[1], R[1] @ Rz) == pytest.approx(0.3, abs=1e-12)  # right-invariant
    out = geodesic_angle(torch.from_numpy(R), torch.from_numpy(R[::-1].copy()))
    assert isinstance(out, torch.Tensor) and out.shape == (6,)


def test_haar_chance_levels_match_sampling():
    assert haar_median_deg() == pytest.approx(132.346, abs=1e-3)  # θ − sin θ = π/2
    assert haar_mean_deg() == pytest.approx(126.476, abs=1e-3)  # π/2 + 2/π
    R = random_rotation(4, 20_000)
    e = geodesic_deg(np.broadcast_to(np.eye(3), R.shape).copy(), R)
    assert abs(np.median(e) - haar_median_deg()) < 1.5 and abs(e.mean() - haar_mean_deg()) < 1.0


def test_rotation_from_wigner_recovers_a_known_rotation():
    R = random_rotation(5, 4)
    tau = wigner_D_all(3, R)  # exact block-diagonal Wigner-D in the real-SH basis, K = 16
    np.testing.assert_allclose(rotation_from_wigner(tau, project=False), R, atol=1e-8)
    np.testing.assert_allclose(rotation_from_wigner(tau), R, atol=1e-8)
    # the degree-1 block alone, from e3nn's D (independent of the quadrature construction)
    full = np.zeros((4, 4))
    full[0, 0] = 1.0
    full[1:, 1:] = wigner_D(1, R[0])
    np.testing.assert_allclose(rotation_from_wigner(full), R[0], atol=1e-8)
    t = rotation_from_wigner(torch.from_numpy(tau))
    assert isinstance(t, torch.Tensor)
    with pytest.raises(ValueError, match="K ≥ 4"):
        rotation_from_wigner(np.eye(3))


def test_rotation_from_coefficients_of_an_exact_pair():
    rng = np.random.default_rng(6)
    R = random_rotation(rng, 3)
    c = rng.standard_normal((3, 9, 5))  # degree ≤ 2, five channels
    Dc = wigner_D_all(2, R) @ c
    np.testing.assert_allclose(rotation_from_coefficients(c, Dc), R, atol=1e-8)
    # consistency with point values: Y(Rᵀp) c = Y(p) D(R) c
    p = rng.standard_normal((7, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(real_sph_harm(2, p @ R[0]) @ c[0], real_sph_harm(2, p) @ Dc[0], atol=1e-10)
