"""The project's tie-breakers: optional additions to the paper's method, off by default.

The plain objective (:func:`niso_geom.niso.losses.niso_objective`) leaves some bases it cannot
tell apart — vectors mixed inside clusters of near-equal learned eigenvalues, degrees that
collapse near λ = 0 — and stops with a model τ damped inside each degree. These additions are
results of this project (``docs/spectra.md`` measures each one); they are switched on by the
presets that use them, never by default, and all of them live here behind one sub-config,
:class:`TieBreakers`:

* **decorrelation** — a mask-weighted penalty on the correlations of the spectral coefficients
  (``decorrelation``, from the signals' second moments when ``moment_pairs > 0``);
* **cluster rotation** — every ``cluster_pca_every`` steps, each cluster of near-equal learned
  eigenvalues is rotated onto the signals' principal axes (:mod:`niso_geom.niso.cluster_pca`);
* **refinement phase** — the last ``refine_steps`` steps with β = ``refine_beta`` and the
  eigenvalues at the constant rate ``refine_lr``;
* **mask jitter** — Gaussian offsets on Λ in the τ mask only, decaying over the run;
* **mask width**, the eigenvalues' own **learning-rate scale and final rate**, a **hold** at the
  peak rate before the cosine, and a **delay before spectral dropout**.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from niso_geom.niso.cluster_pca import rotate_clusters_to_principal_axes
from niso_geom.niso.isometry import delta_mask
from niso_geom.niso.operator import LearnedOperator, OperatorState, project_moment

__all__ = [
    "TieBreakers",
    "correlation_penalty",
    "decorrelation_loss",
    "decorrelation_term",
    "jittered_mask_evals",
    "rotate_clusters",
]


@dataclass(frozen=True)
class TieBreakers:
    """The optional additions to the paper's method; every default is the paper's (off)."""

    decorrelation: float = 0.0  # weight of the mask-weighted coefficient decorrelation
    moment_pairs: int = 0  # > 0: the signals' second moments from this many pairs, drawn once
    cluster_pca_every: int = 0  # > 0: rotate eigenvalue clusters onto principal axes every this many steps
    cluster_pca_gap: float = 0.5  # a cluster: consecutive learned eigenvalues closer than this
    cluster_pca_max: int = 8  # longer runs are cut into pieces of at most this many vectors
    cluster_pca_until: float = 0.8  # no rotation after this fraction of the steps
    refine_steps: int = 0  # > 0: a final phase of this many steps (counted in the run's steps) with ...
    refine_beta: float = 0.01  # ... this multiplicity weight, ...
    refine_lr: float = 1e-3  # ... the eigenvalues at this constant rate (Φ and M at the final rate)
    mask_jitter: float = 0.0  # std of Gaussian offsets on Λ in the training mask ...
    mask_jitter_end: float = 0.0  # ... going linearly to this std at the last step (clipped at 0)
    mask_width: float = 1.0  # the τ mask exp(-|λi - λj| / mask_width); 1 is the paper's
    eigenvalue_lr_scale: float = 1.0  # the eigenvalues' peak rate is lr · eigenvalue_lr_scale
    eigenvalue_lr_end: float | None = None  # their final rate (None: lr_end · eigenvalue_lr_scale)
    hold_steps: int = 0  # steps at the peak rate after the warmup, before the cosine decay
    dropout_warmup: int = 0  # steps before spectral dropout starts

    def __post_init__(self) -> None:
        for name in ("decorrelation", "moment_pairs", "cluster_pca_every", "refine_steps", "mask_jitter",
                     "hold_steps", "dropout_warmup", "refine_beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"extras.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("mask_width", "cluster_pca_gap", "refine_lr", "eigenvalue_lr_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"extras.{name} must be positive, got {getattr(self, name)}")
        if self.cluster_pca_every > 0 and self.moment_pairs <= 0:
            raise ValueError("extras.cluster_pca_every needs the signals' second moments: set moment_pairs > 0")
        if self.cluster_pca_max < 2:
            raise ValueError(f"extras.cluster_pca_max must be >= 2, got {self.cluster_pca_max}")

    def check_run(self, steps: int, warmup: int) -> None:
        """Checks that need the run's length: the refinement and the hold fit into ``steps``."""
        if self.refine_steps >= steps:
            raise ValueError(f"extras.refine_steps must be < steps={steps}, got {self.refine_steps} (the refinement "
                             "phase is the last refine_steps of the run; refine_steps=0 turns it off)")
        main_phase = steps - self.refine_steps
        if self.hold_steps > 0 and warmup + self.hold_steps >= main_phase:
            raise ValueError(f"extras.hold_steps must satisfy warmup + hold_steps < steps - refine_steps, got "
                             f"{self.hold_steps} (warmup {warmup}, steps {steps}, refine_steps {self.refine_steps})")

    def active(self) -> dict[str, Any]:
        """The fields that differ from the paper's method (name → value)."""
        base = TieBreakers()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(base, f.name)}

    # -- what a step needs ----------------------------------------------------------------------

    def refining(self, step: int, steps: int) -> bool:
        """Whether step (0-based) of a ``steps``-step run belongs to the refinement phase."""
        return self.refine_steps > 0 and step >= steps - self.refine_steps

    def beta(self, base: float, step: int, steps: int) -> float:
        """The multiplicity weight at ``step``."""
        return self.refine_beta if self.refining(step, steps) else base

    def jitter_std(self, step: int, steps: int) -> float:
        """The mask jitter's std at ``step``: linear from mask_jitter to mask_jitter_end, clipped at 0."""
        frac = step / steps
        return max(0.0, self.mask_jitter * (1.0 - frac) + self.mask_jitter_end * frac)

    def needs_moment(self) -> bool:
        """Whether anything uses the signals' second moments."""
        return self.moment_pairs > 0 and (self.decorrelation > 0 or self.cluster_pca_every > 0)

    def rotates_at(self, step: int, steps: int) -> bool:
        """Whether the clusters are rotated after update ``step`` (0-based)."""
        return (self.cluster_pca_every > 0 and (step + 1) % self.cluster_pca_every == 0
                and not self.refining(step, steps) and step + 1 <= self.cluster_pca_until * steps)

    def eigenvalue_group(self, lr_end: float | None = None) -> dict[str, Any]:
        """Optimizer-group settings of the eigenvalues (see :func:`niso_geom.train.make_scheduler`)."""
        group: dict[str, Any] = {"lr_scale": self.eigenvalue_lr_scale}
        if self.eigenvalue_lr_end is not None:
            group["lr_end"] = self.eigenvalue_lr_end
        if self.refine_steps > 0:  # the schedule decays over the main phase, then holds this rate
            group["lr_after"] = self.refine_lr
        return group


