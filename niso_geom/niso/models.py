"""Convolutional encoders and decoders for grid domains, in the residual style of NIso.

The architecture follows the official Neural Isometries code (``nn/conv.py``; see
``docs/algorithm.md`` §2.1) layer for layer:

* ``"LayerNorm"`` of the reference is an **instance norm**: mean and (biased) variance over
  (H, W) per sample and per channel, eps 1e-6, learnable per-channel scale and bias
  (:class:`InstanceNorm`).
* :class:`ResBlock` ``(c_in -> c)``: ``x0 = conv(silu(IN(x)))``; ``x0 = conv(silu(IN(x0)))``;
  ``out = x0 + conv1x1(x)``. The 1x1 skip ("Dense") is present even when ``c_in == c``.
* Downsample is a 2x2 average pool with stride 2; upsample is nearest-neighbour x2.
* :class:`GridEncoder`: 1x1 lift to 48 channels -> silu -> per level ``l``: [downsample if
  ``l > 0``] then ``block_depth[l]`` ResBlocks of ``channels[l]`` -> IN -> silu -> 1x1 to
  ``out_dim``. No output activation.
* :class:`GridDecoder`: per level ``l``: [upsample if ``l > 0``] then ``block_depth[l]``
  ResBlocks -> IN -> silu -> 1x1 to ``out_channels``. No lift, no output activation.

What differs from the reference, on purpose: every k x k convolution pads **for its domain**
(:func:`pad_domain`) and then convolves with ``padding=0``. The reference zero-pads everywhere,
so nothing there is equivariant by construction; here an encoder on the torus commutes with
shifts by whole latent cells, and one on the sphere with longitude rotations by whole latent
cells (tested to float64 round-off).

Padding modes
-------------
``"zero"``
    Planar images: zeros outside.
``"torus"``
    Circular in both axes.
``"sphere"``
    Equiangular latitude-longitude grid laid out ``(B, C, H = n_lat, W = n_lon)``, row 0 at
    the north pole side, longitudes ``phi_j = 2 pi j / W`` (no duplicated seam column).
    Longitude wraps circularly. Beyond a pole, the grid continues on the far side of that
    pole: the point at colatitude ``-theta`` and longitude ``phi`` is the point at
    ``(theta, phi + pi)``, so a pad row is a grid ring read in reverse order of latitude and
    rolled by ``W / 2`` columns (``W`` must be even). Which ring depends on the grid kind,
    ``sphere_grid``:

    * ``"cell"`` (cell-centred, ``theta_i = pi (i + 1/2) / H``): pad row ``-k`` is row
      ``k - 1`` rolled (the edge ring is repeated, as in a "symmetric" reflection);
    * ``"poles"`` (both poles on the grid, ``theta_i = pi i / (H - 1)``, the paper's 96x192
      layout without its duplicated seam): pad row ``-k`` is row ``k`` rolled (the pole row
      is the mirror, as in a "reflect" reflection).

    Latitude padding is applied first, then longitude wrap, so the corners are right too.
    In ``niso_geom.geometry.quadrature`` terms, ``"cell"`` rings are ``fejer1``'s and
    ``"poles"`` rings are ``clenshaw_curtis``'s. Driscoll-Healy rings (north pole on the grid,
    south pole not) match neither exactly; no padding mode claims them.

Grids across levels (the latent is a coarser grid of the same domain)
--------------------------------------------------------------------
A 2x2 average pool maps an ``H x W`` grid to an ``H/2 x W/2`` grid whose cells are the
unions of 2x2 fine cells. ``latent_grid_shape`` gives the latent shape and
:func:`latent_sphere_coords` the exact latent coordinates (the mean of the pooled fine
coordinates), which is what a spectral comparison on the latent grid should use.

* Torus: ``H x W`` -> ``H/2^L x W/2^L``, a torus grid again (cell centres move by half a
  fine cell, i.e. a translation, which is an isometry).
* Sphere, ``"cell"`` input: latitude rows ``pi(i + 1/2)/(H/2^L)``, exactly the cell-centred
  grid of the coarse size. Longitudes are ``2 pi (j + 1/2 - 2^-(L+1)) / (W/2^L)``: the
  coarse grid is rotated about the polar axis by ``pi (1 - 2^-L) / (W/2^L)`` (less than half
  a coarse cell), an isometry, so spectra are unchanged; :func:`latent_sphere_coords`
  reports it.
* Sphere, ``"poles"`` input: after one pool the rows sit at ``(2i + 1/2) pi/(H-1)``: equally
  spaced and symmetric about the equator, but the end rows are half a fine spacing from the
  poles rather than half a coarse spacing. There is no pole row left, so every coarser level
  is padded as a ``"cell"`` grid (the across-pole ring that is nearest). The first level of
  an encoder (and the last level of a decoder) uses ``sphere_grid`` itself.

For periodic modes (``"torus"``, ``"sphere"``) H and W must be divisible by ``2^L``; the
sphere also needs ``W / 2^L`` even (the deepest level still pads across the poles).
In ``"zero"`` mode odd sizes are floored by the pool, as in the reference (VALID pooling).

Parameter initialisation is PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``: weights
uniform in ``+-1/sqrt(fan_in)``, variance ``1/(3 fan_in)``). The reference uses flax's
``lecun_normal`` (truncated normal, variance ``1/fan_in``) with zero biases; call
:func:`reference_init_` on a model to get that instead.

Layout helpers: :func:`to_flat` turns ``(..., C, H, W)`` into the library's flat layout
``(..., N, C)`` with row-major ``idx = i * W + j``, and :func:`from_flat` inverts it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PADDING_MODES",
    "PRESETS",
    "SPHERE_GRIDS",
    "AutoencoderConfig",
    "DomainConv2d",
    "DomainPad",
    "Downsample",
    "GridDecoder",
    "GridEncoder",
    "InstanceNorm",
    "ResBlock",
    "Upsample",
    "conv_macs",
    "count_parameters",
    "from_flat",
    "latent_grid_shape",
    "latent_sphere_coords",
    "pad_domain",
    "receptive_field",
    "reference_init_",
    "to_flat",
]

PADDING_MODES = ("zero", "torus", "sphere")
SPHERE_GRIDS = ("cell", "poles")
LIFT_CHANNELS = 48  # the reference's hard-coded encoder lift width


# --------------------------------------------------------------------------------------------
# padding


def _check_mode(mode: str, sphere_grid: str = "cell") -> None:
    if mode not in PADDING_MODES:
        raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")
    if sphere_grid not in SPHERE_GRIDS:
        raise ValueError(f"sphere_grid must be one of {SPHERE_GRIDS}, got {sphere_grid!r}")


def _pair(pad: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(pad, int):
        ph = pw = pad
    else:
        ph, pw = (int(p) for p in pad)
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    return ph, pw


def pad_domain(
    x: torch.Tensor, pad: int | Sequence[int], mode: str, sphere_grid: str = "cell"
) -> torch.Tensor:
    """Pad the last two axes (H, W) of ``x`` by ``pad`` cells on each side, for a domain.

    Parameters
    ----------
    x : tensor of shape ``(..., H, W)``.
    pad : ``p`` or ``(p_h, p_w)``: cells added on each side of H and of W.
    mode : ``"zero"`` (planar image), ``"torus"`` (circular in both axes) or ``"sphere"``
        (equiangular lat-lon grid: circular in longitude, across the poles in latitude).
    sphere_grid : ``"cell"`` (cell-centred rows) or ``"poles"`` (first and last rows are the
        poles); only used by ``"sphere"``. See the module docstring for the exact rule.

    Returns
    -------
    Tensor of shape ``(..., H + 2 p_h, W + 2 p_w)``.
    """
    _check_mode(mode, sphere_grid)
    ph, pw = _pair(pad)
    if x.dim() < 2:
        raise ValueError(f"pad_domain needs at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    H, W = x.shape[-2], x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    if mode == "zero":
        return F.pad(x, (pw, pw, ph, ph))
    if pw > W:
        raise ValueError(f"circular padding {pw} exceeds the width W={W}")
    if mode == "torus":
        if ph > H:
            raise ValueError(f"circular padding {ph} exceeds the height H={H}")
        x = torch.cat([x[..., H - ph :, :], x, x[..., :ph, :]], dim=-2) if ph else x
    else:  # sphere
        if W % 2:
            raise ValueError(f"sphere padding needs an even number of longitudes, got W={W}")
        if ph:
            if sphere_grid == "cell":
                if ph > H:
                    raise ValueError(f"pole padding {ph} exceeds the number of rings H={H}")
                top = x[..., :ph, :]
                bottom = x[..., H - ph :, :]
            else:
                if ph > H - 1:
                    raise ValueError(f"pole padding {ph} needs H > {ph} rings, got H={H}")
                top = x[..., 1 : ph + 1, :]
                bottom = x[..., H - 1 - ph : H - 1, :]
            # Across a pole: reversed latitude order, longitude + pi (a roll by W/2).
            top = torch.roll(top.flip(-2), W // 2, dims=-1)
            bottom = torch.roll(bottom.flip(-2), W // 2, dims=-1)
            x = torch.cat([top, x, bottom], dim=-2)
    if pw:
        x = torch.cat([x[..., W - pw :], x, x[..., :pw]], dim=-1)
    return x


class DomainPad(nn.Module):
    """Module form of :func:`pad_domain`."""

    def __init__(self, pad: int | Sequence[int], mode: str, sphere_grid: str = "cell"):
        super().__init__()
        _check_mode(mode, sphere_grid)
        self.pad = _pair(pad)
        self.mode = mode
        self.sphere_grid = sphere_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_domain(x, self.pad, self.mode, self.sphere_grid)

    def extra_repr(self) -> str:
        grid = f", sphere_grid={self.sphere_grid!r}" if self.mode == "sphere" else ""
        return f"pad={self.pad}, mode={self.mode!r}{grid}"


class DomainConv2d(nn.Conv2d):
    """A stride-1 ``k x k`` convolution that pads for its domain, then convolves unpadded.

    Output size equals input size (``k`` odd). Parameters and state-dict keys are those of
    :class:`torch.nn.Conv2d` (``weight``, ``bias``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        mode: str = "zero",
        sphere_grid: str = "cell",
        bias: bool = True,
    ):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        _check_mode(mode, sphere_grid)
        super().__init__(in_channels, out_channels, kernel_size, padding=0, bias=bias)
        self.mode = mode
        self.sphere_grid = sphere_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size[0] // 2
        return self._conv_forward(pad_domain(x, p, self.mode, self.sphere_grid), self.weight, self.bias)

    def extra_repr(self) -> str:
        grid = f", sphere_grid={self.sphere_grid!r}" if self.mode == "sphere" else ""
        return super().extra_repr() + f", mode={self.mode!r}{grid}"


