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
        # maintain_order keeps OBJ vertices as stored (no splitting at texture seams)
        mesh = trimesh.load(path, process=False, force="mesh", maintain_order=True)
    except Exception as exc:  # trimesh raises many types on malformed files
        raise MeshError(f"{path}: could not be parsed as a triangle mesh ({exc})") from exc
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise MeshError(f"{path}: no triangle faces found")
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


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
