"""healpy interop: our real SH coefficients <-> healpy's complex a_lm, RING <-> NESTED."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from niso_geom import SphereGrid
from niso_geom.harmonics.healpix import (
    healpy_alm_size,
    nest_to_ring,
    real_sh_from_healpy_alm,
    real_sh_to_healpy_alm,
    ring_to_nest,
)
from niso_geom.harmonics.sphere import real_sph_harm_angles, sh_index


@pytest.fixture(scope="module")
def grid():
    return SphereGrid.healpix(8)


def test_healpy_synthesises_our_band_limited_map_from_the_converted_alm(grid, rng):
    L = 7
    c = rng.standard_normal((L + 1) ** 2)
    f = grid.harmonics(L) @ c
    alm = real_sh_to_healpy_alm(c)
    assert alm.shape == (healpy_alm_size(L),) == (36,)
    assert np.abs(hp.alm2map(alm, 8, lmax=L) - f).max() < 1e-12  # healpy's synthesis is exact


def test_our_analysis_and_healpys_agree(grid, rng):
    L = 6
    c = rng.standard_normal((L + 1) ** 2)
    f = grid.harmonics(L) @ c
    ours = grid.sh_coefficients(f, L)  # band-limit-exact quadrature
    assert np.abs(ours - c).max() < 1e-12
    theirs = real_sh_from_healpy_alm(hp.map2alm(f, lmax=L, iter=10))  # healpy's iterated analysis
    assert np.abs(theirs - c).max() < 1e-10


def test_round_trips_are_exact_with_channels(rng):
    c = rng.standard_normal((25, 3))
    alm = real_sh_to_healpy_alm(c)
    assert alm.shape == (15, 3)
    assert np.abs(real_sh_from_healpy_alm(alm) - c).max() < 1e-15
    a = rng.standard_normal(15) + 1j * rng.standard_normal(15)
    a[hp.Alm.getidx(4, np.arange(5), 0)] = a[hp.Alm.getidx(4, np.arange(5), 0)].real  # a real map's m = 0
    assert np.abs(real_sh_to_healpy_alm(real_sh_from_healpy_alm(a)) - a).max() < 1e-15


def test_the_relation_term_by_term():
    """a_lm = (−1)^m (c_l,m − i c_l,−m)/√2: the Condon–Shortley phase and the √2 of real harmonics."""
    for l, m in [(1, 1), (2, 1), (2, 2), (3, 3)]:
        for sign, expected in [(+1, (-1) ** m / np.sqrt(2)), (-1, -1j * (-1) ** m / np.sqrt(2))]:
            c = np.zeros(16)
            c[sh_index(l, sign * m)] = 1.0
            alm = real_sh_to_healpy_alm(c)
            assert alm[hp.Alm.getidx(3, l, m)] == pytest.approx(expected, abs=1e-15)
            assert np.count_nonzero(alm) == 1
    # and at the level of functions: one healpy harmonic, synthesised, is our recombination
    theta, phi = np.array([0.3, 1.1, 2.5]), np.array([0.2, 4.0, 5.5])  # pixels near these
    a = np.zeros(healpy_alm_size(3), dtype=complex)
    a[hp.Alm.getidx(3, 3, 2)] = 1.0
    c = real_sh_from_healpy_alm(a)
    nside = 16
    f = hp.alm2map(a, nside, lmax=3)
    pix = hp.ang2pix(nside, theta, phi)
    ctheta, cphi = hp.pix2ang(nside, pix)
    assert np.abs(f[pix] - real_sph_harm_angles(3, ctheta, cphi) @ c).max() < 1e-12


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="not a full set"):
        real_sh_to_healpy_alm(np.zeros(10))
    with pytest.raises(ValueError, match="do not match lmax"):
        real_sh_from_healpy_alm(np.zeros(15, complex), lmax=3)


def test_ring_nest_reorder_matches_healpy_and_keeps_channels(grid, rng):
    f = rng.standard_normal((grid.n, 4))
    nested = ring_to_nest(f)
    for k in range(4):
        assert np.array_equal(nested[:, k], hp.reorder(f[:, k], r2n=True))
    assert np.array_equal(nest_to_ring(nested), f)
    batch = rng.standard_normal((2, grid.n, 3))  # (B, N, C): pixels on axis 1
    assert np.array_equal(nest_to_ring(ring_to_nest(batch, axis=1), axis=1), batch)
    # pixel centres agree: nested pixel p sits where healpy's NESTED scheme puts it
    colat_nest, lon_nest = hp.pix2ang(8, np.arange(grid.n), nest=True)
    assert np.allclose(ring_to_nest(grid.colat), colat_nest) and np.allclose(ring_to_nest(grid.lon), lon_nest)
    with pytest.raises(ValueError):
        ring_to_nest(np.zeros(100))