# --------------------------------------------------------------------------------------------
# blocks


class InstanceNorm(nn.Module):
    """The reference's ``LayerNorm``: instance norm over (H, W) per sample and channel.

    ``y = (x - mean_HW) / sqrt(var_HW + eps) * scale + bias`` with the biased variance,
    eps 1e-6, per-channel ``scale`` (init 1) and ``bias`` (init 0).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # group_norm with one group per channel is exactly instance norm, with a fused kernel.
        return F.group_norm(x, self.channels, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ResBlock(nn.Module):
    """``x0 = conv(silu(IN(x))); x0 = conv(silu(IN(x0))); out = x0 + conv1x1(x)``.

    ``c_in -> c`` channels; both ``k x k`` convolutions pad for ``mode``. The 1x1 skip (with
    bias) is always present, as in the reference.
    """

    def __init__(self, c_in: int, c: int, k: int = 3, mode: str = "zero", sphere_grid: str = "cell"):
        super().__init__()
        self.norm1 = InstanceNorm(c_in)
        self.conv1 = DomainConv2d(c_in, c, k, mode, sphere_grid)
        self.norm2 = InstanceNorm(c)
        self.conv2 = DomainConv2d(c, c, k, mode, sphere_grid)
        self.skip = nn.Conv2d(c_in, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class Downsample(nn.Module):
    """2x2 average pool, stride 2 (VALID): cell ``(i, j)`` averages fine cells ``2i..2i+1, 2j..2j+1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2, 2)


