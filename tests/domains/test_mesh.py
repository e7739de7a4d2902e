"""Triangle meshes: validation errors, topology, cotan spectra, eigenbases on real meshes, caching."""

import numpy as np
import pytest

from niso_geom import TriMesh
from niso_geom.cache import DiskCache
from niso_geom.errors import MeshError
from niso_geom.geometry.descriptors import heat_kernel_signature, wave_kernel_signature
from niso_geom.harmonics.sphere import sh_degrees
from niso_geom.shared_data import mesh_path
from tests.conftest import CLOSED_MESHES


def test_icosphere4_cotan_spectrum_matches_sphere():
    m = TriMesh.icosphere(4)
    eb = m.eigenbasis(64, cache=False)
    l = sh_degrees(7)
    lam = (l * (l + 1)).astype(float)
    assert abs(eb.evals[0]) < 1e-10
    np.testing.assert_array_less(np.abs(eb.evals[1:] - lam[1:]) / lam[1:], 0.03)
    assert eb.multiplicities(rtol=1e-2) == [2 * d + 1 for d in range(8)]


@pytest.mark.parametrize("name", CLOSED_MESHES)
def test_closed_mesh_eigenbasis_is_m_orthonormal(name):
    m = TriMesh.load(mesh_path(name))
    assert m.genus == 0 and m.report.n_components == 1 and m.report.is_closed
    eb = m.eigenbasis(16, cache=False)
    assert eb.orthonormality_error() < 1e-8
    assert eb.residual(m.stiffness) < 1e-8
    assert eb.evals[0] < 1e-8 * eb.evals[-1] and np.all(np.diff(eb.evals) >= 0)
    S = m.stiffness
    assert abs(S - S.T).max() < 1e-10 * abs(S).max()
    assert np.abs(S @ np.ones(m.n)).max() < 1e-8 * abs(S).max()


def test_genus_of_3holes_and_torus():
    assert TriMesh.load(mesh_path("3holes.off")).genus == 3
    assert TriMesh.torus().genus == 1


def _tet():
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return V, F


def test_bad_input_gives_named_errors():
    V, F = _tet()
    Vn = V.copy()
    Vn[2, 1] = np.nan
    with pytest.raises(MeshError, match="NaN or inf.*vertex 2"):
        TriMesh(Vn, F)
    Vi = V.copy()
    Vi[3, 0] = np.inf
    with pytest.raises(MeshError, match="vertex 3"):
        TriMesh(Vi, F)
    with pytest.raises(MeshError, match=r"face 1 has vertex index out of range \[0, 1, 7\]"):
        TriMesh(V, np.array([[0, 2, 1], [0, 1, 7], [0, 3, 2], [1, 2, 3]]))
    with pytest.raises(MeshError, match="out of range"):
        TriMesh(V, np.array([[0, 2, 1], [-1, 1, 3], [0, 3, 2], [1, 2, 3]]))
    with pytest.raises(MeshError, match="face 2 repeats a vertex"):
        TriMesh(V, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 3], [1, 2, 3]]))
    Vc = np.vstack([V, [[2, 0, 0]]])
    with pytest.raises(MeshError, match="face 4 .* zero area"):
        TriMesh(Vc, np.vstack([F, [[0, 1, 4]]]))
    with pytest.raises(MeshError, match="face 1 .* duplicated"):
        TriMesh(V, np.array([[0, 2, 1], [0, 1, 3], [3, 0, 1], [1, 2, 3]]))
    with pytest.raises(MeshError, match="shape"):
        TriMesh(V[:, :2], F)


def test_topology_report_nonmanifold_components_boundary():
    V, F = _tet()
    # a fin glued to edge (0,1): three faces on one edge
    Vf = np.vstack([V, [[0.5, -1, 0.5]]])
    Ff = np.vstack([F, [[0, 1, 4]]])
    m = TriMesh(Vf, Ff)
    assert not m.report.is_manifold and m.report.nonmanifold_edges.tolist() == [[0, 1]]
    assert m.genus is None
    assert m.operators.method == "robust"  # falls back to robust-laplacian
    eb = m.eigenbasis(4, cache=False)
    assert np.isfinite(eb.evals).all() and eb.orthonormality_error() < 1e-8
    # two components
    V2 = np.vstack([V, V + 5])
    F2 = np.vstack([F, F + 4])
    r = TriMesh(V2, F2).report
    assert r.n_components == 2 and r.genus is None and "2 component(s)" in r.summary()
    # an open mesh (one face removed)
    r = TriMesh(V, F[:3]).report
    assert r.n_boundary_edges == 3 and not r.is_closed


def test_cached_eigenbasis_reloads_equal_and_corruption_is_recomputed(tmp_path):
    cache = DiskCache(tmp_path)
    m = TriMesh.load(mesh_path("hand.off"))
    eb = m.eigenbasis(24, cache=cache)
    assert eb.info["method"] != "cache"
    m2 = TriMesh.load(mesh_path("hand.off"))
    again = m2.eigenbasis(24, cache=cache)
    assert again.info["method"] == "cache"
    np.testing.assert_array_equal(again.evals, eb.evals)
    np.testing.assert_array_equal(again.evecs, eb.evecs)
    path = cache.path(m.cache_key(24, "auto"), "eigenbasis")
    # truncate the file: detected, removed, recomputed
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    m3 = TriMesh.load(mesh_path("hand.off"))
    eb3 = m3.eigenbasis(24, cache=cache)
    assert eb3.info["method"] != "cache"
    np.testing.assert_allclose(eb3.evals, eb.evals, rtol=1e-10, atol=1e-12)
    assert TriMesh.load(mesh_path("hand.off")).eigenbasis(24, cache=cache).info["method"] == "cache"
    # a different mesh (moved vertex) is a different key
    V = m.vertices.copy()
    V[0] += 1e-3
    assert TriMesh(V, m.faces).cache_key(24, "auto") != m.cache_key(24, "auto")


def test_heat_kernel_signature_rigid_invariance_and_scaling(rng):
    from niso_geom.harmonics.wigner import random_rotation

    m = TriMesh.load(mesh_path("blobby.off"))
    eb = m.eigenbasis(64, cache=False)
    t = np.logspace(-2, 0, 16)
    hks = heat_kernel_signature(eb, t)
    assert hks.shape == (m.n, 16) and (hks > 0).all()
    moved = m.transformed(R=random_rotation(rng), t=[1.0, -2.0, 3.0])
    np.testing.assert_allclose(heat_kernel_signature(moved.eigenbasis(64, cache=False), t), hks, rtol=1e-6, atol=1e-9)
    s = 2.5
    scaled = m.transformed(scale=s).eigenbasis(64, cache=False)
    # documented: HKS_sX(t) = HKS_X(t/s²)/s²; with normalize="area" it is scale invariant
    np.testing.assert_allclose(heat_kernel_signature(scaled, t), heat_kernel_signature(eb, t / s**2) / s**2,
                               rtol=1e-6)
    np.testing.assert_allclose(heat_kernel_signature(scaled, t, normalize="area"),
                               heat_kernel_signature(eb, t, normalize="area"), rtol=1e-6)
    wks = wave_kernel_signature(eb, 8)
    assert wks.shape == (m.n, 8) and np.isfinite(wks).all()
