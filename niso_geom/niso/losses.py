"""NIso losses (``niso-reference.md`` §1.5-1.6).

Pairs are (z0, Tz0) of latents (B, N, C); τ (B, K, K) maps z0's coefficients to Tz0's.

* laplacian experiment: ``L1(z0, Φ τᵀ Φᵀ M Tz0) + L1(Tz0, Φ τ Φᵀ M z0) + β · mult(Λ)``;
* encode experiments: ``L1(x0, dec(Φ τᵀ Φᵀ M Tz0)) + L1(Tx0, dec(Φ τ Φᵀ M z0))``
  ``+ α · [L1(Φᵀ M Tz0, τ Φᵀ M z0) + L1(Φᵀ M z0, τᵀ Φᵀ M Tz0)] + β · mult(Λ)``.

Every L1 is a mean over all elements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from niso_geom.niso.isometry import delta_mask, iso_solve_coeffs
from niso_geom.niso.linalg import DEFAULT_EPS, ProcrustesMethod
from niso_geom.niso.operator import OperatorState, project, project_moment, spectral_dropout, unproject

__all__ = [
    "l1",
    "multiplicity_loss",
    "SpectralPair",
    "spectral_pair",
    "equivariance_loss",
    "reconstruction_loss",
    "correlation_penalty",
    "decorrelation_loss",
    "niso_pair_loss",
]


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over every element."""
    return (x - y).abs().mean()


