"""A plain CNN on the sphere image, trained from scratch with Möbius augmentation.

The NIso encoder architecture (:class:`~niso_geom.niso.models.GridEncoder`, longitude-circular
and across-pole padding) followed by the standard CNN head of the AE baseline
(:class:`~baselines.ae_aug.LatentCNN`), trained end to end on labelled random views (a random
Möbius view of each training mesh per step = augmentation). No pre-training, no invariance by
construction: the supervised reference point for NIso's pre-training.

Shapes: images (B, C, H, W) -> logits (B, num_classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN
from niso_geom.niso.models import GridEncoder

__all__ = ["SphereCNN"]


class SphereCNN(nn.Module):
    """``GridEncoder`` backbone (H, W) -> (h, w) grid, then a :class:`LatentCNN` head.

    Parameters
    ----------
    in_channels, input_shape : signals (C, H, W) the network is built for.
    channels, depth, out_dim, lift : the backbone (as the NIso encoder).
    num_classes : logits.
    width : the head's width.
    mode, sphere_grid : padding of the backbone (``"sphere"``/``"poles"`` for the paper's grid).
    """

    def __init__(self, in_channels: int, input_shape: tuple[int, int], channels: Sequence[int],
                 depth: Sequence[int], out_dim: int, num_classes: int, *, lift: int = 48, width: int = 64,
                 mode: str = "sphere", sphere_grid: str = "poles") -> None:
        super().__init__()
        self.backbone = GridEncoder(in_channels, channels, depth, out_dim, mode, lift=lift, sphere_grid=sphere_grid)
        self.head = LatentCNN(out_dim, self.backbone.latent_shape(*input_shape), width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
