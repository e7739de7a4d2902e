"""Mesh input (niso_geom.geometry.mesh_io / validate): welded STL, header counts, polygons,
scale and sliver checks, and the sphere-map output guard."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import trimesh

from niso_geom.domains import TriMesh
from niso_geom.errors import EigenSolveError, MeshError
from niso_geom.geometry.conformal import sphere_map_file
from niso_geom.geometry.generators import icosphere
from niso_geom.geometry.laplacian import mesh_operators
from niso_geom.geometry.mesh_io import read_mesh, write_mesh
from niso_geom.spectral.solve import eigensolve

SQUARE_PYRAMID = "OFF\n5 5 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n4 3 2 1 0\n3 0 1 4\n3 1 2 4\n3 2 3 4\n3 3 0 4\n"


def test_closed_icosahedron_stl_is_welded_to_one_sphere(tmp_path):
    path = tmp_path / "ico.stl"
    trimesh.creation.icosahedron().export(path)  # a triangle soup: 60 corners
    V, F = read_mesh(path)
    assert (len(V), len(F)) == (12, 20)
    m = TriMesh(V, F)
    assert m.genus == 0 and m.report.n_components == 1
    eb = m.eigenbasis(8, cache=False)
    assert int(np.sum(eb.evals < 1e-8)) == 1  # one zero eigenvalue: one component


@pytest.mark.parametrize("text,expected", [
    ("OFF\n4 3 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n", "says 4 vertices and 3 faces, but the file has only 6"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n", "1 more data line"),
    ("OFF\n5 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 2 1\n0 0 1\n", r"vertex 3 has 4 values.*do the header counts \(5 vertices, 1 faces\) match"),
    ("OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1\n", "announces 3 corners but lists 2"),
])
def test_off_header_counts_are_checked_against_the_body(tmp_path, text, expected):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(MeshError, match=expected) as err:
        read_mesh(path)
    assert str(path) in str(err.value)


def test_ply_header_counts_are_checked_ascii_and_binary(tmp_path):
    head = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
            "element face {nf}\nproperty list uchar int vertex_indices\nend_header\n")
    body = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n"
    path = tmp_path / "a.ply"
    path.write_text(head.format(nf=3) + body)
    with pytest.raises(MeshError, match="says 3 face element"):
        read_mesh(path)
    path.write_text(head.format(nf=1) + body)
    with pytest.raises(MeshError, match="1 more"):
        read_mesh(path)
    path.write_text(head.format(nf=2) + body)
    assert read_mesh(path)[1].tolist() == [[0, 1, 2], [0, 1, 3]]
    trimesh.creation.icosahedron().export(tmp_path / "b.ply")
    raw = (tmp_path / "b.ply").read_bytes()
    (tmp_path / "b.ply").write_bytes(raw[:-7])
    with pytest.raises(MeshError, match="b.ply: the file ends inside face element 19 of 20"):
        read_mesh(tmp_path / "b.ply")


def test_mixed_polygons_are_fan_triangulated_in_every_format(tmp_path):
    # a hexagon and two quads tiling a strip, plus a triangle
    V = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 1, 0], [1, 1, 0], [0, 1, 0], [0, 2, 0], [1, 2, 0],
                  [2, 2, 0]], float)
    polys = [[0, 1, 2, 3, 4, 5], [5, 4, 7, 6], [4, 3, 8, 7], [0, 2, 3]]
    off = tmp_path / "m.off"
    off.write_text(f"OFF\n{len(V)} {len(polys)} 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in V)
                   + "".join(f"{len(p)} {' '.join(map(str, p))}\n" for p in polys))
    head = (f"ply\nformat {{fmt}} 1.0\nelement vertex {len(V)}\nproperty double x\nproperty double y\n"
            f"property double z\nelement face {len(polys)}\nproperty list uchar int vertex_indices\nend_header\n")
    ply = tmp_path / "m.ply"
    ply.write_text(head.format(fmt="ascii") + "".join(f"{x} {y} {z}\n" for x, y, z in V)
                   + "".join(f"{len(p)} {' '.join(map(str, p))}\n" for p in polys))
    bply = tmp_path / "b.ply"
    bply.write_bytes(head.format(fmt="binary_little_endian").encode() + V.astype("<f8").tobytes()
                     + b"".join(struct.pack(f"<B{len(p)}i", len(p), *p) for p in polys))
    obj = tmp_path / "m.obj"
    obj.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in V)
                   + "".join(f"f {' '.join(str(i + 1) for i in p)}\n" for p in polys))
    expected_area = 2.0 + 1.0 + 1.0 + 1.0  # hexagon 2x1, two unit quads, triangle (0,2,3) = 1
    F_off = read_mesh(off)[1]
    assert F_off.tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5], [5, 4, 7], [5, 7, 6], [4, 3, 8], [4, 8, 7],
                              [0, 2, 3]]  # each face's fan, in file order
    assert all(np.array_equal(read_mesh(p)[1], F_off) for p in (ply, bply))
    for path in (off, ply, bply, obj):
        Vr, F = read_mesh(path)
        assert len(F) == 4 + 2 + 2 + 1, path
        area = 0.5 * np.linalg.norm(np.cross(Vr[F[:, 1]] - Vr[F[:, 0]], Vr[F[:, 2]] - Vr[F[:, 0]]), axis=1).sum()
        assert area == pytest.approx(expected_area), path


def test_non_convex_polygon_is_refused_by_index(tmp_path):
    path = tmp_path / "dart.off"  # an arrowhead, listed from a tip: the fan from corner 1 folds over
    path.write_text("OFF\n4 1 0\n0 0 0\n2 1 0\n0 0.2 0\n-2 1 0\n4 1 2 3 0\n")
    with pytest.raises(MeshError, match=r"face 0 \(4 corners \[1, 2, 3, 0\]\) is not convex"):
        read_mesh(path)
    path.write_text("OFF\n4 1 0\n0 0 0\n2 1 0\n0 0.2 0\n-2 1 0\n4 2 3 0 1\n")  # from the reflex corner:
    assert len(read_mesh(path)[1]) == 2  # its fan is the right triangulation, so it is accepted


@pytest.mark.parametrize("scale,offset,expected", [
    (1e200, 0.0, "overflow"), (1e-90, 0.0, "underflow"), (1e70, 0.0, "overflow"), (1e-13, 1e3, "Centre the mesh"),
])
def test_extreme_scales_are_refused_by_name(tmp_path, scale, offset, expected):
    V, F = icosphere(1)
    path = tmp_path / "big.off"
    X = V * scale + offset
    path.write_text(f"OFF\n{len(V)} {len(F)} 0\n" + "".join(f"{x!r} {y!r} {z!r}\n" for x, y, z in X.tolist())
                    + "".join(f"3 {a} {b} {c}\n" for a, b, c in F.tolist()))
    with pytest.raises(MeshError, match=f"big.off: .*{expected}"):
        read_mesh(path)
    with pytest.raises(MeshError, match=expected):
        TriMesh(V * scale + offset, F)
    for ok in (1e-50, 1e50):  # small and large but representable scales are fine, spectrum included
        eb = TriMesh(V * ok, F).eigenbasis(4, cache=False)
        np.testing.assert_allclose(eb.evals * ok**2, TriMesh(V, F).eigenbasis(4, cache=False).evals, rtol=1e-9,
                                   atol=1e-9)


def sliver_mesh(height: float) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere(2) with one face squashed to ``height`` × its longest edge."""
    V, F = icosphere(2)
    V = V.copy()
    a, b, c = F[0]
    mid = 0.5 * (V[a] + V[b])
    up = np.cross(np.cross(V[b] - V[a], V[c] - V[a]), V[b] - V[a])
    V[c] = mid + height * np.linalg.norm(V[b] - V[a]) * up / np.linalg.norm(up)
    return V, F


