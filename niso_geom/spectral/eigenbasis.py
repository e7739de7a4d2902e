"""The :class:`Eigenbasis` of a generalized eigenproblem S φ = λ M φ."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from niso_geom.runio import atomic_write


def cluster_eigenvalues(evals: np.ndarray, *, rtol: float = 1e-6, atol: float = 1e-9) -> list[np.ndarray]:
    """Group ascending eigenvalues into eigenspaces (index arrays).

    Consecutive values join a cluster while λ_{i+1} − λ_i ≤ atol + rtol·|λ_{i+1}|.
    """
    evals = np.asarray(evals, dtype=np.float64)
    if evals.size == 0:
        return []
    if np.any(np.diff(evals) < -(atol + rtol * np.abs(evals[1:]))):
        raise ValueError("eigenvalues must be sorted ascending to be clustered")
    gaps = np.diff(evals) > atol + rtol * np.abs(evals[1:])
    starts = np.concatenate([[0], np.flatnonzero(gaps) + 1, [evals.size]])
    return [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])]


@dataclass(frozen=True)
class Eigenbasis:
    """K eigenpairs of S φ = λ M φ with Φᵀ M Φ = I.

    Attributes
    ----------
    evals : (K,) ascending, ≥ 0.
    evecs : (N, K), M-orthonormal columns (signs arbitrary).
    mass : (N,) positive diagonal mass.
    info : how it was computed (method, timings, residuals, …).
    """

    evals: np.ndarray
    evecs: np.ndarray
    mass: np.ndarray
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        ev, V, m = (np.asarray(a, dtype=np.float64) for a in (self.evals, self.evecs, self.mass))
        if ev.ndim != 1 or V.ndim != 2 or m.ndim != 1:
            raise ValueError(f"expected evals (K,), evecs (N,K), mass (N,), got {ev.shape}, {V.shape}, {m.shape}")
        if V.shape != (m.shape[0], ev.shape[0]):
            raise ValueError(f"evecs shape {V.shape} does not match mass {m.shape} and evals {ev.shape}")
        for a in (ev, V, m):
            a.setflags(write=False)
        object.__setattr__(self, "evals", ev)
        object.__setattr__(self, "evecs", V)
        object.__setattr__(self, "mass", m)

    @property
    def k(self) -> int:
        return self.evals.shape[0]

    @property
    def n(self) -> int:
        return self.evecs.shape[0]

    def __len__(self) -> int:
        return self.k

    def truncate(self, k: int) -> Eigenbasis:
        """The first k eigenpairs."""
        if k > self.k:
            raise ValueError(f"cannot truncate a basis of {self.k} eigenpairs to {k}")
        return Eigenbasis(self.evals[:k], self.evecs[:, :k], self.mass, dict(self.info))

    def eigenspaces(self, *, rtol: float = 1e-6, atol: float = 1e-9) -> list[np.ndarray]:
        """Index arrays of the clusters of equal eigenvalues (see :func:`cluster_eigenvalues`)."""
        return cluster_eigenvalues(self.evals, rtol=rtol, atol=atol)

    def multiplicities(self, **kw) -> list[int]:
        return [len(s) for s in self.eigenspaces(**kw)]

    def project(self, f: np.ndarray) -> np.ndarray:
        """Spectral coefficients Φᵀ M f: (..., N, C) or (N,) → (..., K, C) or (K,)."""
        f = np.asarray(f)
        if f.ndim == 1:
            return self.evecs.T @ (self.mass * f)
        return np.einsum("nk,...nc->...kc", self.evecs, self.mass[:, None] * f)

    def reconstruct(self, c: np.ndarray) -> np.ndarray:
        """Φ c: (..., K, C) or (K,) → (..., N, C) or (N,)."""
        c = np.asarray(c)
        if c.ndim == 1:
            return self.evecs @ c
        return np.einsum("nk,...kc->...nc", self.evecs, c)

    def orthonormality_error(self) -> float:
        """max |Φᵀ M Φ − I|."""
        G = self.evecs.T @ (self.mass[:, None] * self.evecs)
        return float(np.abs(G - np.eye(self.k)).max())

    def residual(self, stiffness) -> float:
        """‖S Φ − M Φ Λ‖_F / ‖S‖_F."""
        import scipy.sparse as sp

        R = stiffness @ self.evecs - (self.mass[:, None] * self.evecs) * self.evals[None, :]
        nS = sp.linalg.norm(stiffness) if sp.issparse(stiffness) else np.linalg.norm(stiffness)
        return float(np.linalg.norm(R) / nS)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically (:func:`niso_geom.runio.atomic_write`)."""
        with atomic_write(path, "wb") as f:
            np.savez(f, evals=self.evals, evecs=self.evecs, mass=self.mass)

    @classmethod
    def load(cls, path: str | Path) -> Eigenbasis:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["evals"], z["evecs"], z["mass"], {"method": "loaded", "path": str(path)})
