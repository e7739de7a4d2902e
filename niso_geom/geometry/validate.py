"""Validation of triangle meshes: every problem is reported by name, with indices.

``validate_mesh`` raises :class:`~niso_geom.errors.MeshError` on input that would
poison a Laplacian (NaN/inf coordinates, coordinates whose scale float64 cannot carry
through areas and eigenvalues, face indices out of range, degenerate, sliver or duplicate
faces) and returns a :class:`MeshReport` describing topology (non-manifold
edges, boundary edges, connected components, Euler characteristic, genus).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from niso_geom.errors import MeshError

# Coordinates: the bounding box's longest side D must lie in [MIN_SPAN, MAX_SPAN]. Areas scale as
# D², their norms square them again (D⁴) and eigenvalues scale as 1/D², so beyond about 1e±77
# float64 overflows or underflows on the way (1e200 gives inf areas and a NaN mass; 1e-90 gives
# zero areas). Such meshes are refused, not rescaled: the eigenvalues the caller asked for depend
# on the scale, and dividing the coordinates is the caller's one-line fix.
MIN_SPAN, MAX_SPAN = 1e-60, 1e60
# The span must also be resolvable at the coordinates' magnitude (a mesh 1e-13 across placed
# at 1e3 has edge vectors made of rounding error).
MIN_RELATIVE_SPAN = 1e-9
# A face whose height is below this fraction of its longest edge is a sliver: its cotan
# weights (≈ 1 / relative height) swamp the rest of the Laplacian and rounding makes the
# operator indefinite (a sliver of relative height 1e-13 gives an eigenvalue of -3e9).
# The shared meshes' thinnest faces have relative heights above 2e-4.
SLIVER_RELATIVE_HEIGHT = 1e-10


@dataclass(frozen=True)
class MeshReport:
    """Topology and quality summary of a triangle mesh."""

    n_vertices: int
    n_faces: int
    n_edges: int
    n_components: int
    n_boundary_edges: int
    nonmanifold_edges: np.ndarray = field(repr=False)  # (E', 2) vertex pairs used by > 2 faces
    unreferenced_vertices: np.ndarray = field(repr=False)  # (U,)
    euler_characteristic: int = 0

    @property
    def is_manifold(self) -> bool:
        return len(self.nonmanifold_edges) == 0

    @property
    def is_closed(self) -> bool:
        return self.n_boundary_edges == 0

    @property
    def genus(self) -> int | None:
        """Genus of a closed, manifold, connected mesh (χ = 2 − 2g); None otherwise."""
        if not (self.is_manifold and self.is_closed and self.n_components == 1):
            return None
        return (2 - self.euler_characteristic) // 2

    def summary(self) -> str:
        g = self.genus
        return (
            f"{self.n_vertices} vertices, {self.n_faces} faces, {self.n_edges} edges, "
            f"{self.n_components} component(s), {self.n_boundary_edges} boundary edge(s), "
            f"{len(self.nonmanifold_edges)} non-manifold edge(s), χ = {self.euler_characteristic}"
            + (f", genus {g}" if g is not None else "")
        )


def _edges(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2) and the number of faces using each (E,)."""
    half = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    half.sort(axis=1)
    edges, counts = np.unique(half, axis=0, return_counts=True)
    return edges, counts


