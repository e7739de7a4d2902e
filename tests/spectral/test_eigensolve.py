"""The eigensolver's strategies agree, and failures are explained."""

import numpy as np
import pytest
import scipy.sparse as sp

from niso_geom import TriMesh
from niso_geom.errors import EigenSolveError
from niso_geom.spectral import Eigenbasis, cluster_eigenvalues, eigensolve


@pytest.fixture(scope="module")
def ops():
    m = TriMesh.icosphere(3)
    return m.stiffness, m.mass


def test_strategies_agree(ops):
    S, M = ops
    # k = 16 ends at a spectral gap (degrees 0..3 of the icosphere: 1 + 3 + 5 + 7); a k that
    # cuts through a cluster (k = 20 inside degree 4's 4 + 5 split, a 0.2% gap) may return a
    # copy from either side of the cut
    ref = eigensolve(S, M, 16, method="dense")
    for method in ("shift-invert", "lobpcg"):
        eb = eigensolve(S, M, 16, method=method)
        np.testing.assert_allclose(eb.evals, ref.evals, rtol=1e-7, atol=1e-9)
        assert eb.orthonormality_error() < 1e-10
        # same subspaces (signs and rotations within eigenspaces are arbitrary)
        overlap = ref.evecs.T @ (M[:, None] * eb.evecs)
        assert np.allclose(np.linalg.svd(overlap[:16, :16], compute_uv=False), 1, atol=1e-5)


def test_bad_mass_and_nan_stiffness_are_reported(ops):
    S, M = ops
    bad = M.copy()
    bad[5] = 0
    with pytest.raises(EigenSolveError, match=r"mass\[5\] = 0"):
        eigensolve(S, bad, 4)
    Sn = S.tolil(copy=True)
    Sn[3, 3] = np.nan
    with pytest.raises(EigenSolveError, match="row 3"):
        eigensolve(Sn.tocsr(), M, 4)


def test_all_strategies_failing_gives_diagnostics(ops, monkeypatch):
    import niso_geom.spectral.solve as mod

    def boom(*a, **k):
        raise RuntimeError("factor is exactly singular")

    monkeypatch.setattr(mod, "_shift_invert", boom)
    monkeypatch.setattr(mod, "_lobpcg", boom)
    S, M = ops
    with pytest.raises(EigenSolveError, match="all eigensolver strategies failed.*Diagnostics: N=642"):
        eigensolve(S, M, 4, method="auto", dense_max=10)


def test_retry_with_growing_shift(ops, monkeypatch):
    import niso_geom.spectral.solve as mod

    calls = []
    real = mod._shift_invert

    def flaky(S, M, k, sigma, tol, rng):
        calls.append(sigma)
        if len(calls) < 3:
            raise RuntimeError("Factor is exactly singular")
        return real(S, M, k, sigma, tol, rng)

    monkeypatch.setattr(mod, "_shift_invert", flaky)
    S, M = ops
    eb = eigensolve(S, M, 6, method="shift-invert")
    assert len(calls) == 3 and abs(calls[2]) > abs(calls[1]) > abs(calls[0])
    assert len(eb.info["attempts"]) == 2 and eb.orthonormality_error() < 1e-10


def test_cluster_and_basis_helpers():
    assert [len(c) for c in cluster_eigenvalues(np.array([0, 1, 1 + 1e-9, 2, 2, 2]))] == [1, 2, 3]
    with pytest.raises(ValueError):
        cluster_eigenvalues(np.array([2.0, 1.0]))
    eb = Eigenbasis(np.array([0.0, 1.0]), np.eye(3)[:, :2], np.ones(3))
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(eb.project(x), x[:2])
    np.testing.assert_array_equal(eb.reconstruct(eb.project(x))[:2], x[:2])
    with pytest.raises(ValueError):
        Eigenbasis(np.zeros(2), np.zeros((3, 3)), np.ones(3))
    assert sp.issparse(TriMesh.icosphere(1).stiffness)


def test_an_indefinite_operator_is_an_error_naming_the_fix_not_a_clipped_spectrum():
    path = sp.diags([[-1.0] * 5, [1.0, 2, 2, 2, 2, 1], [-1.0] * 5], [-1, 0, 1]).tocsr()  # PSD, one zero mode
    eb = eigensolve(path, np.ones(6), 3)
    assert 0.0 <= eb.evals[0] < 1e-12 and eb.evals[1] > 0.2  # rounding-level negatives are set to 0
    with pytest.raises(EigenSolveError, match=r"2 eigenvalue\(s\) below 0 .*min -0\.5.*laplacian='robust'"):
        eigensolve(path - 0.5 * sp.eye(6), np.ones(6), 3)
