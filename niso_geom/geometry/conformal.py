"""Spherical conformal parameterization of closed genus-0 triangle meshes.

``spherical_conformal_map(V, F)`` maps a closed genus-0 mesh bijectively onto the unit
sphere, as conformally as floating point allows:

1. **Conformalized mean curvature flow** (Kazhdan, Solomon, Ben-Chen 2012): the cotan
   stiffness ``S`` of the *original* mesh is kept fixed, the lumped mass ``M_t`` is
   recomputed on the current embedding, and each implicit step solves
   ``(M_t + δ S) X_{t+1} = M_t X_t``, then recentres and rescales to unit area. Between
   steps a Möbius transformation of R³ re-centres the pushed-forward area measure
   whenever it drifts (|centroid| > 0.05), so thin parts are not squeezed below floating-
   point resolution while the flow runs.
2. Radial projection onto the unit sphere and **Möbius centring**: the boost that puts the
   centroid of the original vertex areas, carried to the sphere, at the origin
   (:func:`~niso_geom.geometry.mobius.mobius_center`).
3. **Bijective finish**, only when step 2 leaves flipped or numerically degenerate
   triangles (thin shapes, coarse meshes): a bijective start on the sphere (a Tutte
   embedding in the stereographic plane with mean-value weights taken from the flow's
   image, or, where that is not resolvable in double precision, a progressive embedding
   that collapses the mesh to a tetrahedron and re-inserts vertices inside the kernel of
   their one-ring), then a flip-free projected-Newton minimisation of the symmetric
   conformal energy ``Σ_f A_f (σ₁/σ₂ + σ₂/σ₁)`` plus a tiny area barrier
   ``area_weight · Σ_f A_f (r_f + 1/r_f)`` (``r_f``: area ratio), with a line search that
   rejects any step that would flip a triangle. The map is then Möbius-centred as far as
   bijectivity allows. docs/conformal.md explains the choice.

All quantities on the sphere are measured on the *chordal* triangles (the flat triangles
spanned by the mapped vertices), which is what the piecewise-linear map produces.

NumPy/SciPy (+ potpourri3d for the cotan stiffness and lumped mass); no torch.
"""

from __future__ import annotations

import heapq
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from niso_geom.errors import MeshError
from niso_geom.geometry.mesh_io import read_mesh, weld_vertices
from niso_geom.geometry.mobius import hermitian_power, mobius_apply, mobius_center, mobius_polar
from niso_geom.geometry.validate import check_arrays
from niso_geom.runio import atomic_write, same_file

__all__ = [
    "SphereMapReport",
    "check_closed_genus0",
    "conformalized_mcf",
    "sphere_map_file",
    "sphere_map_quality",
    "spherical_conformal_map",
    "weld_vertices",
]

_FOUR_PI = 4.0 * np.pi


# ============================================================================ report


@dataclass(frozen=True)
class SphereMapReport:
    """Quality of a map from a triangle mesh onto the unit sphere.

    Angles and areas on the sphere are those of the chordal (flat) triangles.

    Attributes
    ----------
    n_vertices, n_faces : mesh size.
    n_flipped : faces whose image is oriented against the outward normal (or has zero area).
    angle_error_mean, angle_error_max : per-corner ``|angle on sphere − angle on mesh|`` in radians.
    qc_mean, qc_max : per-face quasi-conformal dilatation ``K = σ₁/σ₂ ≥ 1`` of the linear map
        from the mesh triangle to its chordal image (1 = conformal); flipped faces are excluded.
    area_distortion_mean, area_distortion_max : ``|log(a_f/Σa) − log(A_f/ΣA)|`` over faces
        (``a``: chordal area, ``A``: mesh area); flipped faces are excluded.
    min_area_ratio : smallest ``(a_f/Σa)/(A_f/ΣA)`` (how far the map compresses a face).
    centroid_norm : ``|Σ_i A_i S_i| / Σ_i A_i`` with ``A_i`` the original lumped vertex areas
        (0 when the map is Möbius-centred).
    method : which stages produced the map (``"cmcf"``, ``"cmcf+tutte+newton"``,
        ``"cmcf+progressive+newton"``, ...).
    flow_iterations, newton_iterations : work done.
    seconds : wall time of :func:`spherical_conformal_map` (0 for :func:`sphere_map_quality`).
    """

    n_vertices: int
    n_faces: int
    n_flipped: int
    angle_error_mean: float
    angle_error_max: float
    qc_mean: float
    qc_max: float
    area_distortion_mean: float
    area_distortion_max: float
    min_area_ratio: float
    centroid_norm: float
    method: str = ""
    flow_iterations: int = 0
    newton_iterations: int = 0
    seconds: float = 0.0

    @property
    def bijective(self) -> bool:
        """True when no face is flipped (with a closed genus-0 mesh this makes the map a bijection)."""
        return self.n_flipped == 0

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.n_vertices} vertices, {self.n_faces} faces: {self.n_flipped} flipped; "
            f"angle error mean {self.angle_error_mean:.4f} / max {self.angle_error_max:.3f} rad; "
            f"QC mean {self.qc_mean:.3f} / max {self.qc_max:.2f}; "
            f"|log area ratio| mean {self.area_distortion_mean:.2f} / max {self.area_distortion_max:.1f}; "
            f"centroid {self.centroid_norm:.1e}; method {self.method}; {self.seconds:.2f} s"
        )


# ============================================================================ mesh helpers


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross has a large per-call overhead on small arrays)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


