"""Real spherical harmonics, quadrature, Wigner-D and rotations on every sphere grid."""

import numpy as np
import pytest

from niso_geom import SphereGrid
from niso_geom.harmonics.sphere import real_sph_harm, sh_degrees, sh_index
from niso_geom.harmonics.wigner import random_rotation, rotation_about_z, wigner_D, wigner_D_blocks

GRIDS = {
    "equiangular-96x192": lambda: SphereGrid.equiangular(96, 192),
    "equiangular-centred": lambda: SphereGrid.equiangular(24, 48, poles=False),
    "driscoll-healy-16": lambda: SphereGrid.driscoll_healy(8),
    "gauss-legendre": lambda: SphereGrid.gauss_legendre(16),
    "healpix-8": lambda: SphereGrid.healpix(8),
}


@pytest.fixture(scope="module", params=list(GRIDS))
def grid(request):
    return GRIDS[request.param]()


def test_quadrature_moments(grid):
    z = grid.points[:, 2]
    assert abs(grid.mass.sum() - 4 * np.pi) < 1e-10
    assert abs(grid.integrate(z)) < 1e-10
    assert abs(grid.integrate(z**2) - 4 * np.pi / 3) < 1e-10
    assert (grid.mass >= 0).all()
    if grid.grid == "driscoll-healy":  # the Driscoll–Healy weight vanishes on the north-pole ring only
        assert (grid.mass[: grid.shape[1]] == 0).all() and (grid.mass[grid.shape[1]:] > 0).all()
    else:
        assert (grid.mass > 0).all()


def test_sh_orthonormal_to_bandlimit(grid):
    L = min(grid.bandlimit, 12)
    Y = grid.harmonics(L)
    G = Y.T @ (grid.mass[:, None] * Y)
    assert np.abs(G - np.eye(len(G))).max() < 1e-10


def test_paper_grids_bandlimits():
    assert SphereGrid.driscoll_healy(8).shape == (16, 16)
    assert SphereGrid.driscoll_healy(8).bandlimit == 7  # K = 64 = (7+1)² harmonics
    g = SphereGrid.equiangular(96, 192)
    assert g.n == 96 * 192 and g.ring_colat[0] == 0 and g.ring_colat[-1] == np.pi


def test_degree_one_is_yzx_and_convention():
    v = np.random.default_rng(1).standard_normal((20, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    Y = real_sph_harm(2, v)
    np.testing.assert_allclose(Y[:, 1:4], np.sqrt(3 / (4 * np.pi)) * v[:, [1, 2, 0]], atol=1e-14)
    np.testing.assert_allclose(Y[:, sh_index(2, -2)], np.sqrt(15 / (4 * np.pi)) * v[:, 0] * v[:, 1], atol=1e-14)
    np.testing.assert_array_equal(sh_degrees(2), [0, 1, 1, 1, 2, 2, 2, 2, 2])


def test_matches_e3nn_with_axis_permutation():
    torch = pytest.importorskip("torch")
    from e3nn import o3

    v = np.random.default_rng(2).standard_normal((30, 3))
    for l in range(6):
        e = o3.spherical_harmonics(l, torch.tensor(v[:, [1, 2, 0]]), normalize=True, normalization="integral")
        np.testing.assert_allclose(e.numpy(), real_sph_harm(l, v)[:, l * l:], atol=1e-12)


def test_wigner_d_rotates_harmonics_and_is_a_representation():
    rng = np.random.default_rng(3)
    R1, R2 = random_rotation(rng), random_rotation(rng)
    v = rng.standard_normal((25, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for l in range(7):
        D = wigner_D(l, R1)
        Y, YR = real_sph_harm(l, v)[:, l * l:], real_sph_harm(l, v @ R1.T)[:, l * l:]
        np.testing.assert_allclose(YR, Y @ D.T, atol=1e-12)
        np.testing.assert_allclose(D @ D.T, np.eye(2 * l + 1), atol=1e-12)
        np.testing.assert_allclose(wigner_D(l, R1 @ R2), D @ wigner_D(l, R2), atol=1e-12)
    # rotations about the polar axis act on (m, −m) pairs by 2D rotations of angle m·α
    D1 = wigner_D(1, rotation_about_z(0.3))
    np.testing.assert_allclose(D1[1, 1], 1.0, atol=1e-14)
    assert wigner_D_blocks(3, R1).shape == (16, 16)


@pytest.mark.parametrize("name", ["equiangular-96x192", "healpix-8"])
def test_wigner_rotation_equals_resampling(name):
    g = GRIDS[name]()
    rng = np.random.default_rng(4)
    lmax = 3
    c = rng.standard_normal((lmax + 1) ** 2)
    f = g.harmonics(lmax) @ c
    R = random_rotation(rng)
    exact = g.rotate(f, R, method="spectral", lmax=lmax)
    resampled = g.rotate(f, R, method="resample")
    # the rotated signal's SH coefficients are D(R) c, both ways
    Dc = wigner_D_blocks(lmax, R) @ c
    np.testing.assert_allclose(g.sh_coefficients(exact, lmax), Dc, atol=1e-10)
    tol = 2e-2 if name.startswith("equiangular") else 0.15  # bilinear O(h²) interpolation
    assert np.linalg.norm(g.sh_coefficients(resampled, lmax) - Dc) / np.linalg.norm(Dc) < tol
    # resampling by a rotation about z by whole cells is exact
    if g.shape is not None:
        k = 5
        Rz = rotation_about_z(2 * np.pi * k / g.shape[1])
        grid_roll = np.roll(f.reshape(g.shape), k, axis=1).ravel()
        np.testing.assert_allclose(g.rotate(f, Rz, method="resample"), grid_roll, atol=1e-12)


def test_spectral_stiffness_is_exact_on_bandlimited(grid):
    L = min(grid.bandlimit, 6)
    S = grid.spectral_stiffness(L)
    eb = grid.analytic_eigenbasis((L + 1) ** 2)
    lhs = S @ eb.evecs
    rhs = (grid.mass[:, None] * eb.evecs) * eb.evals
    assert np.abs(lhs - rhs).max() < 1e-9


def test_sparse_laplacian_approximates_sphere_spectrum():
    g = SphereGrid.equiangular(48, 96)
    eb = g.eigenbasis(25)
    l = sh_degrees(4)
    np.testing.assert_allclose(eb.evals[1:], (l * (l + 1))[1:], rtol=0.02)
    S = g.stiffness
    assert abs(S - S.T).max() < 1e-12 and np.abs(S @ np.ones(g.n)).max() < 1e-10


def test_analytic_basis_beyond_bandlimit_is_refused():
    with pytest.raises(ValueError, match="orthonormal"):
        SphereGrid.driscoll_healy(4).analytic_eigenbasis(64)


def test_healpix_rejects_bad_nside():
    with pytest.raises(ValueError, match="power of 2"):
        SphereGrid.healpix(6)


def test_fast_quadrature_wigner_matches_e3nn():
    from niso_geom.harmonics.wigner import wigner_D_all

    Rs = random_rotation(np.random.default_rng(5), size=3)
    D = wigner_D_all(9, Rs)
    for i in range(3):
        np.testing.assert_allclose(D[i], wigner_D_blocks(9, Rs[i]), atol=1e-12)
