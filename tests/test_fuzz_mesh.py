"""Property-based fuzzing of the mesh readers (hypothesis): random bytes, truncations, header,
index and coordinate mutations of OBJ / OFF / PLY (ASCII and binary) / STL files.

Every case must end in a correct load (finite, in-range arrays; for OFF/PLY, whose headers
carry counts, exactly the original mesh when the bytes that matter are intact) or a named
:class:`~niso_geom.errors.MeshError`; nothing else may escape.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from niso_geom.domains import TriMesh
from niso_geom.errors import MeshError
from niso_geom.geometry.generators import icosphere
from niso_geom.geometry.mesh_io import read_mesh

V0, F0 = icosphere(1)  # 42 vertices, 80 faces
# 60 cases per property in the suite (a few seconds); NISO_FUZZ_EXAMPLES=2000 for a long campaign
FUZZ = settings(max_examples=int(os.environ.get("NISO_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def off_text(V=V0, F=F0, nv=None, nf=None) -> bytes:
    head = f"OFF\n{len(V) if nv is None else nv} {len(F) if nf is None else nf} 0\n"
    return (head + "".join(f"{x!r} {y!r} {z!r}\n" for x, y, z in V.tolist())
            + "".join(f"3 {a} {b} {c}\n" for a, b, c in F.tolist())).encode()


def ply_ascii(V=V0, F=F0, nv=None, nf=None) -> bytes:
    head = ("ply\nformat ascii 1.0\n"
            f"element vertex {len(V) if nv is None else nv}\nproperty double x\nproperty double y\nproperty double z\n"
            f"element face {len(F) if nf is None else nf}\nproperty list uchar int vertex_indices\nend_header\n")
    return (head + "".join(f"{x!r} {y!r} {z!r}\n" for x, y, z in V.tolist())
            + "".join(f"3 {a} {b} {c}\n" for a, b, c in F.tolist())).encode()


def ply_binary(V=V0, F=F0, nv=None, nf=None) -> bytes:
    head = ("ply\nformat binary_little_endian 1.0\n"
            f"element vertex {len(V) if nv is None else nv}\nproperty double x\nproperty double y\nproperty double z\n"
            f"element face {len(F) if nf is None else nf}\nproperty list uchar int vertex_indices\nend_header\n")
    faces = b"".join(struct.pack("<B3i", 3, *map(int, f)) for f in F)
    return head.encode() + np.ascontiguousarray(V, "<f8").tobytes() + faces


def obj_text(V=V0, F=F0) -> bytes:
    return ("".join(f"v {x!r} {y!r} {z!r}\n" for x, y, z in V.tolist())
            + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in F.tolist())).encode()


def stl_binary(V=V0, F=F0) -> bytes:
    tri = np.ascontiguousarray(V[F], "<f4")  # (F, 3, 3)
    rec = b"".join(struct.pack("<3f", 0, 0, 0) + t.tobytes() + b"\0\0" for t in tri)
    return b"\0" * 80 + struct.pack("<I", len(F)) + rec


WRITERS = {".off": off_text, ".ply": ply_ascii, ".bply": ply_binary, ".obj": obj_text, ".stl": stl_binary}
COUNTED = (".off", ".ply", ".bply")  # formats whose header carries the counts


def load(tmp_path, suffix: str, data: bytes):
    path = tmp_path / f"m{suffix.replace('.bply', '.ply')}"
    path.write_bytes(data)
    return read_mesh(path)


def assert_correct_or_named(tmp_path, suffix, data, *, must_equal_original=False):
    try:
        V, F = load(tmp_path, suffix, data)
    except MeshError as exc:
        assert "m." in str(exc)  # names the file
        return None
    assert V.dtype == np.float64 and F.dtype == np.int64 and V.ndim == 2 and V.shape[1] == 3
    assert np.isfinite(V).all() and F.shape[1] == 3 and F.min() >= 0 and F.max() < len(V)
    if must_equal_original:
        assert_same_mesh(V, F, suffix)
    return V, F


def assert_same_mesh(V, F, suffix):
    if suffix == ".stl":  # welded corners, numbered in order of first use: compare the triangles
        assert (len(V), len(F)) == (len(V0), len(F0))
        np.testing.assert_allclose(V[F], V0[F0], rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(F, F0)
        np.testing.assert_array_equal(V, V0)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_every_writer_loads_the_original(tmp_path, suffix):
    V, F = load(tmp_path, suffix, WRITERS[suffix]())
    assert (len(V), len(F)) == (42, 80)
    assert_same_mesh(V, F, suffix)


@FUZZ
@given(suffix=st.sampled_from(sorted(WRITERS)), data=st.binary(max_size=600))
def test_random_bytes(tmp_path, suffix, data):
    assert_correct_or_named(tmp_path, suffix, data)


@FUZZ
@given(suffix=st.sampled_from(sorted(WRITERS)), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncations(tmp_path, suffix, cut):
    full = WRITERS[suffix]()
    data = full[:int(cut * len(full))]
    got = assert_correct_or_named(tmp_path, suffix, data)
    if got is not None and suffix in COUNTED:
        # a counted format loads only if nothing that matters was cut (a final newline at most)
        assert len(full) - len(data) <= 1
        np.testing.assert_array_equal(got[1], F0)


@FUZZ
@given(suffix=st.sampled_from(COUNTED), dv=st.integers(-50, 50), df=st.integers(-90, 90))
def test_header_count_mutations(tmp_path, suffix, dv, df):
    data = WRITERS[suffix](nv=max(len(V0) + dv, 0), nf=max(len(F0) + df, 0))
    got = assert_correct_or_named(tmp_path, suffix, data, must_equal_original=(dv, df) == (0, 0))
    if (max(len(V0) + dv, 0), max(len(F0) + df, 0)) != (len(V0), len(F0)):
        assert got is None, "a header that disagrees with the body must not load"


@FUZZ
@given(suffix=st.sampled_from(sorted(WRITERS.keys() - {".stl"})), face=st.integers(0, len(F0) - 1),
       corner=st.integers(0, 2), value=st.integers(-5, 60))
def test_index_mutations(tmp_path, suffix, face, corner, value):
    F = F0.copy()
    F[face, corner] = value
    got = assert_correct_or_named(tmp_path, suffix, WRITERS[suffix](F=F))
    in_range = 0 <= value < len(V0)
    if suffix != ".obj":  # OBJ indices are 1-based and may be negative (relative); trimesh's rules
        assert (got is not None) == in_range
    if got is not None and suffix != ".obj":
        np.testing.assert_array_equal(got[1], F)
        try:  # a mutated face may be degenerate or duplicated: TriMesh names it, never crashes
            TriMesh(*got)
        except MeshError:
            pass


@FUZZ
@given(suffix=st.sampled_from(sorted(WRITERS.keys() - {".stl"})), vertex=st.integers(0, len(V0) - 1),
       axis=st.integers(0, 2),
       value=st.sampled_from([np.nan, np.inf, -np.inf, 1e200, -1e120, 1e-320, 0.0, 3.0, 1e-13]))
def test_coordinate_mutations(tmp_path, suffix, vertex, axis, value):
    V = V0.copy()
    V[vertex, axis] = value
    got = assert_correct_or_named(tmp_path, suffix, WRITERS[suffix](V=V))
    if not np.isfinite(value) or abs(value) > 1e100:
        assert got is None
    elif got is not None:
        np.testing.assert_array_equal(got[0], V)
        try:  # a moved vertex can fold or flatten faces: TriMesh names it, never crashes
            TriMesh(*got)
        except MeshError:
            pass


@FUZZ
@given(suffix=st.sampled_from(sorted(WRITERS)), pos=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_single_byte_mutations(tmp_path, suffix, pos, byte):
    data = bytearray(WRITERS[suffix]())
    data[pos % len(data)] = byte
    assert_correct_or_named(tmp_path, suffix, bytes(data))
