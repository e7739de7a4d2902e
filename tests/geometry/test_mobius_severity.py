"""View transforms by mode and severity (geometry/mobius_severity.py) and the largest linear scale
factor k of a Möbius map (geometry/mobius.py): closed forms against finite differences on dense
point sets."""

from __future__ import annotations

import numpy as np
import pytest

from niso_geom.geometry.generators import icosphere
from niso_geom.geometry.mobius import (
    mobius_apply,
    mobius_boost,
    mobius_center,
    mobius_conformal_factor,
    mobius_max_scale,
    normalize_sl2,
    random_rotation,
)
from niso_geom.geometry.mobius_severity import (
    DEFAULT_SEVERITY,
    MOBIUS_MODES,
    PAPER_RADIUS,
    check_severity,
    draw_view_transforms,
    inversion_3d,
    normalize_for_inversion,
    paper_view_transform,
    vertex_areas,
)


def _fibonacci(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _tangent_jacobian_svals(A: np.ndarray, X: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Singular values (N, 2) of the differential of A at X, by central differences along two tangents."""
    a = np.where(np.abs(X[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    e1 = np.cross(X, a)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(X, e1)
    cols = []
    for e in (e1, e2):
        plus = mobius_apply(A, (X + h * e) / np.linalg.norm(X + h * e, axis=1, keepdims=True))
        minus = mobius_apply(A, (X - h * e) / np.linalg.norm(X - h * e, axis=1, keepdims=True))
        cols.append((plus - minus) / (2 * h))
    J = np.stack(cols, axis=2)  # (N, 3, 2): the image of the orthonormal tangent pair
    return np.linalg.svd(J, compute_uv=False)


def _mesh():
    V, F = icosphere(2)
    return V * np.array([1.0, 0.6, 0.35]), F, V  # an ellipsoid, and the icosphere as its sphere configuration


def test_k_in_closed_form_equals_the_measured_conformal_factor():
    X = _fibonacci(40000)
    rng = np.random.default_rng(0)
    for s in (0.0, 0.3, 0.6, 0.8):
        d = rng.normal(size=3)
        A = normalize_sl2(random_rotation(rng) @ mobius_boost(s * d / np.linalg.norm(d)))
        k = mobius_max_scale(A)
        assert np.isclose(k, (1 + s) / (1 - s), rtol=1e-10)  # the boost's closed form
        sv = _tangent_jacobian_svals(A, X)
        np.testing.assert_allclose(sv[:, 0], sv[:, 1], rtol=1e-6)  # conformal: equal singular values
        np.testing.assert_allclose(sv[:, 0], mobius_conformal_factor(A, X), rtol=1e-6)
        assert sv.max() <= k * (1 + 1e-6)
        assert sv.max() >= k * (1 - 2e-3)  # a dense set comes within its spacing of the maximum
        assert np.isclose(sv.min(), 1 / k, rtol=2e-3)
    # a general SL(2, C) matrix: k = σmax/σmin, the same for A and its inverse
    A = normalize_sl2(np.array([[1.3 + 0.2j, -0.4j], [0.7, 0.9 - 0.1j]]))
    sv = _tangent_jacobian_svals(A, X)
    assert np.isclose(sv.max(), mobius_max_scale(A), rtol=2e-3)
    assert np.isclose(mobius_max_scale(np.linalg.inv(A)), mobius_max_scale(A), rtol=1e-10)
    np.testing.assert_allclose(mobius_max_scale(np.stack([A, np.eye(2)])), [mobius_max_scale(A), 1.0])


@pytest.mark.parametrize("mode", MOBIUS_MODES)
def test_every_mode_maps_the_sphere_to_itself_and_preserves_angles(mode):
    V, F, S = _mesh()
    As = draw_view_transforms(np.random.default_rng(1), mode, None, 6, sphere=S, V=V, F=F)
    assert As.shape == (6, 2, 2)
    np.testing.assert_allclose(np.linalg.det(As), 1.0, atol=1e-10)
    X = _fibonacci(3000)
    ks = mobius_max_scale(As)
    for A, k in zip(As, ks):
        Y = mobius_apply(A, X)
        np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-12)
        sv = _tangent_jacobian_svals(A, X)
        np.testing.assert_allclose(sv[:, 0] / sv[:, 1], 1.0, atol=1e-5)
        assert sv.max() <= k * (1 + 1e-5)
    if mode == "rotation":
        np.testing.assert_allclose(ks, 1.0, atol=1e-9)
    elif mode == "boost":
        s = DEFAULT_SEVERITY["boost"]
        assert np.all(ks <= (1 + s) / (1 - s) + 1e-9) and ks.max() > 1.01
    else:
        assert ks.max() > 1.5  # the ellipsoid's inverted areas move its centroid far


@pytest.mark.parametrize("c", [[0.5, 0.0, 0.0], [0.0, -1.2, 0.0], [1.0, 2.0, -2.0]])
def test_the_3d_inversion_is_conformal_and_keeps_the_unit_sphere(c):
    c = np.asarray(c)
    X = _fibonacci(500)
    np.testing.assert_allclose(np.linalg.norm(inversion_3d(X, c), axis=1), 1.0, atol=1e-12)
    P = 0.8 * _fibonacci(200) * np.linspace(0.1, 1.0, 200)[:, None] + 0.05  # points of the ball, off the pole
    h = 1e-6
    J = np.stack([(inversion_3d(P + h * e, c) - inversion_3d(P - h * e, c)) / (2 * h) for e in np.eye(3)], axis=2)
    sv = np.linalg.svd(J, compute_uv=False)
    np.testing.assert_allclose(sv / sv[:, :1], 1.0, atol=1e-6)  # a scaled orthogonal Jacobian
    np.testing.assert_allclose(sv[:, 0], np.abs(1 - c @ c) / np.sum((P + c) ** 2, axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="pole"):
        inversion_3d(-c[None], c)


def test_paper_view_recentres_the_deformed_areas_and_larger_c_is_milder():
    V, F, S = _mesh()
    X = normalize_for_inversion(V)
    assert np.isclose(np.linalg.norm(X, axis=1).max(), PAPER_RADIUS) and np.allclose(X.mean(0), 0, atol=1e-12)
    d = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    ks = []
    for s in (1.05, 1.2, 2.0, 5.0):
        A = paper_view_transform(S, V, F, s * d)
        w = vertex_areas(inversion_3d(X, s * d), F)
        centroid = (w / w.sum()) @ mobius_apply(A, S)
        assert np.linalg.norm(centroid) < 1e-8  # the view is the base map centred on the deformed areas
        ks.append(mobius_max_scale(A))
    assert ks == sorted(ks, reverse=True) and ks[0] > 2 * ks[-1]
    # without a rotation, the view is the conformal barycentre map itself
    B, _ = mobius_center(S, vertex_areas(inversion_3d(X, 1.2 * d), F))
    assert np.isclose(mobius_max_scale(B), ks[1], rtol=1e-9)


def test_vertex_areas_are_a_third_of_each_incident_triangle():
    V = np.array([[0.0, 0, 0], [3, 0, 0], [0, 4, 0], [0, 0, 2]])
    F = np.array([[0, 1, 2], [0, 1, 3]])  # areas 6 and 3
    np.testing.assert_allclose(vertex_areas(V, F), [3.0, 3.0, 2.0, 1.0])
    V, F = icosphere(3)
    a = vertex_areas(V, F)
    assert a.shape == (len(V),) and np.all(a > 0) and abs(a.sum() - 4 * np.pi) < 0.1  # the chordal area


def test_severity_checks_name_the_mode_and_value():
    assert check_severity("paper", None) == 1.2 and check_severity("boost", None) == 0.2
    assert check_severity("rotation", None) == 0.0 and check_severity("paper", 3) == 3.0
    with pytest.raises(ValueError, match="paper.*0.9.*0.5"):
        check_severity("paper", 0.5)
    with pytest.raises(ValueError, match="boost.*1.0"):
        check_severity("boost", 1.0)
    with pytest.raises(ValueError, match="rotation has no severity"):
        check_severity("rotation", 0.2)
    with pytest.raises(ValueError, match="unknown Möbius mode 'shear'"):
        check_severity("shear", None)
    with pytest.raises(ValueError, match="finite"):
        check_severity("paper", float("nan"))
    with pytest.raises(ValueError, match="needs the mesh"):
        draw_view_transforms(np.random.default_rng(0), "paper", None, 2)
    assert draw_view_transforms(np.random.default_rng(0), "paper", None, 0).shape == (0, 2, 2)
