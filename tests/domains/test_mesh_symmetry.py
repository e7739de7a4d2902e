"""Mesh symmetries: the icosphere's icosahedral group as exact vertex permutations."""

import numpy as np
import pytest

from niso_geom import TriMesh
from niso_geom.errors import NoSymmetryGroupError, NotASymmetryError
from niso_geom.harmonics.wigner import random_rotation


@pytest.fixture(scope="module")
def ico():
    return TriMesh.icosphere(2)


def _oriented_faces(F):
    """Faces as a set of triples, each rotated to start at its smallest index (orientation kept)."""
    k = np.argmin(F, axis=1)
    return {tuple(np.roll(f, -i)) for f, i in zip(F.tolist(), k)}


def test_icosphere_generators_are_permutations_that_preserve_faces_stiffness_and_mass(ico):
    S, M = ico.stiffness, ico.mass
    gens = ico.generators()
    assert len(gens) == 2
    faces = _oriented_faces(ico.faces)
    scale = abs(S).max()
    for P, order in zip(gens, (5, 3)):
        A = P.toarray()
        assert set(np.unique(A)) == {0.0, 1.0}
        np.testing.assert_array_equal(A.sum(0), 1)
        np.testing.assert_array_equal(A.sum(1), 1)
        np.testing.assert_array_equal(np.linalg.matrix_power(A, order), np.eye(ico.n))
        assert not np.array_equal(A, np.eye(ico.n))
        # vertex σ(s) = r where P[r, s] = 1 (the rotation carries vertex s to r): faces go to faces
        sigma = np.empty(ico.n, dtype=np.int64)
        rows, cols = P.nonzero()
        sigma[cols] = rows
        assert _oriented_faces(sigma[ico.faces]) == faces
        assert abs(P @ S @ P.T - S).max() < 1e-12 * scale
        np.testing.assert_allclose(P @ M, M, rtol=1e-12)


def test_icosahedral_group_closes_with_60_elements(ico):
    rotations, sources = ico.symmetry_group
    assert rotations.shape == (60, 3, 3) and sources.shape == (60, ico.n)
    np.testing.assert_array_equal(sources[0], np.arange(ico.n))
    keys = {s.tobytes() for s in sources}
    assert len(keys) == 60
    for a in range(0, 60, 7):  # closed under composition and inverses
        inverse = np.argsort(sources[a])
        assert inverse.tobytes() in keys
        for b in range(60):
            assert sources[a][sources[b]].tobytes() in keys
    # every element is a proper rotation that carries its own permutation
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", rotations, rotations),
                               np.broadcast_to(np.eye(3), (60, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    for R, s in zip(rotations[::11], sources[::11]):
        np.testing.assert_array_equal(ico.vertex_source(R), s)
    # the level-0 icosahedron has the same group
    assert len(TriMesh.icosphere(0).symmetry_group[0]) == 60


def test_sample_transform_draws_every_element_and_transform_permutes(ico):
    rng = np.random.default_rng(0)
    rotations = ico.symmetry_group[0]
    draws = ico.sample_transform(rng, size=2000)
    assert draws.shape == (2000, 3, 3)
    which = np.argmin(np.linalg.norm((draws[:, None] - rotations[None]).reshape(2000, 60, 9), axis=2), axis=1)
    assert len(np.unique(which)) == 60
    R = ico.sample_transform(rng)
    assert R.shape == (3, 3)
    V = ico.vertices
    f = np.stack([V[:, 0] + 2 * V[:, 1] ** 2, V[:, 2] * V[:, 0] - V[:, 1] ** 3], 1)  # (N, 2), any f of the position
    g = lambda P: np.stack([P[:, 0] + 2 * P[:, 1] ** 2, P[:, 2] * P[:, 0] - P[:, 1] ** 3], 1)
    out = ico.transform(f, R)
    np.testing.assert_allclose(out, g(V @ R), atol=1e-12)  # (R·f)(v) = f(Rᵀv)
    np.testing.assert_array_equal(ico.transform(f[:, 0], R), out[:, 0])
    np.testing.assert_array_equal(ico.transform(np.stack([f, -f]), R), np.stack([out, -out]))
    np.testing.assert_array_equal(ico.vertex_permutation(R) @ f, out)


def test_symmetry_survives_similarity_transforms(ico):
    moved = ico.transformed(R=random_rotation(5), t=np.array([1.0, -2.0, 0.5]), scale=3.0)
    assert moved.symmetry == "icosahedral"
    np.testing.assert_array_equal(moved.symmetry_group[1], ico.symmetry_group[1])
    assert abs(moved.generators()[0] - ico.generators()[0]).nnz == 0


def test_meshes_without_a_known_symmetry_give_named_errors(ico, rng):
    torus = TriMesh.torus(12, 6)
    for call in (torus.generators, lambda: torus.sample_transform(rng), lambda: torus.symmetry_group):
        with pytest.raises(NoSymmetryGroupError, match=r"TriMesh\(name='torus'.*has no known symmetry group"):
            call()
    # the identity is a symmetry of any mesh; a generic rotation is not
    x = rng.standard_normal(torus.n)
    np.testing.assert_array_equal(torus.transform(x, np.eye(3)), x)
    with pytest.raises(NotASymmetryError, match=r"vertex set of torus onto itself: point \d+ lands"):
        torus.transform(x, random_rotation(1))
    with pytest.raises(NotASymmetryError, match="icosphere"):
        ico.vertex_permutation(random_rotation(2))
    # declaring a symmetry the vertices do not have is caught when the group is built
    V = ico.vertices.copy()
    V[17] *= 1.01
    bent = TriMesh(V, ico.faces, name="bent", symmetry="icosahedral")
    with pytest.raises(NotASymmetryError, match=r"vertex set of bent onto itself: point \d+ lands 0\.0\d+ from"):
        bent.generators()
    with pytest.raises(ValueError, match="symmetry must be None or 'icosahedral'"):
        TriMesh(ico.vertices, ico.faces, symmetry="octahedral")
