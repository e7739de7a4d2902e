"""Mesh generators: icosphere and torus (closed, manifold, consistently oriented), and the
rotations generating the icosphere's symmetry group."""

from __future__ import annotations

import numpy as np

from niso_geom.geometry.rotations import rotation_about

#: A face of the original icosahedron in :func:`icosphere`'s layout (its first 12 vertices).
ICOSAHEDRON_FACE = (0, 11, 5)


def icosphere(level: int = 3, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Icosahedron subdivided ``level`` times, vertices on the sphere: (10·4^l+2, 3), (20·4^l, 3)."""
    if level < 0:
        raise ValueError(f"icosphere level must be ≥ 0, got {level}")
    t = (1.0 + np.sqrt(5.0)) / 2.0
    V = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                  [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=np.float64)
    F = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                  [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                  [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    for _ in range(level):
        edges = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = V[uniq[:, 0]] + V[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inv.reshape(3, -1).T + len(V)  # midpoints of edges (01, 12, 20) per face
        a, b, c = F.T
        F = np.concatenate([np.stack([a, m[:, 0], m[:, 2]], 1), np.stack([b, m[:, 1], m[:, 0]], 1),
                            np.stack([c, m[:, 2], m[:, 1]], 1), m])
        V = np.concatenate([V, mid])
    return V * radius, F


def icosahedral_generators(vertices: np.ndarray, centre: np.ndarray | None = None) -> list[np.ndarray]:
    """Two rotations (3, 3) generating the icosahedral rotation group (order 60) of an :func:`icosphere`.

    2π/5 about vertex 0 and 2π/3 about the centre of the original face :data:`ICOSAHEDRON_FACE`,
    both through ``centre`` (default the origin). ``vertices`` must keep :func:`icosphere`'s layout
    (subdivision appends, so the first 12 are the icosahedron's) up to a similarity transform.
    """
    V = np.asarray(vertices, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != 3 or len(V) < 12:
        raise ValueError(f"an icosphere has at least 12 vertices (N, 3), got shape {V.shape}")
    c = np.zeros(3) if centre is None else np.asarray(centre, dtype=np.float64)
    vertex_axis = V[0] - c
    face_axis = V[list(ICOSAHEDRON_FACE)].mean(0) - c
    return [rotation_about(vertex_axis, 2 * np.pi / 5), rotation_about(face_axis, 2 * np.pi / 3)]


def torus_mesh(n_major: int = 48, n_minor: int = 24, major: float = 1.0, minor: float = 0.4
               ) -> tuple[np.ndarray, np.ndarray]:
    """Torus of revolution about z: (n_major·n_minor, 3) vertices, genus 1, outward normals."""
    if n_major < 3 or n_minor < 3:
        raise ValueError("torus_mesh needs at least 3 segments in each direction")
    if not 0 < minor < major:
        raise ValueError(f"need 0 < minor < major, got minor={minor}, major={major}")
    u = 2 * np.pi * np.arange(n_major) / n_major
    v = 2 * np.pi * np.arange(n_minor) / n_minor
    U, Vv = np.meshgrid(u, v, indexing="ij")
    r = major + minor * np.cos(Vv)
    V = np.stack([r * np.cos(U), r * np.sin(U), minor * np.sin(Vv)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    d = i * n_minor + (j + 1) % n_minor
    F = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return V, F
