"""The pose experiment's trainable pieces in :func:`~niso_geom.niso.autoencoder.pretrain`'s ``step_loss``
protocol, and the fixed inputs of the ablation and the baseline.

* :class:`OperatorPairs` — the operator-only NIso objective (identity encoder);
* :class:`PoseRegressor` — a network ``features -> R`` trained with a rotation loss;
* :class:`RawPairCNN` — the raw-pair baseline's network;
* :func:`random_basis` — the ablation's fixed basis; :func:`raw_features` — the baseline's input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from niso_geom.experiments.pose.config import PoseConfig
from niso_geom.experiments.pose.data import Features
from niso_geom.niso.losses import niso_pair_loss
from niso_geom.niso.models import GridEncoder, from_flat
from niso_geom.niso.operator import LearnedOperator, OperatorState
from niso_geom.niso.pose import PoseHead, chordal_loss, geodesic_deg, orientation_loss

__all__ = ["OperatorPairs", "PoseRegressor", "RawPairCNN", "random_basis", "raw_features"]


class OperatorPairs(nn.Module):
    """The operator-only NIso objective (identity encoder) in :func:`pretrain`'s ``step_loss`` protocol.

    ``step_loss((x, Tx))`` = :func:`~niso_geom.niso.losses.niso_pair_loss` with β·multiplicity and,
    when ``dropout``, each pair's reconstruction truncated to its lowest i ~ U{1..K} eigenpairs.
    """

    def __init__(self, operator: LearnedOperator, beta: float, dropout: bool) -> None:
        super().__init__()
        self.operator, self.beta, self.dropout = operator, float(beta), bool(dropout)

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, tx = batch[0], batch[1]
        state = self.operator()
        keep = torch.randint(1, state.k + 1, (x.shape[0],)) if self.dropout and state.k > 1 else None
        return niso_pair_loss(state, x, tx, beta=self.beta, keep=keep)


class PoseRegressor(nn.Module):
    """A network ``features -> R (B, 3, 3)`` with the ``step_loss`` protocol (loss ``"l1"`` or ``"chordal"``)."""

    def __init__(self, net: nn.Module, loss: str = "l1") -> None:
        super().__init__()
        if loss not in ("l1", "chordal"):
            raise ValueError(f"loss must be 'l1' or 'chordal', got {loss!r}")
        self.net, self.loss = net, loss

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        features, R = batch
        pred = self.net(features)
        loss = orientation_loss(R, pred) if self.loss == "l1" else chordal_loss(R, pred)
        return {"loss": loss, "median_deg": geodesic_deg(pred.detach(), R).median()}


class RawPairCNN(nn.Module):
    """The raw-pair baseline: (B, 2C, H, W) → GridEncoder (sphere padding) → PoseHead."""

    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        self.encoder = GridEncoder(2 * cfg.channels, cfg.raw_channels, cfg.raw_depth, cfg.raw_out, mode="sphere",
                                   lift=cfg.raw_channels[0], sphere_grid="cell")
        h, w = self.encoder.latent_shape(cfg.nlat, cfg.nlon)
        self.head = PoseHead((cfg.raw_out, h, w), cfg.head_features, cfg.head_layers, cfg.rep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def random_basis(n: int, k: int, seed: int) -> OperatorState:
    """The ablation's fixed basis: Φ (N, K) with orthonormal columns in the uniform mass 4π/N, Λ = 0."""
    gen = torch.Generator().manual_seed(int(seed))
    q = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64)).Q
    mass = torch.full((n,), 4.0 * math.pi / n, dtype=torch.float64)
    return OperatorState(phi=(q / mass.sqrt().unsqueeze(-1)).float(), evals=torch.zeros(k), mass=mass.float())


def raw_features(cfg: PoseConfig) -> Features:
    """(x, Tx) (B, N, C) → (B, 2C, H, W) grid images (``raw_arch="cnn"``) or (B, N, 2C) (``"mlp"``)."""
    if cfg.raw_arch == "mlp":
        return lambda x, tx: torch.cat([x, tx], dim=-1)
    return lambda x, tx: from_flat(torch.cat([x, tx], dim=-1), cfg.nlat, cfg.nlon)
