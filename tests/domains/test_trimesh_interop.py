"""TriMesh <-> trimesh.Trimesh: exact round trips, and a clear error for TriMesh(trimesh_mesh)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import trimesh

from niso_geom import TriMesh


def test_round_trip_is_exact_on_a_real_mesh(shared_root):
    m = TriMesh.load(shared_root / "meshes" / "spot.obj")
    tm = m.to_trimesh()
    assert isinstance(tm, trimesh.Trimesh)
    assert np.array_equal(tm.vertices, m.vertices) and np.array_equal(tm.faces, m.faces)
    back = TriMesh.from_trimesh(tm, name="spot")
    assert np.array_equal(back.vertices, m.vertices) and np.array_equal(back.faces, m.faces)
    assert back.name == "spot" and back.genus == 0
    tm.vertices[0] += 1.0  # the copies are independent
    assert not np.array_equal(tm.vertices[0], m.vertices[0])


def test_from_trimesh_keeps_trimeshs_order_and_geometry():
    tm = trimesh.creation.icosphere(subdivisions=2)
    m = TriMesh.from_trimesh(tm)
    assert np.array_equal(m.vertices, tm.vertices) and np.array_equal(m.faces, tm.faces)
    assert np.isclose(m.mass.sum(), tm.area)  # lumped mass = surface area
    assert m.name == "trimesh"


def test_a_trimesh_passed_to_the_constructor_points_at_from_trimesh():
    with pytest.raises(TypeError, match=r"TriMesh.from_trimesh\(mesh\)"):
        TriMesh(trimesh.creation.box())
    with pytest.raises(TypeError, match="scene.to_mesh"):
        TriMesh.from_trimesh(trimesh.Scene([trimesh.creation.box()]))
    with pytest.raises(TypeError, match="needs a trimesh.Trimesh"):
        TriMesh.from_trimesh(np.zeros((3, 3)))


def test_constructor_copy_and_pickle_still_work():
    m = TriMesh.icosphere(1)
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m2.vertices, m.vertices)
    assert m.transformed(scale=2.0).n == m.n