def jittered_mask_evals(evals: torch.Tensor, jitter: torch.Tensor | None) -> torch.Tensor:
    """Λ (K,) plus per-pair offsets (B, K) for the τ mask only: (B, K), or Λ when ``jitter`` is None.

    Random offsets damp τ's entries between any two vectors at random, so that among bases that
    serve the pairs equally well the loss prefers the one whose τ is the most block-diagonal.
    """
    return evals if jitter is None else evals + jitter.to(evals)


def correlation_penalty(second: torch.Tensor, weights: torch.Tensor | None = None,
                        rel_eps: float = 1e-3) -> torch.Tensor:
    """Weighted mean squared correlation ``Σ_(i≠j) w_ij ρ_ij² / Σ_(i≠j) w_ij`` of a second-moment
    matrix (K, K), ``ρ_ij = C_ij / sqrt((C_ii + ε)(C_jj + ε))`` with ``ε = rel_eps · mean_i C_ii``
    (a vector that carries no power has no correlations). ``weights`` (K, K) are treated as
    constants; None weighs every pair 1."""
    k = second.shape[-1]
    diag = second.diagonal()
    scale = diag + rel_eps * diag.mean().detach()
    rho2 = second.square() / (scale.unsqueeze(0) * scale.unsqueeze(1))
    off = 1.0 - torch.eye(k, dtype=second.dtype, device=second.device)
    w = off if weights is None else weights.detach().to(second) * off
    return (w * rho2).sum() / w.sum().clamp_min(torch.finfo(second.dtype).tiny)


def decorrelation_loss(coeffs: torch.Tensor, weights: torch.Tensor | None = None,
                       rel_eps: float = 1e-3) -> torch.Tensor:
    """:func:`correlation_penalty` of the coefficients' second moments over batch and channels,
    ``C = Σ_(b,c) z_bic z_bjc / (B C)``: coeffs (B, K, C) -> 0-d.

    For signals whose statistics are invariant under the group (stationary fields on a torus,
    isotropic ones on a sphere), the coefficients of vectors that lie in distinct irreducible
    subspaces of different power are uncorrelated, while a vector mixing two such subspaces is
    correlated with its partner in proportion to their power gap. Weighted by the eigenvalue
    mask, it acts on the pairs τ may mix freely.
    """
    second = torch.einsum("bic,bjc->ij", coeffs, coeffs) / (coeffs.shape[0] * coeffs.shape[-1])
    return correlation_penalty(second, weights, rel_eps)


def decorrelation_term(state: OperatorState, coeffs: list[torch.Tensor], *, mask: bool = True,
                       mask_width: float = 1.0, signal_moment: torch.Tensor | None = None) -> torch.Tensor:
    """The decorrelation of a batch's coefficients (both sides of the pairs, (B, K, C) each),
    weighted by the (unjittered) eigenvalue mask; with ``signal_moment`` Σ (N, N) it uses the
    coefficients' moments ``Φᵀ M Σ M Φ`` instead of the batch's, which removes their sampling noise."""
    weights = delta_mask(state.evals.detach(), mask_width) if mask else None
    if signal_moment is None:
        return decorrelation_loss(torch.cat(coeffs), weights)
    return correlation_penalty(project_moment(state, signal_moment), weights)


def rotate_clusters(op: LearnedOperator, moment: torch.Tensor, extras: TieBreakers,
                    optimizer: torch.optim.Optimizer | None = None) -> int:
    """:func:`~niso_geom.niso.cluster_pca.rotate_clusters_to_principal_axes` with the extras' gap
    and size; returns the number of clusters rotated."""
    return rotate_clusters_to_principal_axes(op, moment, extras.cluster_pca_gap, max_size=extras.cluster_pca_max,
                                             optimizer=optimizer)
