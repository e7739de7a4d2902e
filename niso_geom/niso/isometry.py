"""The isometric functional map τ ∈ SO(K) (``docs/algorithm.md`` §1.3).

With spectral coefficients Â = Φᵀ M A and B̂ = Φᵀ M B (K, C) and the eigenvalue mask
``P_ij = exp(-|λ_i - λ_j| / w)`` (width w = 1 in the paper), τ solves the masked Procrustes problem

    τ = argmax_{R ∈ SO(K)} tr(Rᵀ (P ⊙ B̂ Âᵀ)),

so that τ Â ≈ B̂ (τ maps A's coefficients to B's; τᵀ = τ⁻¹ maps back).

The mask is cut to exactly 0 where it would fall below ``tiny^(1/3)`` of its dtype (2⁻⁴² ≈ 2.3e-13
in float32, i.e. |λ_i − λ_j| > 29.1·w), so no subnormal number ever enters a training step
(:func:`decay_exp`, ``docs/performance.md``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from niso_geom.niso.linalg import (
    DEFAULT_EPS,
    ProcrustesMethod,
    flush_floor,
    no_autocast,
    procrustes,
    resolve_compute_dtype,
)
from niso_geom.niso.operator import LearnedOperator, OperatorState, project, unproject

__all__ = ["IsoSolve", "decay_cutoff", "decay_exp", "delta_mask", "iso_solve", "iso_solve_coeffs", "transform"]


def decay_cutoff(dtype: torch.dtype) -> float:
    """The largest d for which :func:`decay_exp` keeps ``exp(-d)``: ``-log(tiny^(1/3))`` of ``dtype``
    (29.11 for float32 and bfloat16, 236.0 for float64)."""
    return -math.log(flush_floor(dtype))


def decay_exp(d: torch.Tensor) -> torch.Tensor:
    """``exp(-d)`` for d ≥ 0, exactly 0 where it would be below ``tiny^(1/3)`` of d's dtype.

    Why: arithmetic on subnormal floats (below ``tiny`` = 2⁻¹²⁶ ≈ 1.18e-38) is 10–100× slower on
    x86, and a widely spread learned spectrum (λ up to ~250) puts ~9 % of ``exp(-|λ_i - λ_j|)``
    there, which made late training steps 7× slower. Cutting at ``tiny^(1/3)`` (2⁻⁴² in float32,
    :func:`~niso_geom.niso.linalg.flush_floor`) rather than at ``tiny`` keeps the *products* of a
    step normal too: the mask meets at most two other small factors before a sum (the gradient of
    the masked cross-covariance and a coefficient, or its own square in the multiplicity loss's
    ``L²``), and three factors ≥ ``tiny^(1/3)`` multiply to ≥ ``tiny``. The dropped values are
    < 2.3e-13 relative to the diagonal (1), far below float32 rounding (6e-8).

    The gradient is consistent: 0 wherever the value is 0 (the argument is clamped at the cutoff
    before the exponential, so no subnormal is formed in the forward or the backward either).

    Parameters
    ----------
    d : Tensor (...), non-negative. Returns a tensor of the same shape and dtype.
    """
    cut = decay_cutoff(d.dtype)
    return torch.exp(-d.clamp(max=cut)).masked_fill(d > cut, 0.0)


def delta_mask(evals: torch.Tensor, width: float = 1.0) -> torch.Tensor:
    """``exp(-|λ_i - λ_j| / width)``: evals (..., K) -> (..., K, K); width 1 is the paper's mask.

    Entries below ``tiny^(1/3)`` of the dtype are exactly 0 (:func:`decay_exp`): no subnormals.
    """
    if not width > 0:
        raise ValueError(f"mask width must be positive, got {width}")
    return decay_exp((evals.unsqueeze(-1) - evals.unsqueeze(-2)).abs() / width)


def iso_solve_coeffs(a_hat: torch.Tensor, b_hat: torch.Tensor, evals: torch.Tensor | None = None, *,
                     mask_width: float = 1.0, method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                     compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """τ in SO(K) from spectral coefficients, τ â ≈ b̂.

    Parameters
    ----------
    a_hat, b_hat : Tensor (..., K, C), coefficients of the source and the target.
    evals : Tensor (K,) (or (..., K), one set per problem) for the mask ``exp(-|λ_i-λ_j| / mask_width)``;
        None for the unmasked problem.
    mask_width : the mask's width in eigenvalue units (1 in the paper).
    method, eps, compute_dtype : see :func:`~niso_geom.niso.linalg.procrustes`.

    Returns
    -------
    tau : Tensor (..., K, K), orthogonal with det +1, dtype of ``a_hat``.
    """
    dtype = resolve_compute_dtype(a_hat.dtype, compute_dtype)
    with no_autocast(a_hat.device.type):
        cross = b_hat.to(dtype) @ a_hat.to(dtype).mT
        if evals is not None:
            cross = delta_mask(evals.to(dtype), mask_width) * cross
        tau = procrustes(cross, special=True, method=method, eps=eps)
    return tau.to(a_hat.dtype)


def iso_solve(state: OperatorState, a: torch.Tensor, b: torch.Tensor, *, mask: bool = True,
              mask_width: float = 1.0, method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
              compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Masked SO(K) Procrustes map between two signals, τ Φᵀ M a ≈ Φᵀ M b.

    Parameters
    ----------
    state : the operator (Φ (N,K), Λ (K,), M (N,)).
    a, b : Tensor (B, N, C) (any leading shape), the signal and its transformed copy.
    mask : apply the eigenvalue mask ``exp(-|λ_i-λ_j| / mask_width)`` (the reference always does,
        with width 1).

    Returns
    -------
    tau : Tensor (B, K, K) in SO(K).
    """
    return iso_solve_coeffs(project(state, a), project(state, b), state.evals if mask else None,
                            mask_width=mask_width, method=method, eps=eps, compute_dtype=compute_dtype)


def transform(state: OperatorState, tau: torch.Tensor, x: torch.Tensor, *, inverse: bool = False) -> torch.Tensor:
    """Apply τ in the spatial domain: ``Φ τ Φᵀ M x`` (or ``Φ τᵀ Φᵀ M x`` when ``inverse``).

    Parameters
    ----------
    tau : Tensor (B, K, K); x : Tensor (B, N, C). Returns (B, N, C).
    """
    t = tau.mT if inverse else tau
    return unproject(state, t @ project(state, x))


class IsoSolve(nn.Module):
    """Operator plus isometry solve, as the official ``operator_iso``: ``(a, b) -> (tau, state)``.

    Parameters
    ----------
    operator : the :class:`LearnedOperator` whose (Φ, Λ, M) are used.
    mask, method, eps, compute_dtype : see :func:`iso_solve`.
    """

    def __init__(self, operator: LearnedOperator, *, mask: bool = True, method: ProcrustesMethod = "polar",
                 eps: float = DEFAULT_EPS, compute_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.operator = operator
        self.mask = mask
        self.method = method
        self.eps = eps
        self.compute_dtype = compute_dtype

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, OperatorState]:
        state = self.operator()
        tau = iso_solve(state, a, b, mask=self.mask, method=self.method, eps=self.eps,
                        compute_dtype=self.compute_dtype)
        return tau, state
