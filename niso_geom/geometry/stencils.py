"""Sparse stiffness matrices of grid domains (periodic torus stencils, lat–lon sphere grids).

Flat layout: row-major, index = i·W + j.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Stencil = Literal["5pt", "9pt"]

#: Negative-Laplacian stencils with unit spacing, as weights of the 3×3 neighbourhood.
#: The 9-point one is the paper's [[.25,.5,.25],[.5,-3,.5],[.25,.5,.25]] (negated).
STENCILS: dict[str, np.ndarray] = {
    "5pt": -np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
    "9pt": -np.array([[0.25, 0.5, 0.25], [0.5, -3.0, 0.5], [0.25, 0.5, 0.25]]),
}


def check_stencil(stencil: str) -> np.ndarray:
    if stencil not in STENCILS:
        raise ValueError(f"stencil must be one of {sorted(STENCILS)}, got {stencil!r}")
    return STENCILS[stencil]


def torus_stiffness(h: int, w: int, stencil: Stencil = "5pt") -> sp.csr_matrix:
    """Periodic stencil stiffness (N,N), N = h·w, symmetric PSD with S·1 = 0.

    With cell area ``a`` as mass, M⁻¹S is the stencil Laplacian with grid spacing √a;
    the weak form S itself is spacing-free in 2-D.
    """
    if h < 3 or w < 3:
        raise ValueError(f"torus grid must be at least 3×3 for a 3×3 stencil, got {h}×{w}")
    st = check_stencil(stencil)
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rows, cols, vals = [], [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            c = st[di + 1, dj + 1]
            if c == 0.0:
                continue
            rows.append((ii * w + jj).ravel())
            cols.append((((ii + di) % h) * w + (jj + dj) % w).ravel())
            vals.append(np.full(h * w, c))
    S = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w))
    return S.tocsr()


def _centroid_colat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area-weighted mean colatitude of the band [a, b]: ∫θ sinθ dθ / ∫ sinθ dθ."""
    num = (np.sin(b) - b * np.cos(b)) - (np.sin(a) - a * np.cos(a))
    den = np.cos(a) - np.cos(b)
    return num / den


def latlon_stiffness(colat: np.ndarray, nlon: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Finite-volume stiffness of a lat–lon grid on the unit sphere, and its cell areas.

    Each sample (i, j) owns the cell θ ∈ [θ_{i−½}, θ_{i+½}] × a longitude slot of width
    2π/W, with ring boundaries halfway between rings (0 and π at the ends). Fluxes cross
    each cell face with weight (face length)/(distance between samples); across a
    meridian face the distance is measured at the cell's area-weighted centroid
    colatitude, so samples on a pole ring (θ = 0 or π) are wedges of the polar cap.

    Returns S (N,N) symmetric PSD with S·1 = 0, and the cell areas (N,) (sum 4π).
    """
    colat = np.asarray(colat, dtype=np.float64)
    H, W = len(colat), int(nlon)
    dphi = 2.0 * np.pi / W
    edges = np.concatenate([[0.0], 0.5 * (colat[1:] + colat[:-1]), [np.pi]])
    band_area = (np.cos(edges[:-1]) - np.cos(edges[1:])) * dphi  # (H,)
    theta_c = _centroid_colat(edges[:-1], edges[1:])
    idx = np.arange(H * W).reshape(H, W)
    rows, cols, wts = [], [], []
    # meridian faces (between (i,j) and (i,j+1))
    w_lon = (edges[1:] - edges[:-1]) / (np.sin(theta_c) * dphi)
    rows.append(idx.ravel())
    cols.append(np.roll(idx, -1, axis=1).ravel())
    wts.append(np.repeat(w_lon, W))
    # parallel faces (between (i,j) and (i+1,j))
    w_lat = np.sin(edges[1:-1]) * dphi / (colat[1:] - colat[:-1])
    rows.append(idx[:-1].ravel())
    cols.append(idx[1:].ravel())
    wts.append(np.repeat(w_lat, W))
    r, c, wv = (np.concatenate(x) for x in (rows, cols, wts))
    A = sp.coo_matrix((wv, (r, c)), shape=(H * W, H * W)).tocsr()
    A = A + A.T
    S = sp.diags(np.asarray(A.sum(axis=1)).ravel()) - A
    return S.tocsr(), np.repeat(band_area, W)