def check_arrays(V: np.ndarray, F: np.ndarray, *, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Coerce to float64 (N,3) / int64 (F,3) and raise MeshError on malformed values."""
    V = np.asarray(V)
    F = np.asarray(F)
    if V.ndim != 2 or V.shape[1] != 3:
        raise MeshError(f"{name}: vertices must have shape (N, 3), got {V.shape}")
    if F.ndim != 2 or F.shape[1] != 3:
        raise MeshError(f"{name}: faces must have shape (F, 3) (triangles only), got {F.shape}")
    if len(F) == 0:
        raise MeshError(f"{name}: the mesh has no faces")
    V = V.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
    if len(bad):
        raise MeshError(
            f"{name}: {len(bad)} vertex coordinate(s) are NaN or inf, first at vertex {bad[0]}: {V[bad[0]].tolist()}"
        )
    if not np.issubdtype(F.dtype, np.integer) and not np.all(np.mod(F, 1) == 0):
        raise MeshError(f"{name}: face indices must be integers")
    check_scale(V, name=name)
    F = F.astype(np.int64, copy=False)
    out = np.flatnonzero((F < 0).any(axis=1) | (F >= len(V)).any(axis=1))
    if len(out):
        f = out[0]
        raise MeshError(
            f"{name}: face {f} has vertex index out of range {F[f].tolist()} (valid: 0..{len(V) - 1});"
            f" {len(out)} such face(s)"
        )
    return V, F


def check_scale(V: np.ndarray, *, name: str = "mesh") -> None:
    """Raise MeshError unless the coordinates' span suits float64 (see MIN_SPAN, MAX_SPAN, MIN_RELATIVE_SPAN)."""
    if len(V) == 0:
        return
    with np.errstate(over="ignore"):
        span = float(np.max(V.max(axis=0) - V.min(axis=0)))  # the bounding box's longest side
    magnitude = float(np.abs(V).max())
    if span > MAX_SPAN:
        raise MeshError(f"{name}: the coordinates span {span:.3g} (bounding box's longest side); areas would overflow"
                        f" float64. Rescale the mesh to a span between {MIN_SPAN:g} and {MAX_SPAN:g}"
                        f" (e.g. divide the coordinates by {span:.0e})")
    if len(V) > 1 and span == 0.0:
        raise MeshError(f"{name}: all {len(V)} vertices have the same coordinates {V[0].tolist()}")
    if len(V) > 1 and span < MIN_RELATIVE_SPAN * magnitude:
        raise MeshError(f"{name}: the coordinates span {span:.3g} at a distance {magnitude:.3g} from the origin;"
                        " float64 cannot resolve the edges there. Centre the mesh (subtract its mean) first")
    if len(V) > 1 and span < MIN_SPAN:
        raise MeshError(f"{name}: the coordinates span only {span:.3g} (bounding box's longest side); areas would"
                        f" underflow float64. Rescale the mesh to a span between {MIN_SPAN:g} and {MAX_SPAN:g}")


def validate_mesh(V: np.ndarray, F: np.ndarray, *, name: str = "mesh", area_eps: float = 0.0) -> MeshReport:
    """Check a triangle mesh and describe its topology.

    Parameters
    ----------
    V : (N, 3) vertex positions.  F : (F, 3) triangle vertex indices.
    name : used in error messages (e.g. the file name).
    area_eps : faces with area ≤ ``area_eps`` × mean face area count as degenerate.

    Raises
    ------
    MeshError
        NaN/inf coordinates, out-of-range indices, degenerate faces (repeated vertex
        or zero area) or duplicate faces, each naming the first offending index.
    """
    V, F = check_arrays(V, F, name=name)
    rep = np.flatnonzero((F[:, 0] == F[:, 1]) | (F[:, 1] == F[:, 2]) | (F[:, 2] == F[:, 0]))
    if len(rep):
        raise MeshError(f"{name}: face {rep[0]} repeats a vertex {F[rep[0]].tolist()}; {len(rep)} degenerate face(s)")
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    zero = np.flatnonzero(area <= area_eps * max(area.mean(), np.finfo(float).tiny))
    if len(zero):
        raise MeshError(
            f"{name}: face {zero[0]} {F[zero[0]].tolist()} has zero area (collinear vertices); {len(zero)} such face(s)"
        )
    longest2 = np.max([np.sum((V[F[:, (i + 1) % 3]] - V[F[:, i]]) ** 2, axis=1) for i in range(3)], axis=0)
    height = 2.0 * area / np.sqrt(longest2)
    sliver = np.flatnonzero(height < SLIVER_RELATIVE_HEIGHT * np.sqrt(longest2))
    if len(sliver):
        f = sliver[0]
        raise MeshError(
            f"{name}: face {f} {F[f].tolist()} is a sliver (height {height[f] / np.sqrt(longest2[f]):.1e} of its"
            f" longest edge, below {SLIVER_RELATIVE_HEIGHT:g}); its cotan weights would make the Laplacian"
            f" indefinite. Remove or collapse such faces; {len(sliver)} such face(s)"
        )
    sorted_faces = np.sort(F, axis=1)
    _, first, counts = np.unique(sorted_faces, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = np.sort(first[counts > 1])
        raise MeshError(f"{name}: face {dup[0]} {F[dup[0]].tolist()} is duplicated; {len(dup)} duplicated face(s)")

    edges, counts = _edges(F)
    n = len(V)
    used = np.zeros(n, bool)
    used[F.ravel()] = True
    adj = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = sp.csgraph.connected_components(adj, directed=False)
    n_comp_used = len(np.unique(labels[used]))
    chi = int(used.sum()) - len(edges) + len(F)
    return MeshReport(
        n_vertices=n,
        n_faces=len(F),
        n_edges=len(edges),
        n_components=n_comp_used,
        n_boundary_edges=int((counts == 1).sum()),
        nonmanifold_edges=edges[counts > 2],
        unreferenced_vertices=np.flatnonzero(~used),
        euler_characteristic=chi,
    )


def require_closed_genus0(report: MeshReport, *, name: str = "mesh") -> None:
    """Raise MeshError unless the mesh is a single closed manifold component of genus 0."""
    if not report.is_manifold:
        e = report.nonmanifold_edges[0].tolist()
        raise MeshError(f"{name}: {len(report.nonmanifold_edges)} non-manifold edge(s), first {e}")
    if not report.is_closed:
        raise MeshError(f"{name}: the mesh has {report.n_boundary_edges} boundary edge(s); a closed surface is required")
    if report.n_components != 1:
        raise MeshError(f"{name}: the mesh has {report.n_components} connected components; one is required")
    if report.genus != 0:
        raise MeshError(f"{name}: the mesh has genus {report.genus} (χ = {report.euler_characteristic}); genus 0 is required")
