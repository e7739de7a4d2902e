"""Sphere grids' rotation group: band-limited generators and transforms against analytic rotations."""

import numpy as np
import pytest

from niso_geom import SphereGrid
from niso_geom.geometry.rotations import axis_rotation
from niso_geom.harmonics.sphere import real_sph_harm, sh_eigenvalues
from niso_geom.harmonics.wigner import random_rotation, wigner_D_all

GRIDS = {
    "driscoll-healy": lambda: SphereGrid.driscoll_healy(6),
    "equiangular": lambda: SphereGrid.equiangular(12),
    "equiangular-centred": lambda: SphereGrid.equiangular(12, poles=False),
    "healpix": lambda: SphereGrid.healpix(4),
}


@pytest.mark.parametrize("kind", GRIDS)
def test_sphere_generators_are_band_limited_rotations(kind, rng):
    g = GRIDS[kind]()
    L = g.bandlimit
    Y, W = g.harmonics(L), g.mass
    gens = g.generators()
    assert len(gens) == 3
    lap = Y @ (sh_eigenvalues(L)[:, None] * (Y.T * W[None, :]))  # analytic Laplacian on the band
    c = rng.standard_normal((Y.shape[1], 4))
    f = Y @ c
    for axis, G in enumerate(gens):
        assert G.shape == (g.n, g.n)
        # orthogonal in the mass inner product on the band: Yᵀ W G Y is orthogonal
        A = Y.T @ (W[:, None] * (G @ Y))
        np.testing.assert_allclose(A @ A.T, np.eye(len(A)), atol=1e-10)
        np.testing.assert_allclose((G @ f).T @ (W[:, None] * (G @ f)), f.T @ (W[:, None] * f), atol=1e-9)
        # commutes with the analytic Laplacian restricted to the band
        assert np.abs(G @ lap - lap @ G).max() < 1e-10 * np.abs(lap).max()
        # and is the rotation by π/8 about the axis: (G f)(p) = f(Rᵀp)
        R = axis_rotation(axis, np.pi / 8)
        np.testing.assert_allclose(G @ f, real_sph_harm(L, g.points @ R) @ c, atol=1e-10)
    G2 = g.generators(lmax=L - 1, angle=np.pi / 3)[2]
    f2 = g.harmonics(L - 1) @ c[: L * L]
    np.testing.assert_allclose(G2 @ f2, real_sph_harm(L - 1, g.points @ axis_rotation(2, np.pi / 3)) @ c[: L * L],
                               atol=1e-10)


@pytest.mark.parametrize("kind", GRIDS)
def test_sphere_transform_of_band_limited_signals_is_the_analytic_rotation(kind, rng):
    g = GRIDS[kind]()
    L = g.bandlimit
    R = g.sample_transform(rng)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    c = rng.standard_normal((2, (L + 1) ** 2, 3))
    x = g.harmonics(L) @ c  # (B, N, C)
    rotated = real_sph_harm(L, g.points @ R) @ c  # f(Rᵀp)
    np.testing.assert_allclose(g.transform(x, R), rotated, atol=1e-10)
    np.testing.assert_allclose(g.transform(x[0], R), rotated[0], atol=1e-10)
    np.testing.assert_allclose(g.transform(x[0, :, 1], R), rotated[0, :, 1], atol=1e-10)


def test_sphere_sample_transform_is_the_haar_sampler():
    g = SphereGrid.driscoll_healy(4)
    np.testing.assert_array_equal(g.sample_transform(np.random.default_rng(3), size=4),
                                  random_rotation(np.random.default_rng(3), size=4))
    assert g.sample_transform(np.random.default_rng(0)).shape == (3, 3)


def test_sphere_generators_keep_their_floating_point_path():
    """The spectra experiment's figures depend on these exact numbers: Y D(R) Yᵀ W in this order."""
    g = SphereGrid.driscoll_healy(4)
    Y = g.harmonics(g.bandlimit)
    for axis, G in enumerate(g.generators()):
        D = wigner_D_all(g.bandlimit, axis_rotation(axis, np.pi / 8))
        np.testing.assert_array_equal(G, Y @ D @ (Y.T * g.mass[None, :]))
