"""The one Neural Isometries objective (``docs/algorithm.md`` §1.3, §1.5–1.7).

Every NIso path in the project — the identity encoder of ``niso spectra`` and the pose operator,
the autoencoders of homNIST and cSHREC'11, pairs and triplets — computes its loss here. For
views z_0 … z_{V−1} of the same content (latents (B, N, C)) and reconstruction targets x_i (the
latents themselves when there is no encoder), the paper's method is one short path::

    ẑ_i   = Φᵀ M z_i                                   project          (§1.2)
    τ_ij  = argmax_{R ∈ SO(K)} tr Rᵀ (P ⊙ ẑ_j ẑ_iᵀ)     isometric map    (§1.3), P_ab = exp(−|λ_a − λ_b|)
    recon = Σ_edges L1(x_i, D(Φ τᵀ ẑ_j)) + L1(x_j, D(Φ τ ẑ_i))            (§1.5, §1.6)
    equiv = Σ_edges L1(ẑ_j, τ ẑ_i) + L1(ẑ_i, τᵀ ẑ_j)
    loss  = recon / E + α · equiv / E + β · mult(Λ)

with D the decoder (the identity without one), spectral dropout optionally truncating Φ τ ẑ to
the lowest ``keep`` eigenpairs before synthesis (§1.7), and the edges (i, j, τ_ij) of a pair
[(0, 1)] or of a triplet [(0, 1), (1, 2), (0, 2) with the *composed* map τ_12 τ_01]. Every L1
is a mean over all elements.

The project's optional tie-breakers (decorrelation, jittered masks, cluster rotations, a
refinement phase) are not part of this objective: they live in :mod:`niso_geom.niso.extras`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from niso_geom.niso.isometry import delta_mask, iso_solve_coeffs
from niso_geom.niso.linalg import DEFAULT_EPS, ProcrustesMethod
from niso_geom.niso.operator import OperatorState, project, synthesize_truncated, unproject

__all__ = [
    "Edge",
    "NIsoOutput",
    "l1",
    "multiplicity_loss",
    "niso_objective",
    "niso_pair_loss",
    "solve_edges",
]

Topology = Literal["pair", "triplet"]
Edge = tuple[int, int, torch.Tensor]  # (i, j, τ_ij) with τ_ij ẑ_i ≈ ẑ_j


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


def solve_edges(coeffs: Sequence[torch.Tensor], mask_evals: torch.Tensor | None, topology: Topology = "pair", *,
                mask_width: float = 1.0, method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                compute_dtype: torch.dtype | None = None) -> list[Edge]:
    """The isometric maps between views: a pair gives [(0, 1, τ01)], a triplet
    [(0, 1, τ01), (1, 2, τ12), (0, 2, τ12 τ01)] (the chain edge uses the composed map).

    Parameters
    ----------
    coeffs : the views' coefficients ẑ_i (B, K, C).
    mask_evals : eigenvalues (K,) or (B, K) of the mask ``exp(-|λ_a − λ_b| / mask_width)``; None: no mask.
    method, eps, compute_dtype : the Procrustes solve (:func:`~niso_geom.niso.linalg.procrustes`).
    """
    def solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return iso_solve_coeffs(a, b, mask_evals, mask_width=mask_width, method=method, eps=eps,
                                compute_dtype=compute_dtype)

    if topology == "pair":
        if len(coeffs) != 2:
            raise ValueError(f"a pair has 2 views, got {len(coeffs)}")
        return [(0, 1, solve(coeffs[0], coeffs[1]))]
    if topology == "triplet":
        if len(coeffs) != 3:
            raise ValueError(f"a triplet has 3 views, got {len(coeffs)}")
        t01, t12 = solve(coeffs[0], coeffs[1]), solve(coeffs[1], coeffs[2])
        return [(0, 1, t01), (1, 2, t12), (0, 2, t12 @ t01)]
    raise ValueError(f"topology must be 'pair' or 'triplet', got {topology!r}")


@dataclass
class NIsoOutput:
    """What :func:`niso_objective` computed: the loss terms (0-d tensors: ``loss``, ``recon``,
    ``equiv``, ``mult``), the views' coefficients ẑ_i (B, K, C) and the edges (i, j, τ_ij)."""

    terms: dict[str, torch.Tensor]
    coeffs: list[torch.Tensor]
    edges: list[Edge]

    @property
    def tau(self) -> torch.Tensor:
        """τ of the first edge (B, K, K)."""
        return self.edges[0][2]