class Upsample(nn.Module):
    """Nearest-neighbour x2: fine cells ``2i..2i+1, 2j..2j+1`` copy coarse cell ``(i, j)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


def _check_levels(channels: Sequence[int], block_depth: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels = tuple(int(c) for c in channels)
    block_depth = tuple(int(d) for d in block_depth)
    if not channels or len(channels) != len(block_depth):
        raise ValueError(
            f"channels and block_depth must be non-empty and of equal length, got {channels} and {block_depth}"
        )
    if min(channels) < 1 or min(block_depth) < 0:
        raise ValueError(f"channels must be >= 1 and block_depth >= 0, got {channels}, {block_depth}")
    return channels, block_depth


def _check_spatial(H: int, W: int, levels: int, mode: str) -> None:
    f = 2**levels
    if mode == "zero":
        if H < f or W < f:
            raise ValueError(f"input {H}x{W} is smaller than the downsampling factor {f}")
        return
    if H % f or W % f:
        raise ValueError(
            f"{mode} grids need H and W divisible by 2^levels = {f} (so the latent is a coarser "
            f"grid of the same domain), got {H}x{W}"
        )
    if mode == "sphere" and (W // f) % 2:
        raise ValueError(
            f"sphere grids need an even number of longitudes at every level; W={W} gives "
            f"{W // f} at the deepest level"
        )


def latent_grid_shape(input_shape: Sequence[int], levels: int, mode: str = "torus") -> tuple[int, int]:
    """Shape ``(h, w)`` of the latent grid after ``levels`` 2x2 downsamples.

    ``input_shape`` is ``(H, W)`` or any shape ending in ``(H, W)`` (e.g. ``(B, C, H, W)``);
    ``levels = len(channels) - 1`` for a :class:`GridEncoder`. For ``"torus"``/``"sphere"``
    (the default checks as a periodic grid) H and W must be divisible by ``2^levels``; for
    ``"zero"`` the sizes are floored as by VALID pooling.
    """
    _check_mode(mode)
    if len(input_shape) < 2:
        raise ValueError(f"input_shape must end in (H, W), got {tuple(input_shape)}")
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    H, W = int(input_shape[-2]), int(input_shape[-1])
    _check_spatial(H, W, levels, mode)
    return H >> levels, W >> levels


def latent_sphere_coords(
    input_shape: Sequence[int], levels: int, sphere_grid: str = "cell"
) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes ``theta (h,)`` and longitudes ``phi (w,)`` of the latent cells on the sphere.

    Each latent cell's coordinates are the means of the ``2^levels`` fine rows / columns it
    pools (average pooling is separable). Input grids: ``"cell"``, ``theta_i = pi (i+1/2)/H``;
    ``"poles"``, ``theta_i = pi i / (H-1)``; both with ``phi_j = 2 pi j / W``. With
    ``levels = 0`` these are the input coordinates. See the module docstring for how the
    two kinds map.
    """
    _check_mode("sphere", sphere_grid)
    h, w = latent_grid_shape(input_shape, levels, "sphere")
    H, W = int(input_shape[-2]), int(input_shape[-1])
    f = 2**levels
    i = np.arange(H, dtype=np.float64)
    theta = np.pi * (i + 0.5) / H if sphere_grid == "cell" else np.pi * i / (H - 1)
    phi = 2.0 * np.pi * np.arange(W, dtype=np.float64) / W
    return theta.reshape(h, f).mean(axis=1), phi.reshape(w, f).mean(axis=1)


