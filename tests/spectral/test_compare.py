"""compare() on exact and random inputs: the metrics reach their ideal and reference values."""

import numpy as np
import pytest

from niso_geom import SphereGrid, TorusGrid
from niso_geom.harmonics.sphere import lmax_for
from niso_geom.harmonics.wigner import random_rotation, wigner_D_blocks
from niso_geom.spectral.compare import block_energy, compare, random_block_energy


def _shift_taus(t, eb, rng, n=4):
    return np.stack([eb.project(t.shift(eb.evecs, *t.sample_transform(rng))) for _ in range(n)])


def test_torus_analytic_basis_is_ideal(rng):
    t = TorusGrid(8, 8, stencil="9pt")
    eb = t.analytic_eigenbasis()
    rep = compare(eb.evecs, eb.evals, eb.mass, eb, taus=_shift_taus(t, eb, rng), generators=t.generators())
    assert rep["purity_mean"] == pytest.approx(1.0, abs=1e-12)
    # rounding-level differences inside an eigenspace break ties, so Spearman is 1 only to ~1e-3
    assert rep["eigenvalue_spearman"] == pytest.approx(1.0, abs=1e-3)
    assert rep["tau_block_energy"] == pytest.approx(1.0, abs=1e-12)
    assert rep["commutator"] < 1e-12
    assert rep["multiplicity"] == rep["analytic_multiplicity"] == [1, 4, 4, 4, 8, 4, 4, 8, 8, 4, 15]
    assert rep["multiplicity_match"] == 1.0
    assert rep["eigenvalue_scale_fit_error"] < 1e-12
    assert rep["mass_correlation"] is None and rep["mass_cv"] == 0
    assert rep["tau_block_energy_random"] < 0.2


def test_torus_random_basis_gives_random_reference(rng):
    t = TorusGrid(8, 8, stencil="9pt")
    eb = t.analytic_eigenbasis()
    q, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    phi = eb.evecs @ q  # M-orthonormal but mixing all eigenspaces
    lam = np.sort(rng.uniform(0, 4, 64))
    rep = compare(phi, lam, eb.mass, eb, taus=_shift_taus(t, eb, rng, 8) , generators=t.generators())
    assert rep["purity_mean"] < 0.5
    taus = np.stack([phi.T @ (eb.mass[:, None] * t.shift(phi, *t.sample_transform(rng))) for _ in range(8)])
    rep = compare(phi, lam, eb.mass, eb, taus=taus, generators=t.generators())
    assert rep["tau_block_energy"] == pytest.approx(rep["tau_block_energy_random"], abs=0.1)
    assert rep["commutator"] > 0.3
    assert abs(rep["eigenvalue_spearman"]) < 0.5


def test_block_energy_reference_matches_expectation():
    labels = np.repeat(np.arange(4), [1, 3, 5, 7])
    # E[Σ_same τ²]/K for Haar Q is Σ n_j² / K²
    expected = np.sum(np.array([1, 3, 5, 7]) ** 2) / 16**2
    assert random_block_energy(labels, samples=200) == pytest.approx(expected, abs=0.02)
    assert block_energy(np.eye(16)[None], labels) == 1.0


def test_sphere_harmonics_give_zero_wigner_error(rng):
    g = SphereGrid.driscoll_healy(8)
    eb = g.analytic_eigenbasis(64)
    Rs = np.stack([random_rotation(rng) for _ in range(3)])
    taus = np.stack([wigner_D_blocks(7, R) for R in Rs])
    spaces = eb.eigenspaces()
    rep = compare(eb.evecs, eb.evals, eb.mass, eb, taus=taus,
                  sphere={"degrees": np.arange(8), "harmonics": g.harmonics(7), "rotations": Rs})
    assert rep["multiplicity"] == [1, 3, 5, 7, 9, 11, 13, 15] and len(spaces) == 8
    assert rep["wigner_error"] < 1e-10 and rep["tau_block_energy"] == pytest.approx(1.0)
    assert rep["mass_correlation"] == pytest.approx(1.0)
    # a learned block that is a rotated copy of the SH (Φ_l = Y_l Q) still matches once aligned
    q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    phi = eb.evecs.copy()
    phi[:, 4:9] = phi[:, 4:9] @ q
    taus_q = taus.copy()
    taus_q[:, 4:9, 4:9] = np.einsum("ji,tjk,kl->til", q, taus[:, 4:9, 4:9], q)
    rep = compare(phi, eb.evals, eb.mass, eb, taus=taus_q,
                  sphere={"degrees": np.arange(8), "harmonics": g.harmonics(7), "rotations": Rs})
    assert rep["wigner_error"] < 1e-10 and lmax_for(64) == 7


def test_visible_mass_ignores_what_the_basis_cannot_see(rng):
    from niso_geom.spectral.compare import mass_correlation, visible_mass_correlation, visible_mass_projector

    g = SphereGrid.driscoll_healy(8)
    Y = g.analytic_eigenbasis(64).evecs
    P = visible_mass_projector(Y)
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    assert 100 < round(np.trace(P)) < g.n  # 16×16 grid, degrees ≤ 7: a null space of masses exists
    hidden = (np.eye(g.n) - P) @ rng.standard_normal(g.n)
    np.testing.assert_allclose(Y.T @ (hidden[:, None] * Y), 0, atol=1e-10)  # invisible to every Gram entry
    w = g.mass
    moved = w + 0.3 * w.mean() * hidden
    assert mass_correlation(moved, w) < 0.97
    assert visible_mass_correlation(moved, w, Y) == pytest.approx(1.0, abs=1e-12)
    seen = w + 0.3 * w.mean() * (P @ rng.standard_normal(g.n))
    assert visible_mass_correlation(seen, w, Y) < 0.99
    assert visible_mass_correlation(np.ones(g.n), np.ones(g.n), Y) is None  # constant reference
    assert visible_mass_correlation(moved, w, Y, max_points=g.n - 1) is None  # too large to decompose
