"""Möbius transformations of the sphere: SL(2, C) action, group laws, conformality, fitting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from niso_geom.geometry.mobius import (
    fit_mobius,
    inverse_stereographic,
    mobius_apply,
    mobius_boost,
    mobius_center,
    mobius_compose,
    mobius_inverse,
    mobius_polar,
    mobius_residual,
    normalize_sl2,
    random_mobius,
    rotation_to_su2,
    stereographic,
    su2_to_rotation,
)


def _sphere_points(rng, n=500):
    X = rng.normal(size=(n, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # both poles exactly, and points within 1e-13 of them
    eps = 1e-13
    extra = np.array([[0, 0, 1.0], [0, 0, -1.0], [eps, 0, np.sqrt(1 - eps**2)], [0, eps, -np.sqrt(1 - eps**2)]])
    return np.concatenate([X, extra])


def _same_transform(A, B, atol=1e-9):
    A, B = normalize_sl2(A), normalize_sl2(B)
    return min(np.abs(A - B).max(), np.abs(A + B).max()) < atol


def test_stereographic_convention_and_roundtrip(rng):
    # projection from the north pole: south pole -> 0, north pole -> inf, equator -> unit circle
    z = stereographic(np.array([[0, 0, -1.0], [0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]))
    assert z[0] == 0 and not np.isfinite(z[1])
    np.testing.assert_allclose(z[2:], [1.0, 1j], atol=1e-15)
    X = _sphere_points(rng)
    np.testing.assert_allclose(inverse_stereographic(stereographic(X)), X, atol=1e-12)


def test_rotation_su2_correspondence(rng):
    X = _sphere_points(rng)
    for R in Rotation.random(20, random_state=1).as_matrix():
        U = rotation_to_su2(R)
        np.testing.assert_allclose(U @ U.conj().T, np.eye(2), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(U), 1.0, atol=1e-12)
        np.testing.assert_allclose(mobius_apply(U, X), X @ R.T, atol=1e-12)
        np.testing.assert_allclose(su2_to_rotation(U), R, atol=1e-12)
    # rotation by a about z is ζ -> e^{ia} ζ, i.e. diag(e^{ia/2}, e^{-ia/2})
    a = 0.7
    Rz = Rotation.from_euler("z", a).as_matrix()
    assert _same_transform(rotation_to_su2(Rz), np.diag([np.exp(0.5j * a), np.exp(-0.5j * a)]))
    with pytest.raises(ValueError):
        su2_to_rotation(mobius_boost([0.3, 0.0, 0.0]))


def test_boost_matches_ball_formula(rng):
    X = _sphere_points(rng)
    for _ in range(5):
        c = rng.normal(size=3)
        c *= rng.uniform(0.05, 0.95) / np.linalg.norm(c)
        expected = (1 - c @ c) * (X + c) / np.sum((X + c) ** 2, axis=1, keepdims=True) + c
        np.testing.assert_allclose(mobius_apply(mobius_boost(c), X), expected, atol=1e-10)
    with pytest.raises(ValueError):
        mobius_boost([1.0, 0.0, 0.0])


def test_apply_stays_on_sphere_and_is_exact_at_the_poles(rng):
    A = mobius_compose(rotation_to_su2(Rotation.random(random_state=2).as_matrix()), mobius_boost([0.2, -0.5, 0.6]))
    X = _sphere_points(rng)
    Y = mobius_apply(A, X)
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-14)
    # near each pole the image must be within (local scale) x (distance) of the pole's image:
    # a chart that divides by 1 - z (or zeroes such points, as the official code) fails this.
    scale = (1 + 0.9) / (1 - 0.9)
    for pole, near in ((X[-4], X[-2]), (X[-3], X[-1])):
        d_in = np.linalg.norm(pole - near)
        d_out = np.linalg.norm(mobius_apply(A, pole[None])[0] - mobius_apply(A, near[None])[0])
        assert d_out <= 2 * scale * d_in + 1e-15
    # the pole images themselves agree with the matrix action on ζ = 0 and ζ = ∞
    a, b, c, d = A.ravel()
    np.testing.assert_allclose(mobius_apply(A, np.array([[0, 0, -1.0]])), inverse_stereographic(np.array([b / d])), atol=1e-12)
    np.testing.assert_allclose(mobius_apply(A, np.array([[0, 0, 1.0]])), inverse_stereographic(np.array([a / c])), atol=1e-12)


def test_mobius_preserves_angles(rng):
    """Angles between tangent vectors (finite differences) are preserved: the map is conformal."""
    A = random_mobius(rng, boost=0.8)
    X = _sphere_points(rng, 200)[:200]
    h = 1e-6
    t1 = np.cross(X, rng.normal(size=X.shape))
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(X, rng.normal(size=X.shape))
    t2 /= np.linalg.norm(t2, axis=1, keepdims=True)

    def push(t):
        p = (X + h * t) / np.linalg.norm(X + h * t, axis=1, keepdims=True)
        m = (X - h * t) / np.linalg.norm(X - h * t, axis=1, keepdims=True)
        return (mobius_apply(A, p) - mobius_apply(A, m)) / (2 * h)

    def ang(u, v):
        return np.arctan2(np.linalg.norm(np.cross(u, v), axis=1), np.sum(u * v, axis=1))

    d1, d2 = push(t1), push(t2)
    np.testing.assert_allclose(ang(d1, d2), ang(t1, t2), atol=1e-6)
    # ... but lengths are not preserved (it is not an isometry)
    assert np.ptp(np.linalg.norm(d1, axis=1)) > 0.1


def test_composition_and_inverse_match_matrix_products(rng):
    X = _sphere_points(rng)
    A, B, C = (random_mobius(rng, boost=0.6) for _ in range(3))
    np.testing.assert_allclose(mobius_apply(mobius_compose(A, B), X), mobius_apply(A, mobius_apply(B, X)), atol=1e-11)
    assert _same_transform(mobius_compose(A, B, C), A @ B @ C)
    np.testing.assert_allclose(mobius_apply(mobius_inverse(A), mobius_apply(A, X)), X, atol=1e-11)
    assert _same_transform(mobius_compose(A, mobius_inverse(A)), np.eye(2))
    assert _same_transform(mobius_inverse(mobius_compose(A, B)), mobius_compose(mobius_inverse(B), mobius_inverse(A)))
    # batched application
    AB = np.stack([A, B])
    XX = np.stack([X, X])
    np.testing.assert_allclose(mobius_apply(AB, XX)[1], mobius_apply(B, X), atol=1e-13)
    # polar decomposition: rotation times boost
    U, P = mobius_polar(A)
    np.testing.assert_allclose(U @ U.conj().T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(P, P.conj().T, atol=1e-12)
    assert _same_transform(U @ P, A)


def test_random_mobius_strength_and_rotation(rng):
    b = 0.2
    As = random_mobius(rng, boost=b, size=400)
    assert As.shape == (400, 2, 2)
    np.testing.assert_allclose(np.linalg.det(As), 1.0, atol=1e-12)
    # the boost part's conformal factor stays within [(1-b)/(1+b), (1+b)/(1-b)]
    svals = np.linalg.svd(As, compute_uv=False)
    factor = svals[:, 0] / svals[:, 1]  # largest local scale factor of the transform
    assert factor.max() <= (1 + b) / (1 - b) + 1e-9
    assert factor.max() > 1.2  # strengths actually spread up to the bound
    # rotation parts are Haar: mean rotation matrix ~ 0
    Rm = np.mean([su2_to_rotation(mobius_polar(A)[0]) for A in As], axis=0)
    assert np.abs(Rm).max() < 0.15
    # reproducible from the generator; boost=0 gives pure rotations
    np.testing.assert_array_equal(random_mobius(np.random.default_rng(3)), random_mobius(np.random.default_rng(3)))
    R0 = random_mobius(np.random.default_rng(4), boost=0.0)
    np.testing.assert_allclose(R0 @ R0.conj().T, np.eye(2), atol=1e-12)
    with pytest.raises(ValueError):
        random_mobius(rng, boost=1.0)


def test_fit_mobius_recovers_known_transform(rng):
    X = _sphere_points(rng, 300)
    for boost in (0.0, 0.3, 0.9):
        A = random_mobius(rng, boost=boost)
        Y = mobius_apply(A, X)  # includes points at and next to both poles
        Af, res = fit_mobius(X, Y, return_residual=True)
        assert _same_transform(Af, A, atol=1e-8), boost
        assert res < 1e-10
        # the linear (DLT) stage alone already recovers it
        assert _same_transform(fit_mobius(X, Y, refine=False), A, atol=1e-8)
    # noisy correspondences: still close, residual at noise level
    A = random_mobius(rng, boost=0.5)
    Y = mobius_apply(A, X) + 1e-3 * rng.normal(size=X.shape)
    Af, res = fit_mobius(X, Y, return_residual=True)
    assert res < 3e-3
    assert np.median(mobius_residual(Af, X, mobius_apply(A, X))) < 1e-3
    with pytest.raises(ValueError):
        fit_mobius(X[:2], Y[:2])


def test_mobius_center_moves_weighted_centroid_to_origin(rng):
    X = _sphere_points(rng, 2000)[:2000]
    # concentrate the points strongly near +x, with uneven weights
    X = mobius_apply(mobius_boost([0.95, 0.0, 0.0]), X)
    w = rng.uniform(0.1, 1.0, size=len(X))
    assert np.linalg.norm(w @ X / w.sum()) > 0.5
    A, Y = mobius_center(X, w)
    assert np.linalg.norm(w @ Y / w.sum()) < 1e-10
    np.testing.assert_allclose(mobius_apply(A, X), Y, atol=1e-10)