def niso_objective(state: OperatorState, latents: Sequence[torch.Tensor], targets: Sequence[torch.Tensor] | None = None,
                   *, alpha: float = 0.0, beta: float = 0.5, topology: Topology = "pair",
                   decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   keep: int | torch.Tensor | None = None, mask: bool = True, mask_evals: torch.Tensor | None = None,
                   mask_width: float = 1.0, method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                   compute_dtype: torch.dtype | None = None, recon_dtype: torch.dtype | None = None) -> NIsoOutput:
    """The NIso loss of a batch of pairs or triplets (module docstring).

    Parameters
    ----------
    state : the operator (Φ (N, K), Λ (K,), M (N,)).
    latents : the views' latents z_i (B, N, C), in the operator's dtype.
    targets : what each view reconstructs (the images for an autoencoder); None: the latents.
    alpha, beta : weights of the equivariance and multiplicity terms. With ``alpha = 0`` the
        equivariance term is still reported (computed without a graph) but not part of the loss.
    topology : ``"pair"`` or ``"triplet"`` (:func:`solve_edges`).
    decoder : maps synthesized latents (2E·B, N, C) to outputs (2E·B, ...); None: the identity.
    keep : spectral dropout (the lowest ``keep`` eigenpairs, an int or a (B,) tensor shared by both
        directions of an edge) before synthesis; None keeps all.
    mask : use the eigenvalue mask in the τ solve; ``mask_evals`` replaces Λ in it (e.g. jittered
        eigenvalues, :mod:`niso_geom.niso.extras`).
    mask_width, method, eps, compute_dtype : the τ solve (:func:`solve_edges`).
    recon_dtype : opt-in reduced precision (e.g. ``torch.bfloat16``) for the predictions τ ẑ and
        their synthesis Φ c, forward and backward (autocast); the projection, the τ solve and every
        loss term stay in the latents' dtype. None: the latents' dtype throughout.
    """
    targets = latents if targets is None else targets
    if len(targets) != len(latents):
        raise ValueError(f"{len(latents)} views but {len(targets)} reconstruction targets")
    # 1. project every view onto the learned eigenbasis
    coeffs = [project(state, z) for z in latents]
    # 2. the isometric maps between views
    evals = (state.evals if mask_evals is None else mask_evals) if mask else None
    edges = solve_edges(coeffs, evals, topology, mask_width=mask_width, method=method, eps=eps,
                        compute_dtype=compute_dtype)
    # 3. each side of each edge predicted from the other: equivariance in the spectral domain
    preds, recon_targets, equiv_terms = [], [], []
    trains_equiv = torch.is_grad_enabled() and alpha != 0
    reduced = functools.partial(_autocast, recon_dtype, coeffs[0])  # a fresh context per use
    for i, j, tau in edges:
        with reduced():
            to_j, to_i = tau @ coeffs[i], tau.mT @ coeffs[j]  # τ ẑ_i ≈ ẑ_j and τᵀ ẑ_j ≈ ẑ_i
        with torch.set_grad_enabled(trains_equiv):
            equiv_terms.append(l1(coeffs[j], to_j.to(coeffs[j].dtype)) + l1(coeffs[i], to_i.to(coeffs[i].dtype)))
        preds += [to_i, to_j]
        recon_targets += [targets[i], targets[j]]
    # 4. the predictions synthesized (after spectral dropout) and decoded in one call
    pred = torch.stack(preds)  # (2E, B, K, C)
    with reduced():  # spectral dropout folded into Φ's columns (synthesize_truncated)
        synth = unproject(state, pred) if keep is None else synthesize_truncated(state, pred, keep)
        synth = synth.to(latents[0].dtype)  # (2E, B, N, C)
    out = synth if decoder is None else decoder(synth.flatten(0, 1)).unflatten(0, synth.shape[:2])
    # unbind, not out[n]: indexing's backward would zero-fill a full (2E, B, N, C) gradient per view
    recon = sum(l1(t, o) for t, o in zip(recon_targets, out.unbind(0))) / len(edges)
    equiv = sum(equiv_terms) / len(edges)
    mult = multiplicity_loss(state.evals)
    loss = recon + alpha * equiv + beta * mult if alpha != 0 else recon + beta * mult
    return NIsoOutput({"loss": loss, "recon": recon, "equiv": equiv, "mult": mult}, coeffs, edges)


def _autocast(dtype: torch.dtype | None, like: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``like``'s device for the prediction products; a no-op for None."""
    if dtype is None or dtype == like.dtype:
        return contextlib.nullcontext()
    return torch.autocast(device_type=like.device.type, dtype=dtype)


def niso_pair_loss(state: OperatorState, z0: torch.Tensor, tz0: torch.Tensor, beta: float = 0.5, *,
                   keep: int | torch.Tensor | None = None, mask: bool = True, mask_width: float = 1.0,
                   method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                   compute_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The identity-encoder objective on signal pairs (z0, Tz0) (B, N, C) — the paper's toric and
    spherical Laplacian experiments: :func:`niso_objective` with α = 0, targets the signals.

    Returns ``{"loss", "recon", "equiv", "mult"}`` (0-d tensors; ``equiv`` is reported, not trained).
    """
    return niso_objective(state, [z0, tz0], beta=beta, keep=keep, mask=mask, mask_width=mask_width,
                          method=method, eps=eps, compute_dtype=compute_dtype).terms