# --------------------------------------------------------------------------------------------
# encoder / decoder


class GridEncoder(nn.Module):
    """The reference ``ConvEncoder`` with domain-aware padding.

    ``(B, in_channels, H, W) -> (B, out_dim, H / 2^L, W / 2^L)`` with ``L = len(channels) - 1``.
    Layers: 1x1 lift to ``lift`` channels -> silu -> per level ``l``: [2x2 avg pool if
    ``l > 0``] then ``block_depth[l]`` x ``ResBlock(., channels[l])`` -> IN -> silu -> 1x1 to
    ``out_dim``. Use :func:`to_flat` for the ``(B, N, C)`` latent the NIso operator takes.

    With ``mode="sphere"`` and ``sphere_grid="poles"`` the first level pads as a pole grid and
    coarser levels as cell-centred grids (module docstring). PyTorch default init.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (64, 128),
        block_depth: Sequence[int] = (3, 3),
        out_dim: int = 32,
        mode: str = "zero",
        lift: int = LIFT_CHANNELS,
        kernel_size: int = 3,
        sphere_grid: str = "cell",
    ):
        super().__init__()
        _check_mode(mode, sphere_grid)
        channels, block_depth = _check_levels(channels, block_depth)
        self.in_channels, self.out_dim, self.mode, self.sphere_grid = in_channels, out_dim, mode, sphere_grid
        self.channels, self.block_depth = channels, block_depth
        self.levels = len(channels) - 1
        self.lift = nn.Conv2d(in_channels, lift, 1)
        stages = []
        c_prev = lift
        for l, (c, depth) in enumerate(zip(channels, block_depth)):
            grid = sphere_grid if l == 0 else "cell"
            blocks: list[nn.Module] = [Downsample()] if l > 0 else []
            for _ in range(depth):
                blocks.append(ResBlock(c_prev, c, kernel_size, mode, grid))
                c_prev = c
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.norm_out = InstanceNorm(c_prev)
        self.head = nn.Conv2d(c_prev, out_dim, 1)

    @property
    def factor(self) -> int:
        """Downsampling factor ``2^levels``."""
        return 2**self.levels

    def latent_shape(self, H: int, W: int) -> tuple[int, int]:
        """Latent ``(h, w)`` for an ``H x W`` input (checks divisibility for periodic modes)."""
        return latent_grid_shape((H, W), self.levels, self.mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GridEncoder expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                "use from_flat for (B, N, C) inputs"
            )
        _check_spatial(x.shape[-2], x.shape[-1], self.levels, self.mode)
        h = F.silu(self.lift(x))
        for stage in self.stages:
            h = stage(h)
        return self.head(F.silu(self.norm_out(h)))


class GridDecoder(nn.Module):
    """The reference ``ConvDecoder`` with domain-aware padding.

    ``(B, in_dim, h, w) -> (B, out_channels, h 2^L, w 2^L)`` with ``L = len(channels) - 1``.
    Layers: per level ``l``: [nearest x2 upsample if ``l > 0``] then ``block_depth[l]`` x
    ``ResBlock(., channels[l])`` -> IN -> silu -> 1x1 to ``out_channels``; no output
    activation. Pass ``channels`` coarse-to-fine, e.g. ``(128, 64)`` to mirror an encoder
    with ``(64, 128)``. With ``sphere_grid="poles"`` the finest level pads as a pole grid and
    the others as cell-centred grids. PyTorch default init.
    """

    def __init__(
        self,
        in_dim: int,
        channels: Sequence[int] = (128, 64),
        block_depth: Sequence[int] = (3, 3),
        out_channels: int = 1,
        mode: str = "zero",
        kernel_size: int = 3,
        sphere_grid: str = "cell",
    ):
        super().__init__()
        _check_mode(mode, sphere_grid)
        channels, block_depth = _check_levels(channels, block_depth)
        self.in_dim, self.out_channels, self.mode, self.sphere_grid = in_dim, out_channels, mode, sphere_grid
        self.channels, self.block_depth = channels, block_depth
        self.levels = len(channels) - 1
        stages = []
        c_prev = in_dim
        for l, (c, depth) in enumerate(zip(channels, block_depth)):
            grid = sphere_grid if l == self.levels else "cell"
            blocks: list[nn.Module] = [Upsample()] if l > 0 else []
            for _ in range(depth):
                blocks.append(ResBlock(c_prev, c, kernel_size, mode, grid))
                c_prev = c
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.norm_out = InstanceNorm(c_prev)
        self.head = nn.Conv2d(c_prev, out_channels, 1)

    @property
    def factor(self) -> int:
        """Upsampling factor ``2^levels``."""
        return 2**self.levels

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        return h * self.factor, w * self.factor

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 4 or z.shape[1] != self.in_dim:
            raise ValueError(
                f"GridDecoder expects (B, {self.in_dim}, h, w), got {tuple(z.shape)}; "
                "use from_flat(z, h, w) for (B, N, C) latents"
            )
        if self.mode == "sphere" and z.shape[-1] % 2:
            raise ValueError(f"sphere latents need an even number of longitudes, got w={z.shape[-1]}")
        h = z
        for stage in self.stages:
            h = stage(h)
        return self.head(F.silu(self.norm_out(h)))


# --------------------------------------------------------------------------------------------
# layout helpers


def to_flat(z: torch.Tensor) -> torch.Tensor:
    """``(..., C, H, W) -> (..., N, C)`` with ``N = H W`` and row-major ``idx = i * W + j``."""
    if z.dim() < 3:
        raise ValueError(f"to_flat expects (..., C, H, W), got {tuple(z.shape)}")
    return z.flatten(-2).transpose(-1, -2)


def from_flat(z: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``(..., N, C) -> (..., C, H, W)``, the inverse of :func:`to_flat` (``N = H W``)."""
    if z.dim() < 2 or z.shape[-2] != H * W:
        raise ValueError(f"from_flat expects (..., {H * W}, C) for a {H}x{W} grid, got {tuple(z.shape)}")
    return z.transpose(-1, -2).reshape(*z.shape[:-2], z.shape[-1], H, W)


