"""Pull per-vertex signals of a mesh back to arbitrary points of the unit sphere.

Given a mesh's spherical image ``S`` (``(N, 3)``, e.g. from
:func:`~niso_geom.geometry.conformal.spherical_conformal_map`, possibly followed by a
Möbius transformation) with the mesh's faces ``F``, a query point ``p`` on the sphere is
sent to the closest point of the *chordal* triangle mesh ``(S, F)``; the signal there is
the barycentric interpolation of the three corner values. With ``S`` the image of a map
``φ`` this evaluates ``signal ∘ φ⁻¹`` at ``p`` (the official NIso pre-processing does the
same with ``trimesh.proximity.closest_point`` and ``points_to_barycentric``,
docs/algorithm.md §4.4).

The closest point is exact: candidate faces come from a KD-tree over face centroids,
the closest point on each candidate triangle is computed in closed form (Voronoi regions
of the triangle), and the answer is certified, since any face not examined has its
centroid farther than ``best distance + largest centroid-to-corner radius``; queries that
cannot be certified this way are re-run against every face within that radius.

Stateful object for repeated queries (:class:`SpherePullback`) plus one-off functions
(:func:`pull_back`, :func:`pullback_matrix`). NumPy/SciPy only.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

__all__ = ["SpherePullback", "closest_point_on_triangles", "pull_back", "pullback_matrix"]


def closest_point_on_triangles(P: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of triangle ``(a, b, c)`` to ``P``, row by row.

    All inputs ``(Q, 3)``. Returns barycentric coordinates ``(Q, 3)`` (non-negative, sum 1)
    of the closest point and its squared distance ``(Q,)``. Degenerate triangles are
    handled (the closest point then lies on an edge or a vertex).
    """
    ab, ac, ap = b - a, c - a, P - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = P - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = P - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2

    Q = len(P)
    bary = np.empty((Q, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        # interior (lowest priority), then the edge and vertex regions override it
        den = va + vb + vc
        v = vb / den
        w = vc / den
        bary[:, 0], bary[:, 1], bary[:, 2] = 1.0 - v - w, v, w
        e_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        bary[e_bc] = np.stack([np.zeros_like(t), 1.0 - t, t], axis=1)[e_bc]
        e_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        t = d2 / (d2 - d6)
        bary[e_ac] = np.stack([1.0 - t, np.zeros_like(t), t], axis=1)[e_ac]
        v_c = (d6 >= 0) & (d5 <= d6)
        bary[v_c] = (0.0, 0.0, 1.0)
        e_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        t = d1 / (d1 - d3)
        bary[e_ab] = np.stack([1.0 - t, t, np.zeros_like(t)], axis=1)[e_ab]
        v_b = (d3 >= 0) & (d4 <= d3)
        bary[v_b] = (0.0, 1.0, 0.0)
        v_a = (d1 <= 0) & (d2 <= 0)
        bary[v_a] = (1.0, 0.0, 0.0)
    bad = ~np.isfinite(bary).all(axis=1)
    if np.any(bad):  # fully degenerate triangle (all corners equal): any corner
        bary[bad] = (1.0, 0.0, 0.0)
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    X = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
    return bary, np.sum((P - X) ** 2, axis=1)


class SpherePullback:
    """Closest-point locator on the chordal triangle mesh ``(S, F)``, for repeated queries.

    Parameters
    ----------
    S : (N, 3) vertex positions on the unit sphere (the spherical image of a mesh).
    F : (M, 3) triangles.
    k : number of faces with nearest centroids examined first, to bound the distance.

    Notes
    -----
    Each face lies in the solid cap cut from the unit ball by its plane (circumcircle
    centre ``n_f``, angular radius ``ρ_f``). For a query ``p`` on the sphere outside that
    cap, the face is at least the chord to the cap's rim, ``2 sin((∠(p, n_f) − ρ_f)/2)``,
    away. After the ``k`` nearest-centroid faces give a distance ``d``, every face whose
    cap comes within the angle matching ``d`` is examined (found with KD-trees over cap
    centres, one per band of cap sizes), so the answer is the exact closest point. Faces
    with caps wider than 60° (only on extremely coarse images) are always examined.

    Examples
    --------
    >>> import trimesh
    >>> m = trimesh.creation.icosphere(3)
    >>> pb = SpherePullback(m.vertices, m.faces)
    >>> P = np.array([[0.0, 0.0, 1.0], [0.6, 0.8, 0.0]])
    >>> np.round(pb(m.vertices[:, 2], P), 6).tolist()
    [1.0, 0.0]
    """

    def __init__(self, S: np.ndarray, F: np.ndarray, *, k: int = 4):
        S = np.asarray(S, dtype=np.float64)
        F = np.asarray(F, dtype=np.int64)
        if S.ndim != 2 or S.shape[1] != 3 or F.ndim != 2 or F.shape[1] != 3 or len(F) == 0:
            raise ValueError(f"need S (N, 3) and F (M, 3), got {S.shape} and {F.shape}")
        if F.min() < 0 or F.max() >= len(S):
            raise ValueError(f"face indices out of range 0..{len(S) - 1}")
        if not np.all(np.isfinite(S)):
            raise ValueError("S has non-finite coordinates")
        self.S, self.F = S, F
        a, b, c = S[F[:, 0]], S[F[:, 1]], S[F[:, 2]]
        self._tree = cKDTree((a + b + c) / 3.0)
        self.k = int(min(max(k, 1), len(F)))
        # circumcircle cap of each face: centre n (unit) and cos of the angular radius
        n = np.cross(b - a, c - a)
        nn = np.linalg.norm(n, axis=1)
        deg = nn <= 1e-300
        n = np.where(deg[:, None], (a + b + c), n)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        h = np.einsum("ij,ij->i", n, a)
        n[h < 0] *= -1.0
        h = np.abs(h)
        rho = np.arccos(np.clip(np.min([h, np.einsum("ij,ij->i", n, b), np.einsum("ij,ij->i", n, c)], axis=0), -1, 1))
        rho[deg] = np.max(np.arccos(np.clip(np.einsum("fij,fj->fi", S[F[deg]], n[deg]), -1, 1)), axis=1) if deg.any() else rho[deg]
        self._n, self._rho = n, rho
        big = rho > np.pi / 3
        self._always = np.flatnonzero(big)
        med = max(float(np.median(rho)), 1e-12)
        band = np.ceil(np.log2(np.maximum(rho, med) / med)).astype(int)
        self._bands = []
        for bnd in np.unique(band[~big]):
            ids = np.flatnonzero((band == bnd) & ~big)
            self._bands.append((ids, float(rho[ids].max()), cKDTree(n[ids])))

    @property
    def n_vertices(self) -> int:
        return len(self.S)

    def _closest(self, P, rows, cand):
        F, S = self.F, self.S
        return closest_point_on_triangles(P[rows], S[F[cand, 0]], S[F[cand, 1]], S[F[cand, 2]])

    def locate(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Face index ``(Q,)``, barycentric coordinates ``(Q, 3)`` and distance ``(Q,)`` of the closest point.

        ``P`` (``(Q, 3)``) should lie on the unit sphere (the distance bound assumes it).
        """
        P = np.asarray(P, dtype=np.float64).reshape(-1, 3)
        Q, k = len(P), self.k
        _, idx = self._tree.query(P, k=k)
        idx = idx.reshape(Q, k)
        rows = np.repeat(np.arange(Q), k)
        bary, d2 = self._closest(P, rows, idx.ravel())
        d2 = d2.reshape(Q, k)
        best = np.argmin(d2, axis=1)
        face = idx[np.arange(Q), best]
        bary = bary.reshape(Q, k, 3)[np.arange(Q), best]
        best_d2 = d2[np.arange(Q), best]
        theta = 2.0 * np.arcsin(np.minimum(0.5 * np.sqrt(best_d2), 1.0)) * (1 + 1e-9) + 1e-12
        rows_all, cand_all = [], []
        for ids, rmax, tree in self._bands:
            if len(ids) * Q <= 4_000_000:  # few faces: a dense test beats the tree
                cos_lim = np.cos(np.minimum(self._rho[ids][None, :] + theta[:, None], np.pi))
                rw, j = np.nonzero(P @ self._n[ids].T >= cos_lim)
                rows_all.append(rw)
                cand_all.append(ids[j])
                continue
            r = 2.0 * np.sin(np.minimum(rmax + theta, np.pi) / 2.0)
            lists = tree.query_ball_point(P, r=r)
            lens = np.fromiter(map(len, lists), dtype=np.int64, count=Q)
            flat = ids[np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lens.sum()))]
            rw = np.repeat(np.arange(Q), lens)
            keep = np.einsum("ij,ij->i", P[rw], self._n[flat]) >= np.cos(np.minimum(self._rho[flat] + theta[rw], np.pi))
            rows_all.append(rw[keep])
            cand_all.append(flat[keep])
        if len(self._always):
            rows_all.append(np.repeat(np.arange(Q), len(self._always)))
            cand_all.append(np.tile(self._always, Q))
        rows = np.concatenate(rows_all)
        cand = np.concatenate(cand_all)
        if len(cand):
            b2, dd = self._closest(P, rows, cand)
            order = np.lexsort((dd, rows))
            first = order[np.r_[0, np.flatnonzero(np.diff(rows[order])) + 1]]
            q = rows[first]
            better = dd[first] < best_d2[q]
            face[q[better]] = cand[first][better]
            bary[q[better]] = b2[first][better]
            best_d2[q[better]] = dd[first][better]
        return face, bary, np.sqrt(best_d2)

    def matrix(self, P: np.ndarray) -> sp.csr_matrix:
        """Sparse ``(Q, N)`` interpolation matrix ``W`` with ``signal_at_P = W @ signal``."""
        face, bary, _ = self.locate(P)
        Q = len(face)
        return sp.csr_matrix(
            (bary.ravel(), (np.repeat(np.arange(Q), 3), self.F[face].ravel())), shape=(Q, len(self.S))
        )

    def __call__(self, signal: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Signal ``(N,)`` or ``(N, C)`` evaluated at ``P`` (``(Q, 3)``): ``(Q,)`` or ``(Q, C)``."""
        signal = np.asarray(signal)
        if signal.shape[0] != len(self.S):
            raise ValueError(f"signal has {signal.shape[0]} rows, the mesh has {len(self.S)} vertices")
        face, bary, _ = self.locate(P)
        corners = signal[self.F[face]]  # (Q, 3, ...)
        return np.einsum("qk,qk...->q...", bary, corners)


def _image(S: np.ndarray, mobius: np.ndarray | None) -> np.ndarray:
    if mobius is None:
        return S
    from niso_geom.geometry.mobius import mobius_apply

    return mobius_apply(mobius, S)


def pull_back(
    S: np.ndarray,
    F: np.ndarray,
    signal: np.ndarray,
    P: np.ndarray,
    *,
    mobius: np.ndarray | None = None,
) -> np.ndarray:
    """Per-vertex ``signal`` (``(N,)`` or ``(N, C)``) of the mesh with spherical image ``(S, F)``, at points ``P``.

    ``mobius`` (a 2×2 SL(2, C) matrix) first moves the image by that Möbius
    transformation, giving ``signal ∘ φ⁻¹ ∘ m⁻¹``. Returns ``(Q,)`` or ``(Q, C)``.
    For many signals on the same points, build :func:`pullback_matrix` once.
    """
    return SpherePullback(_image(np.asarray(S, dtype=np.float64), mobius), F)(signal, P)


def pullback_matrix(
    S: np.ndarray, F: np.ndarray, P: np.ndarray, *, mobius: np.ndarray | None = None
) -> sp.csr_matrix:
    """Sparse ``(Q, N)`` matrix of barycentric weights: ``pull_back(S, F, x, P) == W @ x``."""
    return SpherePullback(_image(np.asarray(S, dtype=np.float64), mobius), F).matrix(P)
