"""Periodic torus grids with exact stencil eigenpairs and shifts as their group."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from niso_geom.domains.base import Domain
from niso_geom.geometry.stencils import Stencil, check_stencil, torus_stiffness
from niso_geom.geometry.symmetry import permutation_matrix
from niso_geom.harmonics.torus import torus_fourier_basis
from niso_geom.spectral.eigenbasis import Eigenbasis


class TorusGrid(Domain):
    """An h×w periodic grid with a 5- or 9-point stencil Laplacian.

    Parameters
    ----------
    h, w : grid size (rows, columns); flat index i·w + j.
    stencil : "9pt" (the paper's [[.25,.5,.25],[.5,−3,.5],[.25,.5,.25]], the default) or "5pt".
    spacing : grid spacing; the mass is the cell area spacing², eigenvalues scale as 1/spacing².

    Examples
    --------
    >>> t = TorusGrid(16, 16, stencil="9pt")
    >>> eb = t.analytic_eigenbasis(5)
    >>> eb.multiplicities()
    [1, 4]
    """

    kind = "torus"

    def __init__(self, h: int, w: int, stencil: Stencil = "9pt", spacing: float = 1.0):
        check_stencil(stencil)
        if int(h) != h or int(w) != w or h < 3 or w < 3:
            raise ValueError(f"TorusGrid needs integer h, w ≥ 3, got {h}×{w}")
        if not spacing > 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        self.h, self.w, self.stencil, self.spacing = int(h), int(w), stencil, float(spacing)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w)

    def params(self) -> dict[str, Any]:
        return {"h": self.h, "w": self.w, "stencil": self.stencil, "spacing": self.spacing}

    @cached_property
    def points(self) -> np.ndarray:
        """(N, 2) grid coordinates (row, column) × spacing."""
        ii, jj = np.meshgrid(np.arange(self.h), np.arange(self.w), indexing="ij")
        return np.stack([ii.ravel(), jj.ravel()], 1).astype(np.float64) * self.spacing

    @cached_property
    def mass(self) -> np.ndarray:
        m = np.full(self.h * self.w, self.spacing**2)
        m.setflags(write=False)
        return m

    @cached_property
    def stiffness(self) -> sp.csr_matrix:
        return torus_stiffness(self.h, self.w, self.stencil)

    @property
    def has_analytic_basis(self) -> bool:
        return True

    @cached_property
    def _fourier(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return torus_fourier_basis(self.h, self.w, self.stencil, self.spacing**2)

    def analytic_eigenbasis(self, k: int | None = None) -> Eigenbasis:
        """The k lowest exact Fourier eigenpairs (all N if k is None), ascending.

        ``info["freqs"]`` holds (p, q, kind) per vector (kind 0 = cos, 1 = sin).
        """
        evals, evecs, freqs = self._fourier
        k = self.h * self.w if k is None else int(k)
        if not 1 <= k <= len(evals):
            raise ValueError(f"k must be in 1..{len(evals)}, got {k}")
        return Eigenbasis(evals[:k], evecs[:, :k], self.mass, {"method": "analytic", "freqs": freqs[:k]})

    # --- the shift group: t = (di, dj), integers mod (h, w) ---------------------------------
    def to_grid(self, x: np.ndarray) -> np.ndarray:
        """(..., N, C) → (..., C, h, w)."""
        x = np.asarray(x)
        return np.moveaxis(x.reshape(*x.shape[:-2], self.h, self.w, x.shape[-1]), -1, -3)

    def to_flat(self, x: np.ndarray) -> np.ndarray:
        """(..., C, h, w) → (..., N, C)."""
        x = np.moveaxis(np.asarray(x), -3, -1)
        return x.reshape(*x.shape[:-3], self.h * self.w, x.shape[-1])

    def shift_grid(self, g: np.ndarray, di: int, dj: int) -> np.ndarray:
        """Circular shift of images (..., h, w): out[..., i, j] = g[..., i − di, j − dj] (indices mod h, w).

        The one place the shift is computed; :meth:`shift` and the pair samplers go through it.
        """
        g = np.asarray(g)
        if g.shape[-2:] != (self.h, self.w):
            raise ValueError(f"expected images (..., {self.h}, {self.w}), got shape {g.shape}")
        return np.roll(g, (int(di), int(dj)), axis=(-2, -1))

    def shift(self, x: np.ndarray, di: int, dj: int) -> np.ndarray:
        """Circular shift of signals (N,) or (..., N, C): (Tx)[i, j] = x[i − di, j − dj]."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0 if x.ndim == 1 else -2] != self.n:
            raise ValueError(f"expected signals ({self.n},) or (..., {self.n}, C) on the {self.h}×{self.w} torus,"
                             f" got shape {x.shape}")
        if x.ndim == 1:
            return self.shift_grid(x.reshape(self.h, self.w), di, dj).reshape(-1)
        return self.to_flat(self.shift_grid(self.to_grid(x), di, dj))

    def sample_transform(self, rng: np.random.Generator, size: int | None = None) -> tuple[int, int] | np.ndarray:
        """A uniformly random shift (di, dj); with ``size``, an int array (size, 2) (all row shifts are
        drawn first, then all column shifts)."""
        if size is None:
            return int(rng.integers(self.h)), int(rng.integers(self.w))
        return np.stack([rng.integers(self.h, size=size), rng.integers(self.w, size=size)], 1)

    def transform(self, x: np.ndarray, t: tuple[int, int]) -> np.ndarray:
        """Shift signals (N,) or (..., N, C) by t = (di, dj): see :meth:`shift`."""
        return self.shift(x, *t)

    def shift_matrix(self, di: int, dj: int) -> sp.csr_matrix:
        """Permutation matrix P with P x = shift(x, di, dj)."""
        return permutation_matrix(self.shift(np.arange(self.n), di, dj))  # row r takes source r − (di, dj)

    def generators(self) -> list[sp.csr_matrix]:
        """Unit shifts along each axis (the group's generators): sparse (N, N) permutations."""
        return [self.shift_matrix(1, 0), self.shift_matrix(0, 1)]