def test_sliver_faces_are_caught_before_they_poison_the_spectrum():
    V, F = sliver_mesh(1e-13)
    with pytest.raises(MeshError, match=r"face 0 .* is a sliver \(height 1\.0e-13 of its longest edge"):
        TriMesh(V, F)
    # the operator it would have built is indefinite: the solver refuses it rather than clip
    ops = mesh_operators(V, F, method="cotan")
    with pytest.raises(EigenSolveError, match=r"not positive semidefinite.*min -1\.\d+e\+0[45].*laplacian='robust'"):
        eigensolve(ops.stiffness, ops.mass, 6)
    TriMesh(*sliver_mesh(1e-6))  # thin but resolvable faces stay allowed


def test_sphere_map_refuses_to_overwrite_its_input_before_any_work(tmp_path):
    V, F = icosphere(1)
    src = tmp_path / "in.ply"
    write_mesh(src, V, F)
    before = src.read_bytes()
    link = tmp_path / "link.ply"
    link.symlink_to(src)
    os.chdir(tmp_path)
    for out in (src, link, tmp_path / "sub" / ".." / "in.ply", "in.ply"):
        with pytest.raises(MeshError, match="refusing to overwrite the input"):
            sphere_map_file(src, out)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(MeshError, match="not writable|is a file|cannot write"):
        sphere_map_file(src, tmp_path / "afile" / "out.ply")
    assert src.read_bytes() == before


def test_sphere_map_validates_before_welding(tmp_path):
    path = tmp_path / "bad.off"
    path.write_text("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 9\n")
    with pytest.raises(MeshError, match=r"face 3 has vertex index out of range \[1, 2, 9\]"):
        sphere_map_file(path, tmp_path / "out.ply")


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply", ".stl"])
def test_write_then_read_round_trips(tmp_path, suffix):
    V, F = icosphere(1)
    path = write_mesh(tmp_path / f"m{suffix}", V, F)
    V2, F2 = read_mesh(path)
    np.testing.assert_allclose(V2[F2], V[F], atol=1e-6)
    assert not list(tmp_path.glob(".tmp-*"))


def test_sphere_map_checks_for_room_before_the_map(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from niso_geom.geometry import conformal

    V, F = icosphere(1)
    write_mesh(tmp_path / "in.ply", V, F)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 100, 100))
    monkeypatch.setattr(conformal, "spherical_conformal_map", lambda *a, **k: pytest.fail("the map was computed"))
    with pytest.raises(MeshError, match=r"out.ply: needs about 2,560 bytes, only 100 are free"):
        sphere_map_file(tmp_path / "in.ply", tmp_path / "out.ply")
