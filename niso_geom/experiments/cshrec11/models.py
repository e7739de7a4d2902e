"""The networks of the conformal SHREC'11 experiment, built from a config.

* :func:`build_niso` — NIso: sphere-padded encoder/decoder on the poles grid, the latent a
  coarser sphere grid, a learned operator (Φ, Λ, M) with K eigenpairs (``docs/algorithm.md`` §3.4);
* :func:`build_ae` — the same encoder/decoder as a plain autoencoder (the ``ae_aug`` baseline);
* :func:`build_orthnet` — the paper's O(K)-invariant classifier head (§3.5);
* :class:`NIsoClassifier` — OrthNet on Φᵀ M E(x) with the encoder (and operator) fine-tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from niso_geom.baselines.ae_aug import build_autoencoder
from niso_geom.equivariant import OrthNet
from niso_geom.niso.autoencoder import LatentScaleNorm, NIsoAutoencoder, PlainAutoencoder
from niso_geom.niso.models import GridDecoder, GridEncoder
from niso_geom.niso.operator import LearnedOperator

from .config import CShrec11Config
from .data import NUM_CHANNELS

__all__ = ["NIsoClassifier", "build_ae", "build_niso", "build_orthnet"]


def build_niso(cfg: CShrec11Config) -> NIsoAutoencoder:
    """Sphere-padded encoder/decoder on the poles grid, latent = a coarser sphere grid, operator with K eigenpairs."""
    enc: nn.Module = GridEncoder(NUM_CHANNELS, cfg.enc_channels, cfg.enc_depth, cfg.latent_dim, "sphere",
                                 lift=cfg.lift, sphere_grid="poles")
    dec = GridDecoder(cfg.latent_dim, cfg.dec_channels, cfg.dec_depth, NUM_CHANNELS, "sphere", sphere_grid="poles")
    h, w = enc.latent_shape(*cfg.res)
    if cfg.latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    op = LearnedOperator(h * w, cfg.k, eigenvalue_param=cfg.eigenvalue_param, spectral_dropout=cfg.spectral_dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=cfg.alpha, beta=cfg.beta, latent_shape=(h, w))


def build_ae(cfg: CShrec11Config) -> PlainAutoencoder:
    """The NIso encoder/decoder as a plain autoencoder (no operator)."""
    return build_autoencoder(NUM_CHANNELS, tuple(cfg.res), cfg.enc_channels, cfg.enc_depth, cfg.latent_dim,
                             cfg.dec_channels, cfg.dec_depth, lift=cfg.lift, latent_norm=cfg.latent_norm)


def build_orthnet(cfg: CShrec11Config, num_classes: int) -> OrthNet:
    """OrthNet on (K, latent_dim) coefficients -> ``num_classes`` logits."""
    return OrthNet(cfg.head_features, cfg.head_layers, num_classes, in_channels=cfg.latent_dim,
                   inter_features=cfg.head_inter, readout_hidden=cfg.head_readout)


class NIsoClassifier(nn.Module):
    """OrthNet on Φᵀ M E(x) with the encoder (and optionally the operator) trainable.

    ``step_loss((x, y))``: cross-entropy of ``head(model.coefficients(x))``; the decoder is
    dropped. ``param_groups(lr_scale)``: the head at the base rate, the backbone scaled.
    """

    def __init__(self, model: NIsoAutoencoder, head: nn.Module, *, train_operator: bool = True) -> None:
        super().__init__()
        model.decoder = nn.Identity()
        self.model, self.head = model, head
        self.model.operator.requires_grad_(train_operator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.coefficients(x))

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, labels = batch
        logits = self(x)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "acc": (logits.argmax(-1) == labels).float().mean().detach()}

    def param_groups(self, lr_scale: float) -> list[dict[str, Any]]:
        backbone = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": list(self.head.parameters())}, {"params": backbone, "lr_scale": float(lr_scale)}]
