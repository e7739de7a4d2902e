"""Shared fixtures: an isolated cache directory, the shared data root, seeded RNGs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from niso_geom.shared_data import data_root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its cache entries to a fresh temporary folder, never the user's cache."""
    monkeypatch.setenv("NISO_GEOM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def shared_root():
    """The shared data folder (../shared/data or $NISO_GEOM_DATA)."""
    return data_root()


@pytest.fixture
def rng():
    seed = int(os.environ.get("NISO_GEOM_TEST_SEED", "0"))
    return np.random.default_rng(seed)


CLOSED_MESHES = ["armadillo.off", "blobby.off", "bull.off", "bunny00.off", "cow.off", "dino.off", "ellipsoid.off",
                 "fandisk.off", "hand.off", "homer.off", "man.off", "sphere966.off", "spot.obj"]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small linear algebra runs fastest on one thread; two threads on a busy 2-core CI box were
    up to 35× slower (see docs/spectra.md)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def operator_with_basis(phi, evals, mass=None):
    """A float64 cumsum ``LearnedOperator`` whose realized Φ is ``phi`` (N, K; M-orthonormal),
    Λ is ``evals`` (K,, ascending) and M is ``mass`` (N,; None: unit mass)."""
    import torch

    from niso_geom.niso.operator import LearnedOperator

    def f64(a):  # a float64 copy (a NumPy array may be read-only, as a domain's mass is)
        if isinstance(a, torch.Tensor):
            return a.detach().to(torch.float64).clone()
        return torch.from_numpy(np.array(a, dtype=np.float64))

    phi, evals = f64(phi), f64(evals)
    n, k = phi.shape
    op = LearnedOperator(n, k, eigenvalue_param="cumsum", dtype=torch.float64)
    with torch.no_grad():
        if mass is None:
            op.mass_raw.fill_(1.0)
        else:  # M = mass_raw² + 1e-8; a zero weight (a Driscoll–Healy pole) stays at 1e-8
            op.mass_raw.copy_((f64(mass) - 1e-8).clamp_min(0).sqrt())
        op.phi_raw.copy_(phi)
        op.evals_raw.copy_(torch.diff(evals, prepend=evals.new_zeros(1)).clamp_min(0).sqrt())
    return op