# --------------------------------------------------------------------------------------------
# initialisation and presets


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def conv_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of every convolution of ``module`` for one input of shape ``(C, H, W)``.

    Runs ``module`` once on the meta device (shapes only, no arithmetic; ``module`` itself is not
    moved), counting ``out_elements · in_channels / groups · k_h · k_w`` per ``nn.Conv2d``.
    Norms, activations and pooling (a few percent of the work) are not counted.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    meta = copy.deepcopy(module).to("meta")
    total = [0]

    def count(m: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(count) for m in meta.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            meta(torch.zeros(1, *input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return int(total[0])


def receptive_field(encoder: GridEncoder) -> int:
    """Side in input pixels of the receptive field of one latent cell of a :class:`GridEncoder`.

    The longest path counts (the ResBlocks' two k×k convolutions; the 1×1 skips are shorter): a
    k×k convolution at a level with stride ``s`` (``2^l`` input pixels per cell) widens the field
    by ``(k − 1) s``, a 2×2 pool by ``s`` before the stride doubles. The paper's homNIST encoder
    ((64, 128), depth (3, 3)) sees 38 px; (16, 32) with depth (1, 1) sees 14 px, with (1, 3) 30 px.
    """
    field_px, stride = 1, 1
    for stage in encoder.stages:
        for block in stage:
            if isinstance(block, Downsample):
                field_px += stride
                stride *= 2
            elif isinstance(block, ResBlock):
                for conv in (block.conv1, block.conv2):
                    field_px += (conv.kernel_size[0] - 1) * stride
    return field_px


@torch.no_grad()
def reference_init_(module: nn.Module) -> nn.Module:
    """Re-initialise like the flax reference: every convolution weight ``lecun_normal``
    (normal with variance ``1/fan_in`` truncated at two standard deviations, variance
    corrected for the truncation) and zero biases; norms scale 1, bias 0. In place; returns
    ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
            nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, InstanceNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
    return module


@dataclass(frozen=True)
class AutoencoderConfig:
    """An encoder/decoder pair for one experiment (sizes of ``docs/algorithm.md`` §2.1, §6.3).

    ``input_shape`` is the (H, W) the preset is meant for; the models accept any size that
    satisfies the divisibility rules.
    """

    in_channels: int
    input_shape: tuple[int, int]
    enc_channels: tuple[int, ...]
    enc_depth: tuple[int, ...]
    latent_dim: int
    dec_channels: tuple[int, ...]
    dec_depth: tuple[int, ...]
    mode: str
    out_channels: int | None = None  # defaults to in_channels
    sphere_grid: str = "cell"
    lift: int = LIFT_CHANNELS
    kernel_size: int = 3
    note: str = field(default="", compare=False)

    @property
    def levels(self) -> int:
        return len(self.enc_channels) - 1

    @property
    def latent_shape(self) -> tuple[int, int]:
        return latent_grid_shape(self.input_shape, self.levels, self.mode)

    def encoder(self) -> GridEncoder:
        return GridEncoder(
            self.in_channels, self.enc_channels, self.enc_depth, self.latent_dim, self.mode,
            lift=self.lift, kernel_size=self.kernel_size, sphere_grid=self.sphere_grid,
        )

    def decoder(self) -> GridDecoder:
        out = self.in_channels if self.out_channels is None else self.out_channels
        return GridDecoder(
            self.latent_dim, self.dec_channels, self.dec_depth, out, self.mode,
            kernel_size=self.kernel_size, sphere_grid=self.sphere_grid,
        )

    def build(self) -> tuple[GridEncoder, GridDecoder]:
        return self.encoder(), self.decoder()


PRESETS: dict[str, AutoencoderConfig] = {
    # Paper configurations (official code, HEAD 3d47289). Parameter counts (reference table):
    # hmnist enc 1.08 M / dec 1.09 M; cshrec11 enc 2.91 M / dec 3.04 M; pose 6.16 M / 6.43 M.
    "hmnist": AutoencoderConfig(
        1, (40, 40), (64, 128), (3, 3), 32, (128, 64), (3, 3), "zero",
        note="homNIST: 40x40x1 -> 20x20x32, K=32",
    ),
    "cshrec11": AutoencoderConfig(
        16, (96, 192), (32, 64, 128, 256), (2, 2, 2, 2), 64, (256, 128, 64, 32), (2, 2, 2, 2), "sphere",
        note="conformal SHREC'11 HKS: 96x192x16 -> 12x24x64, K=64 (sphere padding; the reference zero-pads)",
    ),
    "pose": AutoencoderConfig(
        3, (144, 144), (64, 128, 256), (4, 4, 4), 128, (256, 128, 64), (4, 4, 4), "zero",
        note="CO3D pose: 144x144x3 -> 36x36x128, K=128",
    ),
    # CPU-scale variants (docs/algorithm.md §6.3): same latent grids, smaller nets.
    "hmnist_cpu": AutoencoderConfig(
        1, (40, 40), (32, 64), (1, 1), 32, (64, 32), (1, 1), "zero",
        note="homNIST at CPU scale: 40x40x1 -> 20x20x32",
    ),
    "cshrec11_cpu": AutoencoderConfig(
        16, (48, 96), (16, 32, 64), (1, 1, 1), 64, (64, 32, 16), (1, 1, 1), "sphere",
        note="conformal SHREC'11 at 48x96 -> 12x24x64 (the paper's latent grid, N=288)",
    ),
    "pose_cpu": AutoencoderConfig(
        3, (64, 64), (32, 64, 128), (1, 1, 1), 64, (128, 64, 32), (1, 1, 1), "zero",
        note="toy CO3D pose: 64x64x3 -> 16x16x64",
    ),
}