def _face_normals_raw(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    a = X[F[:, 0]]
    return _cross(X[F[:, 1]] - a, X[F[:, 2]] - a)


def _face_areas(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    return 0.5 * np.linalg.norm(_face_normals_raw(X, F), axis=1)


def _signed_volume6(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Per-face ``det(a, b, c)`` computed from edge vectors (accurate for tiny faces)."""
    a, b, c = X[F[:, 0]], X[F[:, 1]], X[F[:, 2]]
    return np.einsum("ij,ij->i", a + b + c, _cross(b - a, c - a)) / 3.0


def _corner_angles(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    out = np.empty(F.shape)
    for k in range(3):
        p = X[F[:, k]]
        u = X[F[:, (k + 1) % 3]] - p
        v = X[F[:, (k + 2) % 3]] - p
        out[:, k] = np.arctan2(np.linalg.norm(_cross(u, v), axis=1), np.einsum("ij,ij->i", u, v))
    return out


def _corner_cotans(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    out = np.empty(F.shape)
    for k in range(3):
        p = V[F[:, k]]
        u = V[F[:, (k + 1) % 3]] - p
        v = V[F[:, (k + 2) % 3]] - p
        out[:, k] = np.einsum("ij,ij->i", u, v) / np.linalg.norm(_cross(u, v), axis=1)
    return out


def _vertex_areas(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    import potpourri3d as pp3d

    return np.asarray(pp3d.vertex_areas(X, F), dtype=np.float64)


def _fans_per_vertex(F: np.ndarray, n: int) -> np.ndarray:
    """Number of edge-connected fans of faces around each vertex (1 for a manifold vertex)."""
    M = len(F)
    corner = np.arange(3 * M)
    v = F.ravel()
    nxt = F[:, [1, 2, 0]].ravel()
    prv = F[:, [2, 0, 1]].ravel()
    # corners around v sharing the edge (v, w) are adjacent; key each (v, w) pair
    keys = np.concatenate([v * n + nxt, v * n + prv])
    owners = np.concatenate([corner, corner])
    order = np.argsort(keys, kind="stable")
    k, o = keys[order], owners[order]
    same = np.flatnonzero(k[1:] == k[:-1])
    G = sp.coo_matrix((np.ones(len(same)), (o[same], o[same + 1])), shape=(3 * M, 3 * M))
    _, label = sp.csgraph.connected_components(G, directed=False)
    fans = np.unique(np.stack([v, label], axis=1), axis=0)[:, 0]
    return np.bincount(fans, minlength=n)


def check_closed_genus0(V: np.ndarray, F: np.ndarray, *, name: str = "mesh") -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a closed, connected, manifold, consistently oriented genus-0 triangle mesh.

    Uses :func:`niso_geom.geometry.validate.validate_mesh` (NaN/inf, index range,
    degenerate and duplicate faces, topology) and adds the checks a sphere map needs:
    no unreferenced vertices, no non-manifold vertices, Euler characteristic exactly 2 and
    consistently oriented faces. Raises
    :class:`~niso_geom.errors.MeshError` naming the problem (genus, number of components,
    non-manifold or boundary edges, ...).

    Returns ``(V, F, orientation)`` with ``V`` float64, ``F`` int64 and ``orientation``
    ``+1`` if the faces wind counter-clockwise seen from outside (positive enclosed
    volume), ``-1`` if they wind the other way.
    """
    from niso_geom.geometry.validate import check_arrays, require_closed_genus0, validate_mesh

    V, F = check_arrays(V, F, name=name)
    report = validate_mesh(V, F, name=name)
    # Each vertex's faces must form a single fan (two sheets touching at a vertex pass the
    # edge checks and can even keep χ = 2 elsewhere).
    nfan = _fans_per_vertex(F, len(V)) if report.is_manifold and report.is_closed else np.ones(1)
    if np.any(nfan > 1):
        bad = np.flatnonzero(nfan > 1)
        raise MeshError(
            f"{name}: {len(bad)} non-manifold vertex(es) (several sheets meet there), first {int(bad[0])};"
            " split them first"
        )
    require_closed_genus0(report, name=name)
    if len(report.unreferenced_vertices):
        u = report.unreferenced_vertices
        raise MeshError(f"{name}: {len(u)} vertex(es) are used by no face, first {int(u[0])}; remove them first")
    if report.euler_characteristic != 2:
        raise MeshError(f"{name}: Euler characteristic {report.euler_characteristic} (a sphere has 2)")
    # Each directed edge must occur exactly once for a consistently oriented closed surface.
    half = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    _, counts = np.unique(half, axis=0, return_counts=True)
    if np.any(counts > 1):
        raise MeshError(
            f"{name}: faces are not consistently oriented ({int((counts > 1).sum())} directed edge(s) used twice);"
            " fix the winding first (e.g. trimesh.repair.fix_winding)"
        )
    vol = float(np.sum(_signed_volume6(V - V.mean(0), F)))
    return V, F, (1 if vol >= 0 else -1)


# ============================================================================ quality


def _local_frames(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Edge vectors of each triangle in its own orthonormal frame: (M, 2, 2), columns e01, e02."""
    u = X[F[:, 1]] - X[F[:, 0]]
    v = X[F[:, 2]] - X[F[:, 0]]
    lu = np.linalg.norm(u, axis=1)
    e1 = u / np.maximum(lu, 1e-300)[:, None]
    n = _cross(u, v)
    e2 = _cross(n, e1)
    e2 /= np.maximum(np.linalg.norm(e2, axis=1), 1e-300)[:, None]
    T = np.zeros((len(F), 2, 2))
    T[:, 0, 0] = lu
    T[:, 0, 1] = np.einsum("ij,ij->i", v, e1)
    T[:, 1, 1] = np.einsum("ij,ij->i", v, e2)
    return T


def _beltrami_abs(V: np.ndarray, S: np.ndarray, F: np.ndarray) -> np.ndarray:
    """|μ| of the linear map from each mesh triangle to its chordal image (0 = conformal).

    With the map's 2×2 Jacobian ``[[a, b], [c, d]]`` in orthonormal frames,
    ``|μ| = |(a − d) + i(c + b)| / |(a + d) + i(c − b)|`` (anti-conformal over conformal
    part), which keeps full relative precision near conformality, unlike
    ``K + 1/K = tr(JᵀJ)/det J``.
    """
    Tr = _local_frames(V, F)
    Tt = _local_frames(S, F)
    det = Tr[:, 0, 0] * Tr[:, 1, 1]
    inv = np.zeros_like(Tr)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv[:, 0, 0] = 1.0 / Tr[:, 0, 0]
        inv[:, 0, 1] = -Tr[:, 0, 1] / det
        inv[:, 1, 1] = 1.0 / Tr[:, 1, 1]
        J = Tt @ inv
        a, b, c, d = J[:, 0, 0], J[:, 0, 1], J[:, 1, 0], J[:, 1, 1]
        return np.hypot(a - d, c + b) / np.hypot(a + d, c - b)


def sphere_map_quality(
    V: np.ndarray,
    F: np.ndarray,
    S: np.ndarray,
    *,
    vertex_weights: np.ndarray | None = None,
    orientation: int = 1,
) -> SphereMapReport:
    """Distortion of the map ``V → S`` (``S`` on the unit sphere, same faces ``F``).

    ``orientation = -1`` declares that ``F`` winds clockwise seen from outside (flips are
    then counted against the reversed winding). ``vertex_weights`` (default: lumped vertex
    areas of ``V``) define the centroid reported as ``centroid_norm``.
    """
    V = np.asarray(V, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    Fo = F if orientation > 0 else F[:, ::-1]
    det = _signed_volume6(S, Fo)
    flipped = det <= 0
    ang = np.abs(_corner_angles(S, Fo) - _corner_angles(V, Fo))
    A = _face_areas(V, Fo)
    a = _face_areas(S, Fo)
    ok = ~flipped & (a > 0)
    mu = _beltrami_abs(V, S, Fo)
    with np.errstate(divide="ignore", invalid="ignore"):
        K = (1.0 + mu) / (1.0 - mu)
        ratio = (a / a.sum()) / (A / A.sum())
        logr = np.abs(np.log(ratio))
    w = _vertex_areas(V, F) if vertex_weights is None else np.asarray(vertex_weights, dtype=np.float64)
    c = (w @ (S / np.linalg.norm(S, axis=1, keepdims=True))) / w.sum()

    def _stat(x, f):
        return float(f(x)) if x.size else float("nan")

    return SphereMapReport(
        n_vertices=len(V),
        n_faces=len(F),
        n_flipped=int(flipped.sum()),
        angle_error_mean=float(ang.mean()),
        angle_error_max=float(ang.max()),
        qc_mean=_stat(K[ok], np.mean),
        qc_max=_stat(K[ok], np.max),
        area_distortion_mean=_stat(logr[ok], np.mean),
        area_distortion_max=_stat(logr[ok], np.max),
        min_area_ratio=float(np.min(np.where(flipped, 0.0, ratio))),
        centroid_norm=float(np.linalg.norm(c)),
    )


# ============================================================================ stage 1: cMCF


def _spd_factor(A: sp.spmatrix):
    """Sparse LU of a symmetric positive definite matrix, in SuperLU's symmetric mode.

    Minimum degree on A + Aᵀ with diagonal pivots is ~100× faster than SuperLU's default
    threshold pivoting on mesh matrices (26k vertices: 0.1 s instead of 10 s).
    """
    return sla.splu(
        sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True)
    )


def _normalize_embedding(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    m = _vertex_areas(X, F)
    X = X - (m @ X) / m.sum()
    return X / np.sqrt(_face_areas(X, F).sum())


def _ball_mobius(U: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Möbius transformation of R³ preserving the unit sphere that sends ``c`` (|c| < 1) to 0."""
    d = U - c
    cc = c @ c
    den = 1.0 - 2.0 * (U @ c) + np.sum(U * U, axis=1) * cc
    return ((1.0 - cc) * d - np.sum(d * d, axis=1, keepdims=True) * c) / den[:, None]


def conformalized_mcf(
    V: np.ndarray,
    F: np.ndarray,
    *,
    time_step: float = 1e-2,
    max_iters: int = 100,
    tol: float = 1e-6,
    center_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Conformalized mean curvature flow (Kazhdan, Solomon, Ben-Chen 2012).

    Solves ``(M_t + δ S) X_{t+1} = M_t X_t`` with ``S`` the cotan stiffness of the input
    mesh (``potpourri3d.cotan_laplacian``, fixed) and ``M_t`` the lumped mass of the
    current embedding (``potpourri3d.vertex_areas``), then recentres and rescales to unit
    area; ``δ = time_step`` is relative to that unit area. When the pushed-forward measure
    ``center_weights`` (default: the input's vertex areas) drifts off-centre by more than
    0.05, a Möbius transformation of R³ that preserves the sphere re-centres it: this keeps
    thin parts resolvable in double precision and does not change the conformal class.

    Stops when the mass-weighted RMS displacement of a step falls below ``tol`` (relative
    to the unit-area scale) or after ``max_iters`` steps. Returns the embedding (unit area,
    centred) and the number of steps.
    """
    import potpourri3d as pp3d

    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    S = pp3d.cotan_laplacian(V, F, denom_eps=1e-10)
    w = _vertex_areas(V, F) if center_weights is None else np.asarray(center_weights, dtype=np.float64)
    w = w / w.sum()
    X = _normalize_embedding(V, F)
    dS = (time_step * S).tocsc()
    it = 0
    for it in range(1, max_iters + 1):
        m = _vertex_areas(X, F)
        Xn = _normalize_embedding(_spd_factor(dS + sp.diags(m)).solve(m[:, None] * X), F)
        r = np.linalg.norm(Xn, axis=1)
        R = r.mean()
        c = w @ (Xn / r[:, None])
        nc = np.linalg.norm(c)
        if nc > 0.05:
            U = Xn / R
            # keep the Möbius pole c/|c|^2 well away from every vertex
            limit = min(0.5, 0.5 / max(np.max(np.linalg.norm(U, axis=1)), 1.0))
            Xn = _normalize_embedding(_ball_mobius(U, c * min(1.0, limit / nc)), F)
        step = np.sqrt(np.sum(_vertex_areas(Xn, F)[:, None] * (Xn - X) ** 2))
        X = Xn
        if step < tol and nc <= 0.05:
            break
    return X, it


# ============================================================================ stage 3: bijective finish


def _reference_triangles(V: np.ndarray, F: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mesh triangle areas times ``scale`` (default: so that they total 4π), and the corner cotangents."""
    A = _face_areas(V, F)
    return A * (_FOUR_PI / A.sum() if scale is None else scale), _corner_cotans(V, F)


def _skew(v: np.ndarray) -> np.ndarray:
    Z = np.zeros(v.shape[:-1] + (3, 3))
    Z[..., 0, 1], Z[..., 0, 2] = -v[..., 2], v[..., 1]
    Z[..., 1, 0], Z[..., 1, 2] = v[..., 2], -v[..., 0]
    Z[..., 2, 0], Z[..., 2, 1] = -v[..., 1], v[..., 0]
    return Z


class _ConformalEnergy:
    """``E = Σ_f A_f [ (tr JᵀJ)/r + λ (r + 1/r) ]`` over the chordal triangles of points on the sphere.

    ``J`` is the linear map from the mesh triangle (area rescaled so the total is 4π) to
    its chordal image, ``tr JᵀJ = Σ_k cot θ_k |e_k|² / (2A)`` and ``r = det(a,b,c)/(2A)``
    (the area ratio times the distance of the triangle's plane from the centre, smooth
    and accurate from edge vectors). ``tr/r = K + 1/K`` is the symmetric conformal
    distortion; the ``λ`` term only keeps triangles from shrinking below what double
    precision resolves. ``E = inf`` as soon as a triangle flips.
    """

    def __init__(self, V: np.ndarray, F: np.ndarray, lam: float, area_scale: float | None = None,
                 face_weights: np.ndarray | None = None):
        self.F = F
        self.A, self.C = _reference_triangles(V, F, area_scale)
        self.W = self.A if face_weights is None else np.asarray(face_weights, dtype=np.float64)
        self.lam = lam
        M = len(F)
        idx = (np.repeat(F, 2, axis=1) * 2 + np.tile([0, 1], 3)[None, :]).astype(np.int64)  # (M, 6)
        self.idx6 = idx
        self.I = np.broadcast_to(idx[:, :, None], (M, 6, 6)).ravel()
        self.J = np.broadcast_to(idx[:, None, :], (M, 6, 6)).ravel()
        K = np.zeros((M, 3, 3))
        C = self.C
        K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = C[:, 1] + C[:, 2], C[:, 0] + C[:, 2], C[:, 0] + C[:, 1]
        K[:, 0, 1] = K[:, 1, 0] = -C[:, 2]
        K[:, 0, 2] = K[:, 2, 0] = -C[:, 1]
        K[:, 1, 2] = K[:, 2, 1] = -C[:, 0]
        self.Htr = (K[:, :, None, :, None] * np.eye(3)[None, None, :, None, :]).reshape(M, 9, 9)

    def ratios(self, X: np.ndarray) -> np.ndarray:
        return _signed_volume6(X, self.F) / (2.0 * self.A)

    def value(self, X: np.ndarray) -> float:
        F, A, C = self.F, self.A, self.C
        a, b, c = X[F[:, 0]], X[F[:, 1]], X[F[:, 2]]
        r = self.ratios(X)
        if r.min() <= 0:
            return np.inf
        tr = (C[:, 0] * np.sum((b - c) ** 2, 1) + C[:, 1] * np.sum((c - a) ** 2, 1) + C[:, 2] * np.sum((a - b) ** 2, 1)) / (2 * A)
        E = float(np.sum(self.W * (tr + self.lam * (r * r + 1.0)) / r))
        return E if np.isfinite(E) else np.inf

    def newton_system(self, X: np.ndarray):
        """Projected-Newton system in per-vertex tangent coordinates: (H (2N×2N), g (2N), T (N,3,2))."""
        F, A, C, lam = self.F, self.A, self.C, self.lam
        M, n = len(F), len(X)
        a, b, c = X[F[:, 0]], X[F[:, 1]], X[F[:, 2]]
        tr = (C[:, 0] * np.sum((b - c) ** 2, 1) + C[:, 1] * np.sum((c - a) ** 2, 1) + C[:, 2] * np.sum((a - b) ** 2, 1)) / (2 * A)
        bc, ca, ab = _cross(b, c), _cross(c, a), _cross(a, b)
        r = self.ratios(X)
        N = tr + lam * (r * r + 1.0)
        gtr = np.concatenate(
            [C[:, 1, None] * (a - c) + C[:, 2, None] * (a - b),
             C[:, 0, None] * (b - c) + C[:, 2, None] * (b - a),
             C[:, 0, None] * (c - b) + C[:, 1, None] * (c - a)], axis=1) / A[:, None]
        gr = np.concatenate([bc, ca, ab], axis=1) / (2 * A)[:, None]
        gN = gtr + 2 * lam * r[:, None] * gr
        g = self.W[:, None] * (gN / r[:, None] - (N / r**2)[:, None] * gr)
        s = (1.0 / (2 * A))[:, None, None]
        Hr = np.zeros((M, 3, 3, 3, 3))
        Hr[:, 0, :, 1, :], Hr[:, 1, :, 0, :] = -_skew(c) * s, _skew(c) * s
        Hr[:, 0, :, 2, :], Hr[:, 2, :, 0, :] = _skew(b) * s, -_skew(b) * s
        Hr[:, 1, :, 2, :], Hr[:, 2, :, 1, :] = -_skew(a) * s, _skew(a) * s
        Hr = Hr.reshape(M, 9, 9)
        outer = lambda u, v: u[:, :, None] * v[:, None, :]
        HN = self.Htr / A[:, None, None] + 2 * lam * (outer(gr, gr) + r[:, None, None] * Hr)
        H = (HN / r[:, None, None] - (outer(gN, gr) + outer(gr, gN)) / (r**2)[:, None, None]
             + (2 * N / r**3)[:, None, None] * outer(gr, gr) - (N / r**2)[:, None, None] * Hr)
        H *= self.W[:, None, None]
        w, Q = np.linalg.eigh(H)
        H = (Q * np.maximum(w, 0.0)[:, None, :]) @ np.swapaxes(Q, 1, 2)
        # tangent bases
        ref = np.where(np.abs(X[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
        e1 = _cross(X, ref)
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        T = np.stack([e1, _cross(X, e1)], axis=2)  # (n, 3, 2)
        Jm = np.zeros((M, 3, 3, 3, 2))
        TB = T[F]
        for i in range(3):
            Jm[:, i, :, i, :] = TB[:, i]
        Jm = Jm.reshape(M, 9, 6)
        Hred = np.swapaxes(Jm, 1, 2) @ H @ Jm
        gred = np.einsum("mki,mk->mi", Jm, g)
        Hs = sp.csc_matrix((Hred.ravel(), (self.I, self.J)), shape=(2 * n, 2 * n))
        G = np.zeros(2 * n)
        np.add.at(G, self.idx6.ravel(), gred.ravel())
        # curvature of the retraction x -> (x + v)/|x + v| adds -(g_i . x_i) |v_i|^2 / 2
        Gv = np.zeros((n, 3))
        np.add.at(Gv, F.ravel(), g.reshape(-1, 3))
        corr = np.maximum(-np.sum(Gv * X, axis=1), 0.0)
        d = Hs.diagonal()
        Hs = Hs + sp.diags(np.repeat(corr, 2) + 1e-10 * d.mean() + 1e-12 * d)
        return Hs.tocsc(), G, T


def _newton(
    X: np.ndarray, energy: _ConformalEnergy, iters: int, rtol: float = 1e-6, free: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Flip-free projected Newton on the sphere; ``X`` must be valid (all ratios > 0).

    ``free`` (bool ``(N,)``) restricts the update to some vertices, the others staying put.
    """
    E = energy.value(X)
    if not np.isfinite(E):
        raise RuntimeError("internal error: Newton start is not a valid embedding")
    keep = None if free is None else np.repeat(np.asarray(free, bool), 2)
    done = 0
    for done in range(1, iters + 1):
        H, G, T = energy.newton_system(X)
        if keep is not None:
            H = H[keep][:, keep].tocsc()
            Gk = G[keep]
            G = np.zeros_like(G)
            G[keep] = Gk
        g = G if keep is None else G[keep]
        try:
            d = -_spd_factor(H).solve(g)
        except RuntimeError:
            d = -g / H.diagonal()
        if not np.all(np.isfinite(d)) or -g @ d <= 0:
            d = -g / H.diagonal()
        if keep is not None:
            full = np.zeros_like(G)
            full[keep] = d
            d = full
        dec = -G @ d
        if dec < rtol * E:
            break
        step = np.einsum("nij,nj->ni", T, d.reshape(-1, 2))
        t = 1.0
        while t > 1e-14:
            Xn = X + t * step
            Xn /= np.linalg.norm(Xn, axis=1, keepdims=True)
            En = energy.value(Xn)
            if En <= E - 1e-4 * t * dec:
                break
            t *= 0.5
        else:
            break
        X, E = Xn, En
    return X, done


def _min_ratio(X: np.ndarray, F: np.ndarray, share: np.ndarray) -> float:
    """Smallest ``det(a, b, c) / (2 · 4π · share_f)`` (≈ chordal area ratio; ≤ 0 means flipped)."""
    return float(np.min(_signed_volume6(X, F) / (2.0 * _FOUR_PI * share)))


# --- Tutte start -------------------------------------------------------------------------


def _rotation_to_north(p: np.ndarray) -> np.ndarray:
    p = p / np.linalg.norm(p)
    z = np.array([0.0, 0.0, 1.0])
    v = _cross(p, z)
    s, c = np.linalg.norm(v), p @ z
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    Kx = _skew(v)
    return np.eye(3) + Kx + Kx @ Kx * ((1 - c) / s**2)


def _tutte_start(S0: np.ndarray, F: np.ndarray) -> np.ndarray | None:
    """Tutte embedding in the stereographic plane with mean-value weights taken from ``S0``.

    The projection pole is the centre of the largest unflipped face ``f0`` far from any
    flipped one; the two-ring disk around ``f0`` keeps its ``S0`` positions and forms the
    (near-circular, hence in practice convex) boundary; every other vertex is a mean-value
    combination of its neighbours. Mean-value weights reproduce ``S0`` exactly wherever
    ``S0`` was locally valid and untangle it where it was folded. The result is checked
    afterwards by the caller. Returns None if it cannot be computed (e.g. coincident
    points in ``S0``).
    """
    n = len(S0)
    det = _signed_volume6(S0, F)
    bad = det <= 0
    near = np.zeros(n, bool)
    near[F[bad].ravel()] = True
    for _ in range(2):
        near[F[near[F].any(axis=1)].ravel()] = True
    score = np.where(~near[F].any(axis=1) & ~bad, det, -np.inf)
    if not np.isfinite(score.max()):
        score = np.where(~bad, det, -np.inf)
        if not np.isfinite(score.max()):
            return None
    f0 = int(np.argmax(score))
    R = _rotation_to_north(S0[F[f0]].mean(axis=0))
    X = S0 @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = (X[:, 0] + 1j * X[:, 1]) / (1.0 - X[:, 2])
    if not np.all(np.isfinite(Z)):
        return None
    I, J, W = [], [], []
    for k in range(3):
        i, j, l = F[:, k], F[:, (k + 1) % 3], F[:, (k + 2) % 3]
        th = np.abs(np.angle((Z[l] - Z[i]) / (Z[j] - Z[i])))
        t = np.tan(np.minimum(th, np.pi - 1e-9) / 2)
        I += [i, i]
        J += [j, l]
        W += [t / np.abs(Z[j] - Z[i]), t / np.abs(Z[l] - Z[i])]
    W = np.concatenate(W)
    if not np.all(np.isfinite(W)):
        return None
    Wm = sp.csr_matrix((W, (np.concatenate(I), np.concatenate(J))), shape=(n, n))
    L = (sp.diags(np.asarray(Wm.sum(axis=1)).ravel()) - Wm).tocsr()
    # Fix the two-ring disk around the pole face: faces right next to the projection pole are
    # distorted by the projection (straight planar edges are circles through the pole on the
    # sphere) and may invert, which would spoil the mean-value weights of their neighbours.
    fixed = np.zeros(n, bool)
    fixed[F[f0]] = True
    for _ in range(2):
        fixed[F[fixed[F].any(axis=1)].ravel()] = True
    B = np.flatnonzero(fixed)
    Ii = np.flatnonzero(~fixed)
    try:
        lu = sla.splu(L[Ii][:, Ii].tocsc(), permc_spec="COLAMD")
    except RuntimeError:
        return None
    rhs = -(L[Ii][:, B] @ Z[B])
    Zn = Z.copy()
    Zn[Ii] = lu.solve(np.ascontiguousarray(rhs.real)) + 1j * lu.solve(np.ascontiguousarray(rhs.imag))
    r2 = np.abs(Zn) ** 2
    Y = np.stack([2 * Zn.real, 2 * Zn.imag, r2 - 1.0], axis=1) / (1.0 + r2)[:, None]
    return Y @ R


# --- progressive start ----------------------------------------------------------------------


def _kernel_point(u: np.ndarray, normals: np.ndarray, box: float = 4.0) -> np.ndarray | None:
    """A point well inside ``{x on the sphere : x · n_k > 0 ∀k}``, searched near ``u``.

    In the gnomonic chart at ``u`` the constraints are half-planes; the vertices of their
    intersection polygon are enumerated and its area centroid returned.
    """
    e1 = _cross(u, np.array([1.0, 0.0, 0.0])) if abs(u[0]) < 0.9 else _cross(u, np.array([0.0, 1.0, 0.0]))
    e1 /= np.linalg.norm(e1)
    e2 = _cross(u, e1)
    nn = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    c = np.concatenate([nn @ u, [box] * 4])
    p = np.concatenate([nn @ e1, [-1.0, 1.0, 0.0, 0.0]])
    q = np.concatenate([nn @ e2, [0.0, 0.0, -1.0, 1.0]])
    i, j = np.triu_indices(len(c), 1)
    det = p[i] * q[j] - p[j] * q[i]
    ok = np.abs(det) > 1e-300
    i, j, det = i[ok], j[ok], det[ok]
    al = (-c[i] * q[j] + c[j] * q[i]) / det
    be = (-p[i] * c[j] + p[j] * c[i]) / det
    val = c[:, None] + p[:, None] * al[None] + q[:, None] * be[None]
    scale = np.abs(c[:, None]) + np.abs(p[:, None] * al[None]) + np.abs(q[:, None] * be[None])
    feas = np.all(val >= -1e-12 * scale, axis=0)
    if not feas.any():
        return None
    al, be = al[feas], be[feas]
    ma, mb = al.mean(), be.mean()
    o = np.argsort(np.arctan2(be - mb, al - ma))
    al, be = al[o], be[o]
    al2, be2 = np.roll(al, -1), np.roll(be, -1)
    cr = al * be2 - al2 * be
    area = cr.sum() / 2
    if abs(area) > 1e-300:
        ma, mb = ((al + al2) * cr).sum() / (6 * area), ((be + be2) * cr).sum() / (6 * area)
    x = u + ma * e1 + mb * e2
    x /= np.linalg.norm(x)
    return x if np.all(nn @ x > 0) else None


def _progressive_start(V: np.ndarray, F: np.ndarray, lam: float = 1.0, growth: float = 1.3, level_iters: int = 4) -> np.ndarray:
    """Bijective embedding by simplification to a tetrahedron and kernel re-insertion.

    Half-edge collapses (shortest edges first, weighted by the degree they would create,
    each checked with the link condition) reduce the mesh to a tetrahedron, which is placed
    as a regular tetrahedron on the sphere. Vertices are re-inserted in reverse order, each
    at the area centroid of the kernel of its one-ring (every face constraint
    ``det(x, a, b) > 0`` is linear in ``x``), so every intermediate mesh is embedded
    without flips; each time the mesh has grown by ``growth`` a few flip-free Newton steps
    of the conformal energy with a strong area term (``lam``) relax it, which keeps every
    intermediate triangle far from underflow.
    """
    n = len(V)
    F = np.array(F, dtype=np.int64)
    M = len(F)
    scale = _FOUR_PI / _face_areas(V, F).sum()
    nb = [set() for _ in range(n)]
    vf = [set() for _ in range(n)]
    for f, (a, b, c) in enumerate(F.tolist()):
        nb[a].update((b, c))
        nb[b].update((a, c))
        nb[c].update((a, b))
        vf[a].add(f)
        vf[b].add(f)
        vf[c].add(f)
    alive = np.ones(M, bool)
    valive = np.ones(n, bool)
    nalive = n

    def key(u, v):
        return float(np.linalg.norm(V[u] - V[v])) * (len(nb[u]) + len(nb[v]))

    heap = [(key(u, v), u, v) for u in range(n) for v in nb[u] if u < v]
    heapq.heapify(heap)
    records = []
    while nalive > 4 and heap:
        k, u, v = heapq.heappop(heap)
        if not (valive[u] and valive[v]) or v not in nb[u]:
            continue
        k2 = key(u, v)
        if k2 > k * (1 + 1e-12):
            heapq.heappush(heap, (k2, u, v))
            continue
        if len(nb[u]) < len(nb[v]):
            u, v = v, u  # remove the lower-degree end
        if len(nb[u] & nb[v]) != 2:
            continue  # link condition
        shared = vf[u] & vf[v]
        changed = []
        for f in vf[v]:
            if f in shared:
                continue
            s = int(np.flatnonzero(F[f] == v)[0])
            F[f, s] = u
            changed.append((f, s))
            vf[u].add(f)
        for f in shared:
            alive[f] = False
            for x in F[f]:
                vf[x].discard(f)
        for x in nb[v]:
            nb[x].discard(v)
            if x != u:
                nb[x].add(u)
                nb[u].add(x)
        nb[u].discard(v)
        nb[v] = set()
        vf[v] = set()
        valive[v] = False
        nalive -= 1
        records.append((v, u, tuple(shared), changed))
        for x in nb[u]:
            heapq.heappush(heap, (key(u, x), min(u, x), max(u, x)))
    if nalive != 4:
        raise MeshError("the mesh could not be simplified to a tetrahedron; is it a closed genus-0 manifold?")
    X = np.zeros((n, 3))
    base = np.flatnonzero(valive)
    X[base] = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    fa = np.flatnonzero(alive)
    if np.all(_signed_volume6(X, F[fa]) < 0):
        X[base[[0, 1]]] = X[base[[1, 0]]]

    def faces_ok(w):
        fw = F[list(vf[w])]
        return bool(np.all(_signed_volume6(X, fw) > 0))

    def place(w):
        """Move ``w`` to the centre of its kernel; keep the old position if that fails."""
        tri = F[list(vf[w])]
        s = np.argmax(tri == w, axis=1)
        rows = np.arange(len(tri))
        a, b = tri[rows, (s + 1) % 3], tri[rows, (s + 2) % 3]
        p = _kernel_point(X[w], _cross(X[a], X[b]))
        if p is None:
            return False
        old = X[w].copy()
        X[w] = p
        if faces_ok(w):
            return True
        X[w] = old
        return False

    def split_near(v, u, changed):
        """Fallback: put ``v`` just off ``u`` inside one of the faces it takes over from ``u``."""
        for f, _ in changed:
            a, b = [x for x in F[f] if x != v]
            target = 0.5 * (X[a] + X[b])
            for t in 0.5 ** np.arange(1, 40):
                X[v] = X[u] + t * (target - X[u])
                X[v] /= np.linalg.norm(X[v])
                if faces_ok(v) and faces_ok(u):
                    return True
        return False

    def local_relax(centre, rings=2, iters=4):
        verts = set(centre)
        for _ in range(rings):
            verts |= {x for w in list(verts) for f in vf[w] for x in F[f]}
        faces = sorted({f for w in verts for f in vf[w]})
        sub = np.unique(F[faces])
        mp = -np.ones(n, np.int64)
        mp[sub] = np.arange(len(sub))
        en = _ConformalEnergy(V[sub], mp[F[faces]], lam, area_scale=scale)
        free = np.isin(sub, np.fromiter(verts, dtype=np.int64))
        X[sub] = _newton(X[sub], en, iters, rtol=1e-4, free=free)[0]

    def relax(iters):
        vidx = np.flatnonzero(valive)
        mp = -np.ones(n, np.int64)
        mp[vidx] = np.arange(len(vidx))
        Fs = mp[F[alive]]
        en = _ConformalEnergy(V[vidx], Fs, lam, area_scale=scale)
        X[vidx] = _newton(X[vidx], en, iters, rtol=1e-4)[0]

    def split(v, u, shared, changed, undo=False):
        for f, s in changed:
            F[f, s] = u if undo else v
            (vf[v] if undo else vf[u]).discard(f)
            (vf[u] if undo else vf[v]).add(f)
        for f in shared:
            alive[f] = not undo
            for x in F[f]:
                (vf[x].discard if undo else vf[x].add)(f)

    def aref(tris):  # reference area of (simplified) faces on the original vertex positions
        return np.maximum(_face_areas(V, tris) * scale, 1e-300)

    next_level = 8
    for v, u, shared, changed in reversed(records):
        split(v, u, shared, changed)
        X[v] = X[u]
        if not place(v) and not split_near(v, u, changed):
            # the neighbourhood of u is too squeezed: relax the current mesh first, then retry
            split(v, u, shared, changed, undo=True)
            relax(20)
            split(v, u, shared, changed)
            X[v] = X[u]
            if not place(v) and not split_near(v, u, changed):
                raise RuntimeError("internal error: no valid position while re-inserting a vertex")
        place(u)
        place(v)
        valive[v] = True
        local = F[list(vf[u] | vf[v])]
        squeezed = np.min(_signed_volume6(X, local) / (2.0 * aref(local))) < 1e-6
        if valive.sum() >= next_level:
            relax(level_iters)
            next_level = int(valive.sum() * growth) + 1
        elif squeezed:
            local_relax((u, v))
    relax(level_iters)
    return X


def _centre_within_validity(S: np.ndarray, w: np.ndarray, ok) -> np.ndarray:
    """Möbius-centre ``S``; if the full boost would break ``ok``, go as far along it as keeps ``ok``."""
    A, Sc = mobius_center(S, w)
    if ok(Sc):
        return Sc
    _, P = mobius_polar(A)
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if ok(mobius_apply(hermitian_power(P, mid), S)):
            lo = mid
        else:
            hi = mid
    return mobius_apply(hermitian_power(P, lo), S) if lo > 0 else S


# ============================================================================ public entry


def spherical_conformal_map(
    V: np.ndarray,
    F: np.ndarray,
    *,
    time_step: float = 1e-2,
    max_flow_iters: int = 100,
    flow_tol: float = 1e-6,
    refine: Literal["auto", "always", "never"] = "auto",
    area_weight: float = 1e-12,
    max_newton_iters: int = 40,
    min_area_ratio: float = 1e-15,
    center: bool = True,
    name: str = "mesh",
) -> tuple[np.ndarray, SphereMapReport]:
    """Map a closed genus-0 triangle mesh bijectively and near-conformally onto the unit sphere.

    Parameters
    ----------
    V : (N, 3) float array, vertex positions.
    F : (M, 3) int array, triangles, consistently oriented (either winding).
    time_step : cMCF step ``δ`` relative to unit total area.
    max_flow_iters, flow_tol : cMCF stopping rule (see :func:`conformalized_mcf`).
    refine : ``"auto"`` runs the bijective finish only when the flow's image has a flipped
        triangle or one whose area ratio is below ``min_area_ratio``; ``"always"`` also
        polishes valid flow images with the Newton stage; ``"never"`` returns the flow's
        image as is (possibly with flips).
    area_weight : ``λ`` of the area barrier in the Newton stage; it bounds compression at
        roughly ``λ/4`` in area ratio (1e-12: faces at least ~1e-6 of the mean edge length).
    max_newton_iters : iteration cap of the final Newton stage.
    min_area_ratio : smallest acceptable chordal area ratio (guards against faces that
        are positive only by rounding).
    center : Möbius-centre the pushed-forward vertex areas after the flow and again after
        the finish (there only as far as it keeps the map bijective; the achieved
        ``centroid_norm`` is reported). ``False`` leaves the flow's own normalisation.
    name : used in error messages.

    Returns
    -------
    S : (N, 3) float array, unit vectors; ``S[i]`` is the image of vertex ``i``.
    report : :class:`SphereMapReport`.

    Raises
    ------
    MeshError
        If the mesh is not a single closed, manifold, consistently oriented genus-0 surface
        (the message names the genus, the number of components, the non-manifold or
        boundary edges, ...).

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(2)
    >>> S, rep = spherical_conformal_map(m.vertices * [1.0, 2.0, 0.5], m.faces)
    >>> rep.n_flipped, bool(abs(np.linalg.norm(S, axis=1) - 1).max() < 1e-12)
    (0, True)
    """
    t0 = time.perf_counter()
    if refine not in ("auto", "always", "never"):
        raise ValueError(f"refine must be 'auto', 'always' or 'never', got {refine!r}")
    V, F, orient = check_closed_genus0(V, F, name=name)
    Fo = F if orient > 0 else F[:, ::-1].copy()
    w = _vertex_areas(V, F)

    X, n_flow = conformalized_mcf(V, Fo, time_step=time_step, max_iters=max_flow_iters, tol=flow_tol, center_weights=w)
    S = X / np.linalg.norm(X, axis=1, keepdims=True)
    if not np.all(np.isfinite(S)):
        raise MeshError(f"{name}: the flow produced non-finite positions (degenerate input geometry?)")
    if center:
        _, S = mobius_center(S, w)
    method = "cmcf"
    n_newton = 0
    share = _face_areas(V, Fo)
    share = share / share.sum()

    def ratio_ok(Y):
        return _min_ratio(Y, Fo, share) > min_area_ratio

    valid = ratio_ok(S)
    if refine == "always" or (refine == "auto" and not valid):
        energy = _ConformalEnergy(V, Fo, area_weight)
        result = None
        if valid:
            result, n_newton = _newton(S, energy, max_newton_iters, rtol=1e-5)
            stage = "cmcf+newton"
        else:
            # Tutte start: exact where the flow's image was valid; accepted when every face is
            # positive in floating point (the area barrier then re-inflates the tiny ones)
            Y = _tutte_start(S, Fo)
            if Y is not None and np.all(np.isfinite(Y)) and np.isfinite(energy.value(Y)):
                result, n_newton = _newton(Y, energy, max_newton_iters, rtol=1e-5)
                stage = "cmcf+tutte+newton"
                if not ratio_ok(result):
                    result = None
        if result is None:
            result, n_newton = _newton(_progressive_start(V, Fo), energy, max_newton_iters, rtol=1e-5)
            stage = "cmcf+progressive+newton"
        S = result
        method = stage
        if center:
            S = _centre_within_validity(S, w, ratio_ok)
    S = S / np.linalg.norm(S, axis=1, keepdims=True)
    rep = sphere_map_quality(V, F, S, vertex_weights=w, orientation=orient)
    fields = rep.as_dict()
    fields.update(method=method, flow_iterations=n_flow, newton_iterations=n_newton, seconds=time.perf_counter() - t0)
    return S, SphereMapReport(**fields)


def _write_ply(path: Path, V: np.ndarray, F: np.ndarray) -> None:
    """Binary little-endian PLY with float64 coordinates, written atomically (:func:`niso_geom.runio.atomic_write`).

    Double precision matters here: single-precision coordinates would undo the
    bijectivity of maps that compress thin parts below 1e-7.
    """
    V = np.ascontiguousarray(V, dtype="<f8")
    F = np.asarray(F, dtype="<i4")
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment spherical conformal map (niso_geom)\n"
        f"element vertex {len(V)}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element face {len(F)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    faces = np.empty(len(F), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    faces["n"] = 3
    faces["idx"] = F
    with atomic_write(path, "wb") as f:
        f.write(header)
        f.write(V.tobytes())
        f.write(faces.tobytes())


def check_output_path(out_path: Path, input_path: Path) -> None:
    """Raise MeshError if ``out_path`` is ``input_path`` (by inode, symlink or spelling), a folder,
    or in a folder that cannot be written."""
    out_path, input_path = Path(out_path), Path(input_path)
    if out_path.is_dir():
        raise MeshError(f"{out_path}: is a folder; give the output .ply file name")
    if same_file(out_path, input_path):
        raise MeshError(f"{out_path}: is the input mesh {input_path}; refusing to overwrite the input")
    folder = out_path.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise MeshError(f"{out_path}: cannot write there (the folder {folder} is not writable)")
    if out_path.exists() and not os.access(out_path, os.W_OK):
        raise MeshError(f"{out_path}: the file exists and is not writable")


def check_room(out_path: Path, need_bytes: int) -> None:
    """Raise MeshError if the file system holding ``out_path`` has less than ``need_bytes`` free."""
    folder = Path(out_path).resolve().parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise MeshError(f"{out_path}: needs about {need_bytes:,} bytes, only {free:,} are free in {folder}")


def sphere_map_file(
    mesh_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    weld: bool = True,
    **kwargs,
) -> SphereMapReport:
    """Map the mesh in ``mesh_path`` to the sphere and write the result to ``out_path`` (PLY).

    The mesh is read with :func:`niso_geom.geometry.mesh_io.read_mesh` (trimesh,
    ``process=False``, vertex order kept). With ``weld=True`` vertices with identical
    coordinates (texture seams) are merged for the computation and the result is carried
    back, so the output has exactly the input's vertices and faces, with positions on the
    unit sphere. Welding is only tried when the mesh as stored is not a closed genus-0
    surface (two distinct vertices may legitimately share coordinates). The PLY stores
    float64 coordinates and is written atomically (:func:`niso_geom.runio.atomic_write`).
    Keyword arguments go to :func:`spherical_conformal_map`. Returns its report.

    Before any work: ``out_path`` must not be the input file (also through a symlink or
    another relative path) and its folder must be writable; the mesh is validated
    (:func:`~niso_geom.geometry.validate.check_arrays`) before it is welded. Each problem is a
    :class:`~niso_geom.errors.MeshError` naming the path.
    """
    mesh_path, out_path = Path(mesh_path), Path(out_path)
    if out_path.suffix.lower() != ".ply":
        raise MeshError(f"{out_path}: the sphere map is written as PLY; use a .ply output path")
    check_output_path(out_path, mesh_path)
    name = kwargs.pop("name", str(mesh_path))
    V, F = check_arrays(*read_mesh(mesh_path), name=name)
    check_room(out_path, 512 + 24 * len(V) + 13 * len(F))  # the PLY's size, before the map is computed
    index = None
    try:
        check_closed_genus0(V, F, name=name)
    except MeshError as err:
        # texture seams: the stored mesh is cut open along them; weld and try again
        Vw, Fw, index = weld_vertices(V, F)
        if not weld or len(Vw) == len(V):
            raise
        try:
            check_closed_genus0(Vw, Fw, name=name)
        except MeshError:
            raise err from None
    if index is None:
        S, report = spherical_conformal_map(V, F, name=name, **kwargs)
    else:
        Sw, report = spherical_conformal_map(Vw, Fw, name=name, **kwargs)
        S = Sw[index]
    _write_ply(out_path, S, F)
    return report
