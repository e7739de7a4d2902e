"""Toric Fourier modes are exact eigenpairs of the discrete periodic stencils."""

import numpy as np
import pytest

from niso_geom import TorusGrid
from niso_geom.harmonics.torus import stencil_symbol


@pytest.mark.parametrize("stencil", ["5pt", "9pt"])
@pytest.mark.parametrize("shape,spacing", [((16, 16), 1.0), ((6, 10), 1.0), ((7, 5), 0.5)])
def test_analytic_eigenpairs_are_exact(stencil, shape, spacing):
    t = TorusGrid(*shape, stencil=stencil, spacing=spacing)
    eb = t.analytic_eigenbasis()
    S, M = t.stiffness, t.mass
    resid = S @ eb.evecs - (M[:, None] * eb.evecs) * eb.evals
    assert np.abs(resid).max() < 1e-10
    assert eb.orthonormality_error() < 1e-10
    assert np.all(np.diff(eb.evals) >= -1e-12)
    # the whole spectrum equals a dense numeric solve
    num = t.eigenbasis(t.n, method="dense")
    np.testing.assert_allclose(num.evals, eb.evals, atol=1e-10)


def test_paper_multiplicities_16x16_9pt():
    # docs/algorithm.md §3.1: 37 distinct eigenvalues, ascending multiplicities
    expected = [1, 4, 4, 4, 8, 4, 4, 8, 8, 4, 8, 4, 8, 8, 4, 8, 8, 4, 8, 8, 4, 8, 8, 8, 4, 8, 8, 4, 8, 8, 8, 4,
                8, 8, 8, 4, 31]
    eb = TorusGrid(16, 16, stencil="9pt").analytic_eigenbasis()
    assert eb.multiplicities() == expected
    assert TorusGrid(8, 8, stencil="9pt").analytic_eigenbasis().multiplicities() == [1, 4, 4, 4, 8, 4, 4, 8, 8, 4, 15]


def test_symbols_match_closed_forms():
    a, b = np.meshgrid(np.linspace(0, 2 * np.pi, 7), np.linspace(0, 2 * np.pi, 5))
    np.testing.assert_allclose(stencil_symbol(a, b, "5pt"), 4 - 2 * np.cos(a) - 2 * np.cos(b))
    np.testing.assert_allclose(stencil_symbol(a, b, "9pt"), 4 - (1 + np.cos(a)) * (1 + np.cos(b)))


def test_stiffness_is_psd_and_kills_constants():
    for st in ("5pt", "9pt"):
        S = TorusGrid(9, 12, stencil=st).stiffness
        assert abs(S - S.T).max() == 0
        assert np.abs(S @ np.ones(S.shape[0])).max() < 1e-12
        assert np.linalg.eigvalsh(S.toarray()).min() > -1e-12


def test_shift_group_acts_by_block_rotations(rng):
    t = TorusGrid(12, 12, stencil="9pt")
    eb = t.analytic_eigenbasis()
    for _ in range(3):
        di, dj = t.sample_transform(rng)
        tau = eb.project(t.shift(eb.evecs, di, dj))  # (K, K)
        assert np.abs(tau @ tau.T - np.eye(t.n)).max() < 1e-10
        inside = sum(np.sum(tau[np.ix_(s, s)] ** 2) for s in eb.eigenspaces())
        assert inside / np.sum(tau**2) > 1 - 1e-12
    # shifts commute with the stiffness
    for P in t.generators():
        assert abs(P @ t.stiffness - t.stiffness @ P).max() < 1e-12
    x = rng.standard_normal((t.n, 3))
    np.testing.assert_array_equal(t.shift_matrix(2, 5) @ x, t.shift(x, 2, 5))


def test_bad_torus_arguments():
    with pytest.raises(ValueError, match="stencil"):
        TorusGrid(8, 8, stencil="7pt")
    with pytest.raises(ValueError, match="3"):
        TorusGrid(2, 8)
