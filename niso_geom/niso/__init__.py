"""Neural Isometries in PyTorch: operator (Φ, Λ, M), isometric maps τ ∈ SO(K), losses, training.

The algorithm: ``docs/algorithm.md`` §1. The one objective is :func:`niso_objective`; the
project's optional tie-breakers are in :mod:`niso_geom.niso.extras`. Encoder/decoder models live
in ``niso_geom.niso.models`` (import it explicitly); training in :mod:`niso_geom.train`.
"""

from __future__ import annotations

from niso_geom.niso.cluster_pca import eigenvalue_clusters, rotate_clusters_to_principal_axes
from niso_geom.niso.extras import TieBreakers, correlation_penalty, decorrelation_loss
from niso_geom.niso.isometry import IsoSolve, delta_mask, iso_solve, iso_solve_coeffs, transform
from niso_geom.niso.linalg import ortho_det, procrustes, safe_inverse, safe_svd
from niso_geom.niso.losses import (
    NIsoOutput,
    l1,
    multiplicity_loss,
    niso_objective,
    niso_pair_loss,
    solve_edges,
)
from niso_geom.niso.operator import (
    LearnedOperator,
    OperatorState,
    dense_operator,
    m_orthonormalize,
    orthonormality_error,
    project,
    sample_truncation,
    spectral_dropout,
    unproject,
)

__all__ = [
    "IsoSolve",
    "LearnedOperator",
    "NIsoOutput",
    "OperatorState",
    "TieBreakers",
    "correlation_penalty",
    "decorrelation_loss",
    "delta_mask",
    "dense_operator",
    "eigenvalue_clusters",
    "iso_solve",
    "iso_solve_coeffs",
    "l1",
    "m_orthonormalize",
    "multiplicity_loss",
    "niso_objective",
    "niso_pair_loss",
    "ortho_det",
    "orthonormality_error",
    "procrustes",
    "project",
    "rotate_clusters_to_principal_axes",
    "safe_inverse",
    "safe_svd",
    "sample_truncation",
    "solve_edges",
    "spectral_dropout",
    "transform",
    "unproject",
]