def multiplicity_loss(evals: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Penalty on clustered eigenvalues: ``sqrt(Σ_ij L_ij² + eps) / K``.

    ``L = diag(G 1) - G`` is the graph Laplacian of ``G_ij = exp(-|λ_i - λ_j|)``. It is ≈ 0
    when the eigenvalues are far apart and ≈ sqrt(K - 1) when all K are equal.

    Parameters
    ----------
    evals : Tensor (..., K). Returns (...).
    """
    k = evals.shape[-1]
    G = delta_mask(evals)
    L = torch.diag_embed(G.sum(-1)) - G
    return torch.sqrt(L.square().sum((-2, -1)) + eps) / k


class SpectralPair(NamedTuple):
    """Coefficients (B, K, C) of a pair: base ``z0_b = ΦᵀM z0``, ``tz0_b = ΦᵀM Tz0`` and the
    cross predictions ``tz0_p = τ z0_b`` (≈ tz0_b) and ``z0_p = τᵀ tz0_b`` (≈ z0_b)."""

    z0_b: torch.Tensor
    tz0_b: torch.Tensor
    z0_p: torch.Tensor
    tz0_p: torch.Tensor


def spectral_pair(state: OperatorState, tau: torch.Tensor, z0: torch.Tensor, tz0: torch.Tensor) -> SpectralPair:
    """Project a latent pair (B, N, C) and transform each side by τ / τᵀ (§1.5)."""
    z0_b = project(state, z0)
    tz0_b = project(state, tz0)
    return SpectralPair(z0_b, tz0_b, tau.mT @ tz0_b, tau @ z0_b)


def equivariance_loss(pair: SpectralPair) -> torch.Tensor:
    """``L1(Φᵀ M Tz0, τ Φᵀ M z0) + L1(Φᵀ M z0, τᵀ Φᵀ M Tz0)`` on spectral coefficients."""
    return l1(pair.tz0_b, pair.tz0_p) + l1(pair.z0_b, pair.z0_p)


def reconstruction_loss(state: OperatorState, pair: SpectralPair, targets: tuple[torch.Tensor, torch.Tensor], *,
                        decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        keep: int | torch.Tensor | None = None) -> torch.Tensor:
    """``L1(x0, dec(Φ z0_p)) + L1(Tx0, dec(Φ tz0_p))``: the cross-transformed reconstructions.

    Parameters
    ----------
    state : the operator.
    pair : from :func:`spectral_pair`.
    targets : ``(x0, Tx0)``; for the laplacian experiment the latents ``(z0, Tz0)`` themselves.
    decoder : maps latents (2B, N, C), ``[Φ z0_p; Φ tz0_p]`` concatenated on dim 0, to the
        outputs (2B, ...); None (laplacian style) is the identity.
    keep : spectral dropout (truncation to the lowest ``keep`` eigenpairs) before unprojection:
        an int or a (B,) tensor (the same for both directions of a pair); None keeps all.
    """
    coeffs = torch.stack([pair.z0_p, pair.tz0_p])  # (2, B, K, C)
    if keep is not None:
        coeffs = spectral_dropout(coeffs, keep=keep)
    latents = unproject(state, coeffs)
    if decoder is None:
        x0_rec, tx0_rec = latents[0], latents[1]
    else:
        x0_rec, tx0_rec = decoder(latents.flatten(0, 1)).chunk(2, dim=0)
    return l1(targets[0], x0_rec) + l1(targets[1], tx0_rec)


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
    ``C = Σ_(b,c) z_bic z_bjc / (B C)``.

    For signals whose statistics are invariant under the group (stationary fields on a torus,
    isotropic ones on a sphere), the coefficients of vectors that lie in distinct irreducible
    subspaces of different power are uncorrelated, while a vector mixing two such subspaces is
    correlated with its partner in proportion to their power gap. Weighted by the eigenvalue
    mask (``weights = delta_mask(Λ)``), it acts on the pairs τ may mix freely.

    Parameters
    ----------
    coeffs : Tensor (B, K, C).
    weights : Tensor (K, K) or None; rel_eps : see :func:`correlation_penalty`.
    """
    second = torch.einsum("bic,bjc->ij", coeffs, coeffs) / (coeffs.shape[0] * coeffs.shape[-1])
    return correlation_penalty(second, weights, rel_eps)


def niso_pair_loss(state: OperatorState, z0: torch.Tensor, tz0: torch.Tensor, beta: float = 0.5, *,
                   mask: bool = True, mask_width: float = 1.0, mask_jitter: torch.Tensor | None = None,
                   keep: int | torch.Tensor | None = None, decorrelation: float = 0.0,
                   signal_moment: torch.Tensor | None = None,
                   method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                   compute_dtype: torch.dtype | None = None, return_tau: bool = False
                   ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Operator-only (identity encoder) loss of the laplacian experiment.

    Parameters
    ----------
    state : the operator.
    z0, tz0 : Tensor (B, N, C), signals and their transformed copies.
    beta : weight of the multiplicity loss (0.5 in the reference).
    mask : use the eigenvalue mask in the τ solve.
    mask_width : its width, ``exp(-|λ_i-λ_j| / mask_width)`` (1 in the reference).
    mask_jitter : Tensor (B, K) or None: offsets added to Λ in the mask only (not in the
        multiplicity loss), one draw per pair. Random offsets damp τ's entries between any two
        vectors at random, so among bases that serve the pairs equally well the loss prefers
        the one whose τ is the most block-diagonal (see ``docs/spectra.md``). None: the paper's.
    keep : spectral dropout before unprojection (see :func:`reconstruction_loss`).
    decorrelation : weight of :func:`decorrelation_loss` of the coefficients of both sides of
        the pairs, weighted by the (unjittered) mask; 0 (the paper's) leaves it out.
    signal_moment : Tensor (N, N) or None: the signals' second moments Σ = E[z zᵀ] (estimated
        once, from many more samples than a batch); the term then uses the coefficients'
        moments ``Φᵀ M Σ M Φ`` instead of the batch's, which removes its sampling noise.
    return_tau : also return τ (B, K, K).

    Returns
    -------
    ``{"loss", "recon", "mult"}`` (0-d tensors; and ``"decor"`` when ``decorrelation > 0``),
    and τ when ``return_tau``.
    """
    z0_b, tz0_b = project(state, z0), project(state, tz0)
    mask_evals = None
    if mask:
        mask_evals = state.evals if mask_jitter is None else state.evals + mask_jitter.to(state.evals)
    tau = iso_solve_coeffs(z0_b, tz0_b, mask_evals, mask_width=mask_width, method=method, eps=eps,
                           compute_dtype=compute_dtype)
    pair = SpectralPair(z0_b, tz0_b, tau.mT @ tz0_b, tau @ z0_b)
    recon = reconstruction_loss(state, pair, (z0, tz0), keep=keep)
    mult = multiplicity_loss(state.evals)
    terms = {"loss": recon + beta * mult, "recon": recon, "mult": mult}
    if decorrelation > 0:
        weights = delta_mask(state.evals.detach(), mask_width) if mask else None
        if signal_moment is None:
            decor = decorrelation_loss(torch.cat([z0_b, tz0_b]), weights)
        else:
            decor = correlation_penalty(project_moment(state, signal_moment), weights)
        terms["loss"] = terms["loss"] + decorrelation * decor
        terms["decor"] = decor
    return (terms, tau) if return_tau else terms
