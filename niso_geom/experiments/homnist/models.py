"""homNIST models: the autoencoder of a config, the classifier heads and their input features.

Two kinds (:data:`~.methods.KINDS`): ``"niso"`` — a :class:`NIsoAutoencoder` whose head is the
O(K)-invariant :class:`~niso_geom.equivariant.OrthNet` on the spectral coefficients
Φᵀ M E(x) (B, K, C); ``"ae"`` — a :class:`PlainAutoencoder` whose head is a
:class:`LatentCNN` on the grid latent E(x) (B, C, h, w).
"""

from __future__ import annotations

import torch
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN
from niso_geom.equivariant import OrthNet
from niso_geom.experiments.homnist.config import HEAD_NORMS, HomNISTConfig
from niso_geom.experiments.homnist.data import SIDE
from niso_geom.experiments.homnist.methods import KINDS
from niso_geom.niso.autoencoder import (
    LatentScaleNorm,
    NIsoAutoencoder,
    PlainAutoencoder,
    encode_coefficients,
)
from niso_geom.niso.models import GridDecoder, GridEncoder
from niso_geom.niso.operator import LearnedOperator

__all__ = ["NUM_CLASSES", "FeatureNoise", "LatentCNN", "build_autoencoder", "build_head", "encode_features"]

NUM_CLASSES = 10

Autoencoder = NIsoAutoencoder | PlainAutoencoder


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def build_autoencoder(cfg: HomNISTConfig, kind: str, alpha: float = 0.5, beta: float = 0.1) -> Autoencoder:
    """The encoder/decoder of ``cfg`` (zero padding, 40×40 -> 20×20×C), with an operator for NIso."""
    _check_kind(kind)
    enc: nn.Module = GridEncoder(1, cfg.enc_channels, cfg.enc_depth, cfg.latent_dim, "zero", lift=cfg.lift)
    dec = GridDecoder(cfg.latent_dim, cfg.dec_channels, cfg.dec_depth, 1, "zero")
    h, w = enc.latent_shape(SIDE, SIDE)
    if cfg.latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    if kind == "ae":
        return PlainAutoencoder(enc, dec, latent_shape=(h, w))
    op = LearnedOperator(h * w, cfg.k, eigenvalue_param=cfg.eigenvalue_param, spectral_dropout=cfg.spectral_dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=alpha, beta=beta, latent_shape=(h, w))


class FeatureNoise(nn.Module):
    """Adds ``sigma · rms(x) · N(0, 1)`` to each sample in training mode (identity in eval mode).

    A regularizer for heads trained on clean digits only: it makes them tolerate the residual
    non-equivariance of the frozen encoder without showing them a single homography. The noise
    is isotropic, so an O(K)-invariant head stays O(K)-invariant in distribution.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        rms = x.detach().square().mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()
        return x + self.sigma * rms * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


def build_head(cfg: HomNISTConfig, kind: str, latent_shape: tuple[int, int]) -> nn.Module:
    """OrthNet on (K, C) coefficients for NIso; :class:`LatentCNN` on (C, h, w) latents for the AE.

    ``cfg.head_norm`` puts a :class:`LatentScaleNorm` in front of the head: ``"sample"`` divides
    each sample by its RMS, ``"channel"`` each latent channel by its RMS over the K coefficients
    (NIso) or the h × w grid (AE). Both keep the NIso head O(K)-invariant; they remove the
    per-sample and per-channel latent scale, which the decoder's normalization leaves almost free
    in pre-training. ``cfg.head_noise`` > 0 then adds :class:`FeatureNoise` in training.
    """
    _check_kind(kind)
    if cfg.head_norm not in HEAD_NORMS:  # a config changed without validation (object.__setattr__)
        raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {cfg.head_norm!r}")
    if kind == "ae":
        head: nn.Module = LatentCNN(cfg.latent_dim, latent_shape, cfg.baseline_width)
        channel_dims: tuple[int, ...] = (2, 3)
    else:
        head = OrthNet(cfg.head_features, cfg.head_layers, NUM_CLASSES, in_channels=cfg.latent_dim,
                       inter_features=cfg.head_inter, readout_hidden=cfg.head_readout)
        channel_dims = (1,)
    layers: list[nn.Module] = []
    if cfg.head_norm != "none":
        layers.append(LatentScaleNorm(dims=None if cfg.head_norm == "sample" else channel_dims))
    if cfg.head_noise > 0:
        layers.append(FeatureNoise(cfg.head_noise))
    return nn.Sequential(*layers, head) if layers else head


def encode_features(model: Autoencoder, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The head's input for images ``x`` (B, 1, 40, 40) in [−1, 1] on the model's device:
    NIso coefficients (B, K, C) (encoder and operator frozen) or AE grid latents (B, C, h, w)."""
    if kind == "ae":
        z = model.encode(x)
        h, w = model.latent_shape
        return z.transpose(-1, -2).reshape(len(x), -1, h, w)
    return encode_coefficients(model, x)
