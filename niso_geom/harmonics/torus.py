"""Exact eigenpairs of periodic stencil Laplacians on an h×w torus grid.

With a = 2πp/h and b = 2πq/w the Fourier mode e^{i(a·i + b·j)} is an exact
eigenvector of the periodic stencil with symbol
    5-point:  λ = 4 − 2cos a − 2cos b
    9-point:  λ = 3 − cos a − cos b − cos a·cos b      (the paper's stencil)
(divided by the cell area when the spacing is not 1). Real eigenvectors are the
cos/sin pairs of each conjugate frequency pair ±(p, q); self-conjugate frequencies
(2p ≡ 0 mod h and 2q ≡ 0 mod w) contribute a single cosine.
"""

from __future__ import annotations

import numpy as np

from niso_geom.geometry.stencils import check_stencil


def stencil_symbol(a: np.ndarray, b: np.ndarray, stencil: str) -> np.ndarray:
    """Eigenvalue of the unit-spacing stencil stiffness at angular frequencies (a, b)."""
    check_stencil(stencil)
    if stencil == "5pt":
        return 4.0 - 2.0 * np.cos(a) - 2.0 * np.cos(b)
    return 3.0 - np.cos(a) - np.cos(b) - np.cos(a) * np.cos(b)


def torus_fourier_basis(h: int, w: int, stencil: str = "5pt", cell_area: float = 1.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All h·w real eigenpairs, ascending.

    Returns
    -------
    evals : (N,) ascending (generalized, with mass = ``cell_area``).
    evecs : (N, N) with evecsᵀ·(cell_area·I)·evecs = I.
    freqs : (N, 3) int rows (p, q, kind), kind 0 = cosine, 1 = sine.
    """
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    N = h * w
    cols, vals, freqs = [], [], []
    for p in range(h):
        for q in range(w):
            pc, qc = (-p) % h, (-q) % w
            if (pc, qc) < (p, q):
                continue  # the conjugate frequency was already emitted
            phase = 2.0 * np.pi * (p * ii / h + q * jj / w)
            lam = stencil_symbol(2 * np.pi * p / h, 2 * np.pi * q / w, stencil) / cell_area
            if (pc, qc) == (p, q):
                c = np.cos(phase)
                cols.append(c / np.sqrt(np.sum(c * c)))
                vals.append(lam)
                freqs.append((p, q, 0))
            else:
                cols.append(np.cos(phase) * np.sqrt(2.0 / N))
                cols.append(np.sin(phase) * np.sqrt(2.0 / N))
                vals += [lam, lam]
                freqs += [(p, q, 0), (p, q, 1)]
    evals = np.asarray(vals)
    evals[np.abs(evals) < 1e-14] = 0.0
    order = np.argsort(evals, kind="stable")
    evecs = np.stack(cols, axis=1)[:, order] / np.sqrt(cell_area)
    return evals[order], evecs, np.asarray(freqs, dtype=np.int64)[order]
