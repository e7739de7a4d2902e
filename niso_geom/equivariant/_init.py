"""Parameter initialisers matching Flax's defaults (the reference code is Flax)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["lecun_normal_", "dense"]

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it restores the
# requested variance after truncation (Flax's variance_scaling does the same).
_TRUNC_STD = 0.87962566103423978


def lecun_normal_(w: Tensor, fan_in: int) -> Tensor:
    """In-place truncated-normal init with variance 1/fan_in (Flax ``lecun_normal``)."""
    std = math.sqrt(1.0 / max(fan_in, 1)) / _TRUNC_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


def dense(in_features: int, out_features: int, *, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` initialised like Flax ``Dense``: lecun-normal weight, zero bias."""
    lin = nn.Linear(in_features, out_features, bias=bias)
    lecun_normal_(lin.weight, in_features)
    if bias:
        nn.init.zeros_(lin.bias)
    return lin
