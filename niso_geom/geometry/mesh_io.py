"""Reading and writing triangle meshes (OBJ / OFF / PLY / STL via trimesh)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from niso_geom.errors import MeshError

SUPPORTED = (".obj", ".off", ".ply", ".stl")


def read_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read vertices (N,3) float64 and triangles (F,3) int64, exactly as stored (no merging or reordering)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such mesh file")
    if path.suffix.lower() not in SUPPORTED:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r} (supported: {', '.join(SUPPORTED)})")
    try:
        if path.suffix.lower() == ".obj":
            V, F = _read_obj_geometry(path)
        else:
            mesh = trimesh.load(path, process=False, force="mesh", maintain_order=True)
            V, F = getattr(mesh, "vertices", np.zeros((0, 3))), getattr(mesh, "faces", np.zeros((0, 3)))
    except Exception as exc:  # trimesh raises many types on malformed files
        raise MeshError(f"{path}: could not be parsed as a triangle mesh ({exc})") from exc
    if len(F) == 0:
        raise MeshError(f"{path}: no triangle faces found")
    return np.asarray(V, dtype=np.float64), np.asarray(F, dtype=np.int64)


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


def write_mesh(path: str | os.PathLike, V: np.ndarray, F: np.ndarray) -> Path:
    """Write a mesh atomically (temp file + rename); the format follows the suffix."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() not in SUPPORTED:
        raise MeshError(f"{path}: unsupported mesh format {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        trimesh.Trimesh(np.asarray(V), np.asarray(F), process=False).export(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
