"""Pull-back of per-vertex signals to points of the sphere (closest point + barycentric weights)."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from niso_geom.geometry.generators import icosphere
from niso_geom.geometry.mobius import mobius_apply, random_mobius
from niso_geom.geometry.pullback import (
    SpherePullback,
    closest_point_on_triangles,
    pull_back,
    pullback_matrix,
)
from niso_geom.shared_data import data_file


def _grid(nlat=96, nlon=192):
    """The paper's equiangular grid (both poles, duplicated seam): 18,432 points."""
    th = np.pi * np.arange(nlat) / (nlat - 1)
    ph = 2 * np.pi * np.arange(nlon) / (nlon - 1)
    T, P = np.meshgrid(th, ph, indexing="ij")
    return np.stack([np.cos(P) * np.sin(T), np.sin(P) * np.sin(T), np.cos(T)], -1).reshape(-1, 3)


def _brute_force_d2(P, S, F):
    best = np.full(len(P), np.inf)
    for a, b, c in S[F]:
        _, d2 = closest_point_on_triangles(P, *(np.broadcast_to(x, P.shape) for x in (a, b, c)))
        best = np.minimum(best, d2)
    return best


@pytest.fixture(scope="module")
def camel_sphere(tmp_path_factory):
    """A coarse shrec_16 mesh (500 faces) and its spherical conformal image."""
    import trimesh

    from niso_geom.geometry.conformal import spherical_conformal_map

    tmp = tmp_path_factory.mktemp("shrec")
    with tarfile.open(data_file("shrec_16.tar.gz")) as tar:
        tar.extract("shrec_16/camel/train/T481.obj", tmp, filter="data")
    m = trimesh.load(tmp / "shrec_16/camel/train/T481.obj", process=False, force="mesh")
    V, F = np.asarray(m.vertices), np.asarray(m.faces)
    S, rep = spherical_conformal_map(V, F)
    assert rep.n_flipped == 0
    return V, F, S


def test_closest_point_on_triangles_against_dense_sampling(rng):
    a, b, c = (rng.normal(size=(300, 3)) for _ in range(3))
    c[:20] = a[:20] + 0.5 * (b[:20] - a[:20])  # degenerate (collinear) triangles
    c[20:30] = b[20:30] = a[20:30]  # a point
    P = 2 * rng.normal(size=(300, 3))
    bary, d2 = closest_point_on_triangles(P, a, b, c)
    assert np.all(bary >= 0) and np.allclose(bary.sum(1), 1)
    X = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    np.testing.assert_allclose(np.sum((P - X) ** 2, 1), d2, rtol=1e-12, atol=1e-14)
    g = np.linspace(0, 1, 161)
    U, W = np.meshgrid(g, g)
    keep = U + W <= 1
    U, W = U[keep], W[keep]
    for i in range(len(P)):
        Y = (1 - U - W)[:, None] * a[i] + U[:, None] * b[i] + W[:, None] * c[i]
        assert d2[i] <= np.min(np.sum((Y - P[i]) ** 2, 1)) + 1e-12


def test_locate_is_the_exact_closest_point(camel_sphere, rng):
    _, F, S = camel_sphere
    P = _grid()[rng.choice(18432, 3000, replace=False)]
    P = np.concatenate([P, [[0, 0, 1.0], [0, 0, -1.0]], S[:5]])
    face, bary, dist = SpherePullback(S, F).locate(P)
    np.testing.assert_allclose(dist**2, _brute_force_d2(P, S, F), rtol=1e-10, atol=1e-15)
    Xc = np.einsum("qk,qkd->qd", bary, S[F[face]])
    np.testing.assert_allclose(np.linalg.norm(Xc - P, axis=1), dist, atol=1e-12)
    assert dist[-5:].max() < 1e-12  # vertices are on the mesh


def test_vertex_values_are_reproduced_at_vertex_images(camel_sphere, rng):
    V, F, S = camel_sphere
    signal = rng.normal(size=(len(S), 16))
    out = pull_back(S, F, signal, S)
    np.testing.assert_allclose(out, signal, atol=1e-9)


def test_linear_function_to_interpolation_accuracy(rng):
    """An affine function of the coordinates is reproduced up to |a| x (distance to the mesh)."""
    V, F = icosphere(5)  # 10,242 vertices
    S = V / np.linalg.norm(V, axis=1, keepdims=True)
    a, b = rng.normal(size=3), 0.3
    f = S @ a + b
    P = _grid()
    face, bary, dist = SpherePullback(S, F).locate(P)
    got = pull_back(S, F, f, P)
    err = np.abs(got - (P @ a + b))
    assert np.all(err <= np.linalg.norm(a) * dist + 1e-12)
    assert err.max() < 3e-4  # sagitta of a level-5 icosphere


def test_matrix_mobius_and_channels_agree(camel_sphere, rng):
    V, F, S = camel_sphere
    P = _grid(24, 48)
    sig = rng.normal(size=(len(S), 3))
    W = pullback_matrix(S, F, P)
    assert W.shape == (len(P), len(S))
    np.testing.assert_allclose(np.asarray(W.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    np.testing.assert_allclose(W @ sig, pull_back(S, F, sig, P), atol=1e-12)
    np.testing.assert_allclose(pull_back(S, F, sig[:, 0], P), W @ sig[:, 0], atol=1e-12)
    A = random_mobius(rng)
    np.testing.assert_allclose(pull_back(S, F, sig, P, mobius=A), pull_back(mobius_apply(A, S), F, sig, P), atol=1e-12)
    with pytest.raises(ValueError):
        pull_back(S, F, sig[:-1], P)


def test_pull_back_heat_kernel_signature(camel_sphere):
    """HKS transported through the sphere map: exact at vertex images, bounded by corner values elsewhere."""
    from niso_geom.geometry.descriptors import heat_kernel_signature
    from niso_geom.geometry.laplacian import cotan_stiffness, lumped_mass
    from niso_geom.spectral.solve import eigensolve

    V, F, S = camel_sphere
    basis = eigensolve(cotan_stiffness(V, F), lumped_mass(V, F), 32)
    hks = heat_kernel_signature(basis)
    P = _grid(48, 96)
    img = pull_back(S, F, hks, P)
    assert img.shape == (len(P), 16) and np.all(np.isfinite(img))
    face, _, _ = SpherePullback(S, F).locate(P)
    corners = hks[F[face]]
    assert np.all(img >= corners.min(axis=1) - 1e-12) and np.all(img <= corners.max(axis=1) + 1e-12)
    np.testing.assert_allclose(pull_back(S, F, hks, S), hks, atol=1e-9)
