"""The :class:`Domain` abstraction shared by torus grids, sphere grids and triangle meshes."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from niso_geom.errors import NoAnalyticBasisError, NoSymmetryGroupError
from niso_geom.spectral.eigenbasis import Eigenbasis
from niso_geom.spectral.solve import eigensolve

log = logging.getLogger(__name__)


class Domain(ABC):
    """A discrete domain with points, a positive diagonal mass and a PSD stiffness.

    Subclasses define ``points`` (N, D), ``mass`` (N,), ``stiffness`` (N, N) sparse and
    ``params()`` (the values that define the domain, used for cache keys and reports).
    Signals use the flat layout (..., N, C) or (N,).

    A domain with a known symmetry group also offers :meth:`sample_transform`,
    :meth:`transform` and :meth:`generators`; what a group element ``t`` is depends on the
    domain (torus: a shift (di, dj); sphere grid: a rotation (3, 3); symmetric mesh: a
    rotation (3, 3) mapping the vertex set onto itself). The base versions raise
    :class:`~niso_geom.errors.NoSymmetryGroupError`.
    """

    kind: str = "domain"

    @property
    @abstractmethod
    def points(self) -> np.ndarray: ...

    @property
    @abstractmethod
    def mass(self) -> np.ndarray: ...

    @property
    @abstractmethod
    def stiffness(self) -> sp.csr_matrix: ...

    @abstractmethod
    def params(self) -> dict[str, Any]: ...

    @property
    def n(self) -> int:
        """Number of points N."""
        return self.points.shape[0]

    @property
    def area(self) -> float:
        return float(self.mass.sum())

    @property
    def has_analytic_basis(self) -> bool:
        return False

    def eigenbasis(self, k: int, *, method: str = "auto", cache: Any = None) -> Eigenbasis:
        """The k smallest eigenpairs of S φ = λ M φ (numeric; memoized per k and method)."""
        key = (int(k), method)
        memo = self._eigen_memo
        if key not in memo:
            memo[key] = self._compute_eigenbasis(int(k), method=method, cache=cache)
        return memo[key]

    def _compute_eigenbasis(self, k: int, *, method: str, cache: Any) -> Eigenbasis:
        return eigensolve(self.stiffness, self.mass, k, method=method)

    @cached_property
    def _eigen_memo(self) -> dict:
        return {}

    def analytic_eigenbasis(self, k: int) -> Eigenbasis:
        """Closed-form eigenpairs; raises :class:`NoAnalyticBasisError` where there are none."""
        raise NoAnalyticBasisError(f"{type(self).__name__} has no closed-form eigenbasis; use eigenbasis(k)")

    # --- the symmetry group ----------------------------------------------------------------
    def sample_transform(self, rng: np.random.Generator, size: int | None = None) -> Any:
        """A random group element t (uniform or Haar); with ``size``, that many stacked along axis 0."""
        raise self._no_group()

    def transform(self, x: np.ndarray, t: Any) -> np.ndarray:
        """Signals (N,) or (..., N, C) acted on by the group element t: (T f)(p) = f(t⁻¹ p)."""
        raise self._no_group()

    def generators(self) -> list[np.ndarray | sp.spmatrix]:
        """Matrices (N, N), sparse or dense, of group elements acting on signals, that generate the
        group (or, for a continuous group, a set whose commutant is the invariant operators)."""
        raise self._no_group()

    def _no_group(self) -> NoSymmetryGroupError:
        return NoSymmetryGroupError(f"{self!r} has no known symmetry group: it offers no sample_transform, "
                                    "transform or generators")

    def integrate(self, f: np.ndarray) -> np.ndarray:
        """∫ f over the domain with the mass as quadrature: (N, ...) → (...)."""
        return np.tensordot(self.mass, np.asarray(f), axes=(0, 0))

    def inner(self, f: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Mass inner product fᵀ M g of (N,) or (N, C) arrays."""
        return np.asarray(f).T @ (self.mass[:, None] * np.asarray(g)) if np.ndim(g) > 1 else \
            np.asarray(f).T @ (self.mass * np.asarray(g))

    def describe(self) -> dict[str, Any]:
        """A summary for reports and ``niso domain info``."""
        S = self.stiffness
        return {"kind": self.kind, **self.params(), "n": self.n, "total_mass": self.area,
                "stiffness_nnz": int(S.nnz), "analytic_basis": self.has_analytic_basis}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
