"""sl(3) basis, exponential, samplers and the projective action (niso_geom.geometry.homography)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from niso_geom.geometry import homography as hg


def test_module_imports_without_torch():
    import subprocess

    code = ("import sys, niso_geom.geometry.homography; "
            "sys.exit(int('torch' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_basis_is_the_reference_order():
    e = np.eye(3)
    I3 = np.eye(3) / 3
    expected = [np.outer(e[0], e[0]) - I3, np.outer(e[0], e[1]), np.outer(e[0], e[2]),
                np.outer(e[1], e[0]), np.outer(e[1], e[1]) - I3, np.outer(e[1], e[2]),
                np.outer(e[2], e[0]), np.outer(e[2], e[1])]
    np.testing.assert_array_equal(hg.SL3_BASIS, np.stack(expected))
    np.testing.assert_allclose(np.trace(hg.SL3_BASIS, axis1=1, axis2=2), 0, atol=1e-15)
    assert hg.HOMCONV_SCALES.tolist() == [0.15, 0.35, 0.17, 0.35, 0.15, 0.17, 0.15, 0.15]


def test_coordinates_invert_matrix():
    c = np.random.default_rng(0).standard_normal((7, 8))
    np.testing.assert_allclose(hg.sl3_coordinates(hg.sl3_matrix(c)), c, atol=1e-14)


def test_expm_matches_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    for size in (1e-4, 0.3, 2.0, 20.0):
        X = rng.standard_normal((20, 3, 3)) * size
        ref = scipy_linalg.expm(X)
        err = np.abs(hg.expm(X) - ref).max(axis=(1, 2)) / np.abs(ref).max(axis=(1, 2))
        assert err.max() < 1e-11
    np.testing.assert_array_equal(hg.expm(np.zeros((3, 3))), np.eye(3))


@pytest.mark.parametrize("sampler", [hg.sample_homographies, hg.sample_homographies_metropolis])
def test_samples_have_unit_determinant(sampler):
    A = sampler(500, np.random.default_rng(2), scale=1.5)
    assert A.shape == (500, 3, 3)
    np.testing.assert_allclose(np.linalg.det(A), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(hg.invert(A)), 1.0, atol=1e-12)
    np.testing.assert_allclose(hg.invert(A) @ A, np.broadcast_to(np.eye(3), A.shape), atol=1e-12)


def test_gaussian_sampler_std_matches_scales():
    A, c = hg.sample_homographies(20000, 3, return_coefficients=True)
    np.testing.assert_allclose(c.std(axis=0), hg.HOMCONV_SCALES, rtol=0.03)
    assert np.all(np.abs(c.mean(axis=0)) < 4 * hg.HOMCONV_SCALES / math.sqrt(20000))
    np.testing.assert_allclose(A, hg.sl3_exp(c), atol=1e-14)
    _, c2 = hg.sample_homographies(20000, 3, scale=0.5, return_coefficients=True)
    np.testing.assert_allclose(c2.std(axis=0), 0.5 * hg.HOMCONV_SCALES, rtol=0.03)


def test_metropolis_sampler_spread():
    # near the identity the Haar density is ~1, every first step is accepted, and the walk
    # is the sum of two N(0, (0.5 sigma)^2) steps
    _, c = hg.sample_homographies_metropolis(20000, 4, scale=1e-3, return_coefficients=True)
    np.testing.assert_allclose(c.std(axis=0), math.sqrt(2) * 0.5e-3 * hg.HOMCONV_SCALES, rtol=0.03)
    # at the homNIST scale the spread is a little wider (observed ~0.709 sigma)
    _, c = hg.sample_homographies_metropolis(20000, 5, return_coefficients=True)
    ratio = c.std(axis=0) / hg.HOMCONV_SCALES
    assert np.all((ratio > 0.68) & (ratio < 0.76)), ratio


def test_samplers_are_deterministic():
    for sampler in (hg.sample_homographies, hg.sample_homographies_metropolis):
        np.testing.assert_array_equal(sampler(10, 7), sampler(10, np.random.default_rng(7)))
        assert not np.array_equal(sampler(10, 7), sampler(10, 8))


def test_haar_density_is_the_exp_jacobian():
    rng = np.random.default_rng(6)
    c = rng.standard_normal((30, 8)) * 0.6
    # power series definition |det sum_k (-ad)^k/(k+1)!|
    M = -hg.adjoint_matrix(c)
    S, P = np.zeros_like(M), np.broadcast_to(np.eye(8), M.shape).copy()
    for k in range(40):
        S, P = S + P / math.factorial(k + 1), P @ M
    np.testing.assert_allclose(hg.haar_density(c), np.abs(np.linalg.det(S)), rtol=1e-10)
    np.testing.assert_allclose(hg.haar_density(-c), hg.haar_density(c), rtol=1e-10)
    assert hg.haar_density(np.zeros(8)) == pytest.approx(1.0)
    # finite differences: exp(X)^-1 d exp(X + t B_k)/dt has coordinates phi(-ad_X) e_k
    x = c[0]
    h = 1e-6
    J = np.stack([
        hg.sl3_coordinates(hg.sl3_exp(-x) @ (hg.sl3_exp(x + h * e) - hg.sl3_exp(x - h * e))
                           / (2 * h))
        for e in np.eye(8)
    ], axis=1)
    assert abs(np.linalg.det(J)) == pytest.approx(hg.haar_density(x), rel=1e-6)


def test_adjoint_is_the_commutator():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal(8), rng.standard_normal(8)
    X, Y = hg.sl3_matrix(a), hg.sl3_matrix(b)
    np.testing.assert_allclose(hg.adjoint_matrix(a) @ b, hg.sl3_coordinates(X @ Y - Y @ X),
                               atol=1e-13)


def test_action_composes_and_inverts():
    rng = np.random.default_rng(9)
    A, B = hg.sample_homographies(2, rng)
    pts = rng.uniform(-1, 1, (50, 2))
    # pull-back: (T_B T_A x)(p) = x(A B p), i.e. the point A(B(p))
    np.testing.assert_allclose(hg.apply_homography(A, hg.apply_homography(B, pts)),
                               hg.apply_homography(hg.compose(A, B), pts), atol=1e-12)
    back = hg.apply_homography(hg.invert(A), hg.apply_homography(A, pts))
    np.testing.assert_allclose(back, pts, atol=1e-12)
    np.testing.assert_array_equal(hg.apply_homography(np.eye(3), pts), pts)


def test_pixel_grid_and_coordinate_maps():
    g = hg.pixel_grid(40, 30)
    assert g.shape == (40, 30, 3)
    np.testing.assert_allclose(g[5, 7], [2 * 5 / 39 - 1, 2 * 7 / 29 - 1, 1], atol=1e-15)
    assert g[0, 0, 0] == -1 and g[-1, -1, 0] == 1 and g[0, -1, 1] == 1  # row first
    ij = hg.normalized_to_pixel(g[..., :2], 40, 30)
    np.testing.assert_allclose(ij[12, 3], [12, 3], atol=1e-12)
    np.testing.assert_allclose(hg.pixel_to_normalized(ij, 40, 30), g[..., :2], atol=1e-14)
