"""Cotan stiffness and lumped mass of triangle meshes.

Convention (docs/conventions.md): the stiffness S is the weak Laplacian, symmetric
positive semi-definite with S·1 = 0; the positive Laplacian is M⁻¹S. libigl's
``cotmatrix`` is −S. Manifold meshes use potpourri3d's cotan Laplacian and
barycentric vertex areas; non-manifold input falls back to robust-laplacian's
tufted intrinsic Delaunay Laplacian (Sharp & Crane 2020).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeshOperators:
    """Stiffness (N,N) CSR, mass (N,) and which method built them."""

    stiffness: sp.csr_matrix
    mass: np.ndarray
    method: str


def cotan_stiffness(V: np.ndarray, F: np.ndarray, *, denom_eps: float = 0.0) -> sp.csr_matrix:
    """Cotan stiffness S (N,N): PSD, S·1 = 0 (potpourri3d)."""
    import potpourri3d as pp3d

    return sp.csr_matrix(pp3d.cotan_laplacian(np.ascontiguousarray(V, dtype=np.float64),
                                              np.ascontiguousarray(F, dtype=np.int64), denom_eps=denom_eps))


def lumped_mass(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Barycentric lumped vertex areas (N,): one third of the incident triangle areas."""
    import potpourri3d as pp3d

    return np.asarray(pp3d.vertex_areas(np.ascontiguousarray(V, dtype=np.float64),
                                        np.ascontiguousarray(F, dtype=np.int64)), dtype=np.float64)


def robust_operators(V: np.ndarray, F: np.ndarray, *, mollify_factor: float = 1e-5) -> tuple[sp.csr_matrix, np.ndarray]:
    """Tufted intrinsic-Delaunay stiffness and mass from robust-laplacian (any triangle soup)."""
    import robust_laplacian as rl

    L, M = rl.mesh_laplacian(np.ascontiguousarray(V, dtype=np.float64), np.ascontiguousarray(F, dtype=np.int64),
                             mollify_factor=mollify_factor)
    return sp.csr_matrix(L), np.asarray(M.diagonal(), dtype=np.float64)


def mesh_operators(V: np.ndarray, F: np.ndarray, *, method: Literal["auto", "cotan", "robust"] = "auto",
                   manifold: bool | None = None) -> MeshOperators:
    """Stiffness and mass of a mesh.

    ``method="auto"`` uses the cotan Laplacian on manifold meshes and robust-laplacian
    when ``manifold`` is False (or when the cotan mass has a zero entry, e.g. an
    unreferenced vertex).
    """
    if method not in ("auto", "cotan", "robust"):
        raise ValueError(f"method must be 'auto', 'cotan' or 'robust', got {method!r}")
    if method == "robust" or (method == "auto" and manifold is False):
        S, m = robust_operators(V, F)
        return MeshOperators(S, m, "robust")
    S = cotan_stiffness(V, F)
    m = lumped_mass(V, F)
    if method == "auto" and (m <= 0).any():
        log.info("cotan mass has %d non-positive entries; using robust-laplacian", int((m <= 0).sum()))
        S, m = robust_operators(V, F)
        return MeshOperators(S, m, "robust")
    return MeshOperators(S, m, "cotan")
