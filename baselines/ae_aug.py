"""Autoencoder + augmentation ("AE w/ aug." of the NIso paper's Tables 1 and 2).

The same encoder and decoder as NIso, trained as a plain autoencoder (``L1(x, D(E(x)))``) on
the same transformed views that NIso's pre-training sees (homographies for homNIST, Möbius
views for conformal SHREC'11), so the transformations enter only as data augmentation. A
standard, non-invariant CNN head (:class:`LatentCNN`) is then trained on its frozen grid
latents. Pre-training itself runs through :func:`~niso_geom.niso.autoencoder.pretrain` with
:class:`~niso_geom.niso.autoencoder.PlainAutoencoder`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from niso_geom.niso.autoencoder import LatentScaleNorm, PlainAutoencoder
from niso_geom.niso.models import GridDecoder, GridEncoder, from_flat

__all__ = ["LatentCNN", "build_autoencoder", "grid_latents"]


class LatentCNN(nn.Module):
    """A standard CNN classifier on grid latents (B, C, h, w).

    conv3×3(C→w) → SiLU → avgpool 2 → conv3×3(w→w) → SiLU → avgpool 2 → flatten →
    Linear(→ 4w) → SiLU → Linear(→ classes). Zero padding; not invariant to anything by
    construction. ``num_classes`` defaults to MNIST's 10.

    Shapes
    ------
    (B, in_channels, h, w) -> (B, num_classes), with h, w >= 4.
    """

    def __init__(self, in_channels: int, latent_shape: tuple[int, int], width: int = 64,
                 num_classes: int = 10) -> None:
        super().__init__()
        h, w = latent_shape[0] // 4, latent_shape[1] // 4
        if h < 1 or w < 1:
            raise ValueError(f"latent grid {latent_shape} is too small for two 2x2 poolings")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(width * h * w, 4 * width), nn.SiLU(), nn.Linear(4 * width, num_classes),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def build_autoencoder(in_channels: int, input_shape: tuple[int, int], enc_channels: Sequence[int],
                      enc_depth: Sequence[int], latent_dim: int, dec_channels: Sequence[int],
                      dec_depth: Sequence[int], *, lift: int = 48, mode: str = "sphere",
                      sphere_grid: str = "poles", latent_norm: bool = False) -> PlainAutoencoder:
    """The NIso encoder/decoder pair (:class:`GridEncoder`/:class:`GridDecoder`) as a plain autoencoder.

    ``input_shape`` (H, W) fixes the latent grid (H, W) / 2^(len(enc_channels) - 1);
    ``latent_norm`` appends :class:`LatentScaleNorm` to the encoder (as NIso may).
    """
    enc: nn.Module = GridEncoder(in_channels, enc_channels, enc_depth, latent_dim, mode, lift=lift,
                                 sphere_grid=sphere_grid)
    dec = GridDecoder(latent_dim, dec_channels, dec_depth, in_channels, mode, sphere_grid=sphere_grid)
    h, w = enc.latent_shape(*input_shape)
    if latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    return PlainAutoencoder(enc, dec, latent_shape=(h, w))


@torch.no_grad()
def grid_latents(model: PlainAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Frozen latents of images x (B, C_in, H, W) as grids (B, C, h, w), the head's input."""
    z = model.encode(x)
    h, w = model.latent_shape
    return from_flat(z, h, w)
