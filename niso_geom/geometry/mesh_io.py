"""Reading and writing triangle meshes (OBJ / OFF / PLY / STL).

Every reader returns vertices (N, 3) float64 and triangles (F, 3) int64 in the file's order,
checked by :func:`niso_geom.geometry.validate.check_arrays` (finite coordinates, usable scale,
indices in range) before anything else touches them. A file that does not say what it
means is a :class:`~niso_geom.errors.MeshError` naming the file and what was expected
versus found; nothing loads partially.

* OBJ: trimesh (``process=False``, ``maintain_order=True``); its polygons are triangulated.
* STL: trimesh, then welded: STL stores every triangle with its own three corners, so
  corners with identical coordinates are merged (:func:`weld_vertices`); a closed STL
  surface loads as one closed surface.
* OFF and PLY (ASCII and binary): read here, because trimesh loads a file whose body
  disagrees with the header's counts partially and without a word, and rejects OFF / binary
  PLY files mixing polygon sizes. The header's counts are checked against the body.
* Polygons of any size are fan-triangulated from their first corner; a non-convex (or
  non-planar, folded) polygon, whose fan would overlap itself, is refused by index.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

from niso_geom.errors import MeshError
from niso_geom.geometry.validate import check_arrays
from niso_geom.runio import atomic_write

SUPPORTED = (".obj", ".off", ".ply", ".stl")

__all__ = ["SUPPORTED", "read_mesh", "triangulate_polygons", "weld_vertices", "write_mesh"]


# ============================================================================ reading


def read_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read vertices (N,3) float64 and triangles (F,3) int64 from an OBJ/OFF/PLY/STL file.

    Vertices keep the file's order (STL corners are welded, see the module docstring);
    polygons are fan-triangulated. Raises :class:`MeshError` naming the file on anything
    malformed: unreadable or truncated content, header counts that disagree with the body,
    non-finite or out-of-scale coordinates, face indices out of range, non-convex polygons.
    """
    path = Path(path)
    if not path.exists():
        raise MeshError(f"{path}: no such mesh file")
    if not path.is_file():
        raise MeshError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r} (supported: {', '.join(SUPPORTED)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MeshError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise MeshError(f"{path}: the file is empty")
    if suffix == ".off":
        V, polygons = _parse_off(data, path)
    elif suffix == ".ply":
        V, polygons = _parse_ply(data, path)
    else:
        V, F = _load_trimesh(path)
        polygons = [(np.arange(len(F)), F)]
    V = np.asarray(V, dtype=np.float64)
    F = _triangulate(V, polygons, str(path))
    V, F = check_arrays(V, F, name=str(path))
    if suffix == ".stl":
        V, F, _ = weld_vertices(V, F)
    return V, F


def _load_trimesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh  # the OBJ/STL readers; imported here so `import niso_geom` stays light

    try:
        if path.suffix.lower() == ".obj":
            V, faces = _read_obj_geometry(path)
        else:
            mesh = trimesh.load(path, process=False, force="mesh", maintain_order=True)
            V, faces = getattr(mesh, "vertices", np.zeros((0, 3))), getattr(mesh, "faces", None)
    except Exception as exc:
        raise MeshError(f"{path}: could not be parsed as a triangle mesh ({type(exc).__name__}: {exc})") from exc
    if faces is None or len(faces) == 0:
        raise MeshError(f"{path}: no triangle faces found")
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != 3:  # e.g. a vertex line trimesh split into 2 or 4 values
        raise MeshError(f"{path}: vertices could not be read as (x, y, z) triples (got shape {V.shape})")
    F = np.asarray(faces)
    if F.ndim != 2 or F.shape[1] != 3:
        raise MeshError(f"{path}: faces could not be read as triangles (shape {F.shape})")
    return V, F.astype(np.int64)


def _read_obj_geometry(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of an OBJ file, ignoring its texture coordinates and materials.

    trimesh's OBJ reader attaches a textured visual whenever the file has ``vt`` lines, and copying
    that visual (``trimesh.load(force="mesh")``) needs Pillow, which is not a dependency. Only the
    geometry is wanted here, so the reader's per-object arrays are taken directly
    (``maintain_order``: vertices as stored, no splitting at texture seams); several objects are
    concatenated in file order with their face indices offset.
    """
    import trimesh

    with open(path, "rb") as f:
        loaded = trimesh.exchange.obj.load_obj(f, maintain_order=True, skip_materials=True)
    parts = [g for g in loaded.get("geometry", {}).values() if len(g.get("faces", ())) > 0]
    if not parts:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    offsets = np.cumsum([0] + [len(g["vertices"]) for g in parts[:-1]])
    V = np.concatenate([np.asarray(g["vertices"], dtype=np.float64) for g in parts])
    F = np.concatenate([np.asarray(g["faces"], dtype=np.int64) + o for g, o in zip(parts, offsets)])
    return V, F


def weld_vertices(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertices with identical coordinates (STL corners, UV seams of an OBJ file).

    Returns ``(V_w, F_w, index)`` with ``V_w[index] == V`` and vertices in order of first
    occurrence: a per-vertex result computed on the welded mesh is carried back to the
    input indexing by ``result[index]``. ``F`` must already be checked (indices in range).
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    _, first, inverse = np.unique(V, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(first)  # keep the first occurrence order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    index = rank[inverse]
    return V[np.sort(first)], index[F], index


Groups = list[tuple[np.ndarray, np.ndarray]]  # [(file positions (P,), faces (P, n))], one entry per size n


def triangulate_polygons(V: np.ndarray, polygons: list[np.ndarray], *, name: str = "mesh") -> np.ndarray:
    """Fan-triangulate polygons: ``polygons`` is a list of (P, n) int arrays (runs of faces with
    n ≥ 3 corners, in file order). Returns (F, 3) int64, each face's triangles in file order.

    Indices must be in range (checked here, naming the face). A polygon whose fan triangles do
    not all face the same way as the polygon (non-convex, or folded) raises :class:`MeshError`
    naming it.
    """
    groups, start = [], 0
    for P in polygons:
        P = np.asarray(P)
        if P.size == 0:
            continue
        if P.ndim != 2 or P.shape[1] < 3:
            raise MeshError(f"{name}: a face needs at least 3 corners, got {P.shape[1] if P.ndim == 2 else P.shape}")
        groups.append((start + np.arange(len(P)), P))
        start += len(P)
    return _triangulate(V, groups, name)


def _groups(faces: list[list[int]]) -> Groups:
    """Faces of any sizes (file order) -> one (positions, (P, n) array) group per size."""
    sizes = np.fromiter((len(f) for f in faces), dtype=np.int64, count=len(faces))
    out = []
    for n in np.unique(sizes):
        pos = np.flatnonzero(sizes == n)
        out.append((pos, np.array([faces[i] for i in pos], dtype=np.int64).reshape(len(pos), int(n))))
    return out


def _triangulate(V: np.ndarray, groups: Groups, name: str) -> np.ndarray:
    """Fan triangles of every group, placed in file order (see :func:`triangulate_polygons`)."""
    groups = [(np.asarray(pos), np.asarray(P)) for pos, P in groups if np.asarray(P).size]
    if not groups:
        raise MeshError(f"{name}: no faces found")
    n_vertices, bad = len(V), []
    for pos, P in groups:
        if not np.issubdtype(P.dtype, np.integer):
            raise MeshError(f"{name}: face indices must be integers")
        out = np.flatnonzero((P < 0).any(axis=1) | (P >= n_vertices).any(axis=1))
        bad.extend((int(pos[i]), P[i].tolist()) for i in out)
    if bad:
        f, corners = min(bad)
        raise MeshError(f"{name}: face {f} has vertex index out of range {corners} (valid: 0..{n_vertices - 1});"
                        f" {len(bad)} such face(s)")
    if len(groups) == 1 and groups[0][1].shape[1] == 3:
        pos, P = groups[0]
        return P.astype(np.int64)[np.argsort(pos, kind="stable")]
    n_faces = sum(len(pos) for pos, _ in groups)
    corners = np.empty(n_faces, np.int64)
    for pos, P in groups:
        corners[pos] = P.shape[1]
    out_start = np.concatenate([[0], np.cumsum(corners - 2)[:-1]])
    F = np.empty((int(np.sum(corners - 2)), 3), np.int64)
    X = np.asarray(V, dtype=np.float64)
    folded_faces = []
    for pos, P in groups:
        n = P.shape[1]
        P = P.astype(np.int64)
        fan = np.stack([np.repeat(P[:, :1], n - 2, axis=1), P[:, 1:-1], P[:, 2:]], axis=-1)  # (P, n-2, 3)
        if n > 3:
            normal = np.cross(X[fan[..., 1]] - X[fan[..., 0]], X[fan[..., 2]] - X[fan[..., 0]])  # (P, n-2, 3)
            total = normal.sum(axis=1, keepdims=True)  # the polygon's area vector
            folded = np.flatnonzero((np.einsum("pkc,pqc->pk", normal, total) < 0).any(axis=1))
            folded_faces.extend((int(pos[i]), P[i].tolist()) for i in folded)
        F[(out_start[pos][:, None] + np.arange(n - 2)).ravel()] = fan.reshape(-1, 3)
    if folded_faces:
        f, corners_f = min(folded_faces)
        raise MeshError(f"{name}: face {f} ({len(corners_f)} corners {corners_f}) is not convex; only convex"
                        f" polygons are triangulated (fan); {len(folded_faces)} such face(s)")
    return F


# ---------------------------------------------------------------------------- OFF


def _text_lines(data: bytes, path: Path, kind: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-empty lines, comments (#) removed."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MeshError(f"{path}: not a text {kind} file (byte {exc.start} is not ASCII)") from exc
    lines = text.splitlines()
    if "#" in text:
        lines = [line.split("#", 1)[0] for line in lines]
    return [(i, tokens) for i, tokens in enumerate(map(str.split, lines), start=1) if tokens]


def _ints(tokens: list[str], path: Path, line: int, what: str) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError as exc:
        raise MeshError(f"{path}: line {line}: {what} must be integers, got {' '.join(tokens)!r}") from exc


def _floats(tokens: list[str], path: Path, line: int, what: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError as exc:
        raise MeshError(f"{path}: line {line}: {what} must be numbers, got {' '.join(tokens)!r}") from exc


def _off_fast(body: list[tuple[int, list[str]]], nv: int, nf: int) -> tuple[np.ndarray, Groups] | None:
    """The common OFF body (3 coordinates per vertex, ``3 a b c`` per face) parsed by NumPy; None
    for anything else, which the line-by-line reader then reads or names."""
    if nf == 0 or any(len(t) != 3 for _, t in body[:nv]) or any(len(t) != 4 or t[0] != "3" for _, t in body[nv:]):
        return None
    try:
        V = np.array([t for _, t in body[:nv]], dtype=np.float64).reshape(nv, 3)
        F = np.array([t[1:] for _, t in body[nv:]], dtype=np.int64).reshape(nf, 3)
    except ValueError:
        return None
    return V, [(np.arange(nf), F)]


def _parse_off(data: bytes, path: Path) -> tuple[np.ndarray, Groups]:
    lines = _text_lines(data, path, "OFF")
    if not lines:
        raise MeshError(f"{path}: the file is empty")
    lineno, head = lines[0]
    m = re.fullmatch(r"(ST)?(C)?(N)?(4)?(n)?OFF", head[0])
    if not m:
        raise MeshError(f"{path}: line {lineno}: not an OFF file (the first word is {head[0][:20]!r}, expected OFF)")
    if m.group(4) or m.group(5) or (len(head) > 1 and head[1].upper() == "BINARY"):
        raise MeshError(f"{path}: {head[0]}{' BINARY' if len(head) > 1 else ''} files are not supported (3D text OFF only)")
    rest = head[1:]
    body = lines[1:]
    if not rest:
        if not body:
            raise MeshError(f"{path}: the header has no vertex and face counts")
        lineno, rest = body[0]
        body = body[1:]
    counts = _ints(rest[:3], path, lineno, "the header counts (vertices faces [edges])")
    if len(counts) < 2 or min(counts) < 0:
        raise MeshError(f"{path}: line {lineno}: expected 'VERTICES FACES [EDGES]' (non-negative), got {' '.join(rest)!r}")
    nv, nf = counts[0], counts[1]
    if len(body) < nv + nf:
        found_v = min(len(body), nv)
        raise MeshError(f"{path}: the header says {nv} vertices and {nf} faces, but the file has only"
                        f" {len(body)} data line(s) ({found_v} vertex line(s), {len(body) - found_v} face line(s))")
    if len(body) > nv + nf:
        extra_line = body[nv + nf][0]
        raise MeshError(f"{path}: the header says {nv} vertices and {nf} faces, but the file has"
                        f" {len(body) - nv - nf} more data line(s), from line {extra_line}")
    fast = _off_fast(body, nv, nf)
    if fast is not None:
        return fast
    V = np.empty((nv, 3))
    width = None
    for i, (ln, tokens) in enumerate(body[:nv]):
        if len(tokens) < 3:
            raise MeshError(f"{path}: line {ln}: vertex {i} needs 3 coordinates, got {' '.join(tokens)!r}")
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            raise MeshError(f"{path}: line {ln}: vertex {i} has {len(tokens)} values, earlier vertices {width};"
                            f" do the header counts ({nv} vertices, {nf} faces) match the body?")
        V[i] = _floats(tokens[:3], path, ln, f"vertex {i}'s coordinates")
    faces: list[list[int]] = []
    for j, (ln, tokens) in enumerate(body[nv:]):
        n = _ints(tokens[:1], path, ln, f"face {j}'s corner count")[0]
        if n < 3:
            raise MeshError(f"{path}: line {ln}: face {j} has {n} corner(s); at least 3 are needed")
        if len(tokens) < n + 1:
            raise MeshError(f"{path}: line {ln}: face {j} announces {n} corners but lists {len(tokens) - 1}")
        faces.append(_ints(tokens[1:n + 1], path, ln, f"face {j}'s vertex indices"))
    if not faces:
        raise MeshError(f"{path}: the header says 0 faces; a mesh needs faces")
    return V, _groups(faces)


# ---------------------------------------------------------------------------- PLY

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _ply_header(data: bytes, path: Path) -> tuple[str, list[tuple[str, int, list[tuple]]], int]:
    """(format, [(element, count, [(name, type) or (name, count type, item type)])], body offset)."""
    m = re.search(rb"end_header[ \t]*\r?\n", data[:1 << 20])
    if not data.startswith(b"ply") or m is None:
        raise MeshError(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    try:
        header = data[:m.start()].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise MeshError(f"{path}: the PLY header is not ASCII") from exc
    fmt, elements = None, []
    for lineno, line in enumerate(header, start=1):
        t = line.split()
        if not t or t[0] in ("ply", "comment", "obj_info"):
            continue
        if t[0] == "format" and len(t) >= 2 and t[1] in ("ascii", "binary_little_endian", "binary_big_endian"):
            fmt = t[1]
        elif t[0] == "element" and len(t) == 3 and t[2].isdigit():
            elements.append((t[1], int(t[2]), []))
        elif t[0] == "property" and elements and len(t) == 3 and t[1] in _PLY_TYPES:
            elements[-1][2].append((t[2], _PLY_TYPES[t[1]]))
        elif (t[0] == "property" and elements and len(t) == 5 and t[1] == "list"
              and t[2] in _PLY_TYPES and t[3] in _PLY_TYPES and _PLY_TYPES[t[2]][0] in "iu"):
            elements[-1][2].append((t[4], _PLY_TYPES[t[2]], _PLY_TYPES[t[3]]))
        else:
            raise MeshError(f"{path}: PLY header line {lineno} is not understood: {line.strip()[:80]!r}")
    if fmt is None:
        raise MeshError(f"{path}: the PLY header has no 'format ascii|binary_little_endian|binary_big_endian 1.0' line")
    names = [e[0] for e in elements]
    if "vertex" not in names or "face" not in names:
        raise MeshError(f"{path}: the PLY header declares elements {names}; 'vertex' and 'face' are required")
    vertex_props = [p[0] for p in elements[names.index("vertex")][2]]
    for axis in "xyz":
        if axis not in vertex_props:
            raise MeshError(f"{path}: the PLY vertex element has no '{axis}' property (has {vertex_props})")
    face_props = [p for p in elements[names.index("face")][2] if len(p) == 3]
    if not any(p[0] in ("vertex_indices", "vertex_index") for p in face_props):
        raise MeshError(f"{path}: the PLY face element has no 'vertex_indices' list property")
    return fmt, elements, m.end()


def _parse_ply(data: bytes, path: Path) -> tuple[np.ndarray, Groups]:
    fmt, elements, offset = _ply_header(data, path)
    if fmt == "ascii":
        return _ply_ascii(data[offset:], elements, path)
    return _ply_binary(data, offset, elements, "<" if fmt == "binary_little_endian" else ">", path)


def _ply_ascii(body: bytes, elements, path: Path) -> tuple[np.ndarray, Groups]:
    lines = _text_lines(body, path, "PLY")
    pos = 0
    V, faces = None, []
    for name, count, props in elements:
        if len(lines) - pos < count:
            raise MeshError(f"{path}: the PLY header says {count} {name} element(s), the file has"
                            f" {len(lines) - pos} line(s) left for them")
        rows = lines[pos:pos + count]
        pos += count
        if name == "vertex":
            cols = {p[0]: i for i, p in enumerate(props)}
            if any(len(p) == 3 for p in props):
                raise MeshError(f"{path}: list properties on PLY vertices are not supported")
            V = np.empty((count, 3))
            for i, (ln, tokens) in enumerate(rows):
                if len(tokens) != len(props):
                    raise MeshError(f"{path}: line {ln}: vertex {i} has {len(tokens)} value(s), the header declares"
                                    f" {len(props)}")
                V[i] = _floats([tokens[cols[a]] for a in "xyz"], path, ln, f"vertex {i}'s coordinates")
        elif name == "face":
            for j, (ln, tokens) in enumerate(rows):
                at = 0
                for prop in props:
                    if len(prop) == 2:
                        at += 1
                        continue
                    n = _ints(tokens[at:at + 1], path, ln, f"face {j}'s corner count")
                    if not n:
                        raise MeshError(f"{path}: line {ln}: face {j} is missing its list of corners")
                    items = tokens[at + 1:at + 1 + n[0]]
                    if len(items) != n[0]:
                        raise MeshError(f"{path}: line {ln}: face {j} announces {n[0]} corners but lists {len(items)}")
                    if prop[0] in ("vertex_indices", "vertex_index"):
                        if n[0] < 3:
                            raise MeshError(f"{path}: line {ln}: face {j} has {n[0]} corner(s); at least 3 are needed")
                        faces.append(_ints(items, path, ln, f"face {j}'s vertex indices"))
                    at += 1 + n[0]
                if at != len(tokens):
                    raise MeshError(f"{path}: line {ln}: face {j} has {len(tokens)} value(s), the header's properties"
                                    f" account for {at}")
    if pos != len(lines):
        raise MeshError(f"{path}: the PLY header's element counts account for {pos} line(s), the file has"
                        f" {len(lines) - pos} more, from line {lines[pos][0]}")
    if not faces:
        raise MeshError(f"{path}: the PLY file has no faces")
    return V, _groups(faces)


def _ply_binary(data: bytes, offset: int, elements, endian: str, path: Path) -> tuple[np.ndarray, Groups]:
    V, faces = None, []
    for name, count, props in elements:
        scalar = all(len(p) == 2 for p in props)
        if scalar:
            dtype = np.dtype([(f"p{i}", endian + p[1]) for i, p in enumerate(props)])
            need = dtype.itemsize * count
            if len(data) - offset < need:
                raise MeshError(f"{path}: the PLY header says {count} {name} element(s) ({need} bytes), the file has"
                                f" {len(data) - offset} byte(s) left")
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += need
            if name == "vertex":
                idx = {p[0]: i for i, p in enumerate(props)}
                V = np.stack([arr[f"p{idx[a]}"].astype(np.float64) for a in "xyz"], axis=1)
            continue
        if name == "vertex":
            raise MeshError(f"{path}: list properties on PLY vertices are not supported")
        offset = _ply_binary_lists(data, offset, name, count, props, endian, path, faces if name == "face" else None)
    if offset != len(data):
        raise MeshError(f"{path}: the PLY header's element counts account for {offset} bytes, the file has"
                        f" {len(data) - offset} more")
    if not faces:
        raise MeshError(f"{path}: the PLY file has no faces")
    return V, faces


_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}


def _ply_binary_lists(data: bytes, offset: int, name: str, count: int, props, endian: str, path: Path,
                      faces: Groups | None) -> int:
    """Read ``count`` instances of an element with list properties; append (positions, (P, n)) face groups
    to ``faces``.

    Fast path: one structured read when every instance has the first one's list sizes; else the
    run with those sizes is taken and the rest is read instance by instance.
    """
    is_index = [len(p) == 3 and p[0] in ("vertex_indices", "vertex_index") for p in props]
    sizes = _list_sizes(data, offset, props, endian, name, 0, count, path)
    fields = []
    for i, p in enumerate(props):
        if len(p) == 2:
            fields.append((f"p{i}", endian + p[1]))
        else:
            fields.append((f"n{i}", endian + p[1]))
            if sizes[i]:
                fields.append((f"p{i}", endian + p[2], (sizes[i],)))
    dtype = np.dtype(fields)
    room = (len(data) - offset) // dtype.itemsize
    arr = np.frombuffer(data, dtype=dtype, count=min(count, room), offset=offset)
    same = np.ones(len(arr), bool)
    for i, p in enumerate(props):
        if len(p) == 3:
            same &= arr[f"n{i}"] == sizes[i]
    run = len(arr) if same.all() else int(np.argmin(same))
    for i in range(len(props)):
        if is_index[i] and faces is not None:
            if sizes[i] < 3:
                raise MeshError(f"{path}: face 0 has {sizes[i]} corner(s); at least 3 are needed")
            faces.append((np.arange(run), np.asarray(arr[f"p{i}"][:run], dtype=np.int64).reshape(run, sizes[i])))
    offset += run * dtype.itemsize
    if run == count:
        return offset
    # mixed sizes: instance by instance (struct.unpack_from, O(bytes))
    polys: list[list[int]] = []
    for j in range(run, count):
        for i, p in enumerate(props):
            if len(p) == 2:
                offset += np.dtype(p[1]).itemsize
                if offset > len(data):
                    raise MeshError(f"{path}: the file ends inside {name} element {j} of {count} (truncated?)")
                continue
            csize, isize = np.dtype(p[1]).itemsize, np.dtype(p[2]).itemsize
            if offset + csize > len(data):
                raise MeshError(f"{path}: the file ends inside {name} element {j} of {count} (truncated?)")
            n = struct.unpack_from(endian + _STRUCT[p[1]], data, offset)[0]
            offset += csize
            if offset + n * isize > len(data):
                raise MeshError(f"{path}: the file ends inside {name} element {j} of {count} (truncated?)")
            if is_index[i] and faces is not None:
                if n < 3:
                    raise MeshError(f"{path}: face {j} has {n} corner(s); at least 3 are needed")
                polys.append(list(struct.unpack_from(f"{endian}{n}{_STRUCT[p[2]]}", data, offset)))
            offset += n * isize
    if faces is not None:
        faces.extend((run + pos, P) for pos, P in _groups(polys))
    return offset


def _list_sizes(data: bytes, offset: int, props, endian: str, name: str, j: int, count: int, path: Path) -> list[int]:
    """The list sizes of the element instance starting at ``offset`` (0 for scalar properties)."""
    sizes = []
    for p in props:
        if len(p) == 2:
            sizes.append(0)
            offset += np.dtype(p[1]).itemsize
            continue
        csize = np.dtype(p[1]).itemsize
        if offset + csize > len(data):
            raise MeshError(f"{path}: the file ends inside {name} element {j} of {count} (truncated?)")
        n = int(struct.unpack_from(endian + _STRUCT[p[1]], data, offset)[0])
        sizes.append(n)
        offset += csize + n * np.dtype(p[2]).itemsize
    return sizes


# ============================================================================ writing


def write_mesh(path: str | os.PathLike, V: np.ndarray, F: np.ndarray) -> Path:
    """Write a mesh atomically (:func:`niso_geom.runio.atomic_write`); the format follows the suffix."""
    import trimesh  # the writers for every supported format

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r}")
    data = trimesh.Trimesh(np.asarray(V), np.asarray(F), process=False).export(file_type=suffix[1:])
    with atomic_write(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path
