"""Neural Isometries in PyTorch: operator (Φ, Λ, M), isometric maps τ ∈ SO(K), losses, training.

See ``niso-reference.md`` §1 for the algorithm. Encoder/decoder models live in
``niso_geom.niso.models`` (import it explicitly).
"""

from __future__ import annotations

from niso_geom.niso.cluster_pca import eigenvalue_clusters, rotate_clusters_to_principal_axes
from niso_geom.niso.isometry import IsoSolve, delta_mask, iso_solve, iso_solve_coeffs, transform
from niso_geom.niso.linalg import ortho_det, procrustes, safe_inverse, safe_svd
from niso_geom.niso.losses import (
    SpectralPair,
    correlation_penalty,
    decorrelation_loss,
    equivariance_loss,
    l1,
    multiplicity_loss,
    niso_pair_loss,
    reconstruction_loss,
    spectral_pair,
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
from niso_geom.niso.training import (
    GradientAccumulator,
    LoadedCheckpoint,
    WarmupCosine,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    save_checkpoint,
    warmup_cosine,
)

__all__ = [
    "GradientAccumulator",
    "IsoSolve",
    "LearnedOperator",
    "LoadedCheckpoint",
    "OperatorState",
    "SpectralPair",
    "WarmupCosine",
    "correlation_penalty",
    "decorrelation_loss",
    "delta_mask",
    "dense_operator",
    "eigenvalue_clusters",
    "equivariance_loss",
    "iso_solve",
    "iso_solve_coeffs",
    "l1",
    "latest_checkpoint",
    "load_checkpoint",
    "m_orthonormalize",
    "make_optimizer",
    "make_scheduler",
    "multiplicity_loss",
    "niso_pair_loss",
    "ortho_det",
    "orthonormality_error",
    "procrustes",
    "project",
    "reconstruction_loss",
    "rotate_clusters_to_principal_axes",
    "safe_inverse",
    "safe_svd",
    "sample_truncation",
    "save_checkpoint",
    "spectral_dropout",
    "spectral_pair",
    "transform",
    "unproject",
    "warmup_cosine",
]
