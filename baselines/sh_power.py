"""Analytic-harmonics baseline: the spherical-harmonic power spectrum of each channel → an MLP.

For a signal f on the sphere with real SH coefficients c_lm = ∫ f Y_lm (computed by the grid's
quadrature, :class:`SHTransform`), the power per degree ``P_l = Σ_m c_lm²`` is invariant under
every rotation (c_l ↦ D^l(R) c_l with D^l orthogonal), so a classifier on ``log P`` is exactly
rotation invariant for band-limited signals. It is *not* invariant to the boost part of a
Möbius transform; like the other baselines it sees random Möbius views in training.

Shapes: images (B, C, H, W) on a lat–lon :class:`~niso_geom.domains.sphere.SphereGrid` →
coefficients (B, (L+1)², C) → power (B, C, L+1) → logits (B, classes).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from niso_geom.domains.sphere import SphereGrid
from niso_geom.harmonics.sphere import num_harmonics, sh_degrees

__all__ = ["SHPowerMLP", "SHTransform", "power_spectrum"]


class SHTransform(nn.Module):
    """Quadrature SH analysis on a lat–lon grid: ``c = Yᵀ diag(w) f`` per channel.

    Parameters
    ----------
    grid : a lat–lon :class:`SphereGrid` (``grid.shape`` = (H, W)); its quadrature weights are
        the mass.
    lmax : largest degree; at most ``grid.bandlimit`` (where the transform is exact on
        band-limited signals).

    Shapes
    ------
    (B, C, H, W) -> (B, (lmax+1)², C), ordered by degree then m = −l..l (the library's real SH).
    """

    def __init__(self, grid: SphereGrid, lmax: int) -> None:
        super().__init__()
        if grid.shape is None:
            raise ValueError(f"SHTransform needs a lat-lon grid with an (H, W) layout, got {grid!r}")
        if not 0 <= lmax <= grid.bandlimit:
            raise ValueError(f"lmax={lmax} must be in 0..{grid.bandlimit} (the bandlimit of {grid!r})")
        self.lmax = int(lmax)
        self.shape = tuple(grid.shape)
        analysis = grid.harmonics(lmax) * grid.mass[:, None]  # (N, K)
        self.register_buffer("analysis", torch.from_numpy(analysis), persistent=False)  # float64, cast per call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.shape:
            raise ValueError(f"expected images (..., C, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}")
        flat = x.flatten(-2)  # (..., C, N)
        return torch.einsum("...cn,nk->...kc", flat, self.analysis.to(flat.dtype))


def power_spectrum(coeffs: torch.Tensor, lmax: int | None = None) -> torch.Tensor:
    """Power per degree ``P_l = Σ_m c_lm²``: coefficients (..., (L+1)², C) -> (..., C, L+1).

    ``lmax`` defaults to the largest degree the K axis holds completely (K = (L+1)²).
    """
    k = coeffs.shape[-2]
    L = int(round(np.sqrt(k))) - 1 if lmax is None else int(lmax)
    if num_harmonics(L) > k:
        raise ValueError(f"{k} coefficients do not reach degree {L} (need {num_harmonics(L)})")
    deg = torch.from_numpy(sh_degrees(L)).to(coeffs.device)
    onehot = (deg[:, None] == torch.arange(L + 1, device=coeffs.device)[None, :]).to(coeffs.dtype)  # (K, L+1)
    return torch.einsum("...kc,kl->...cl", coeffs[..., : num_harmonics(L), :].square(), onehot)


class SHPowerMLP(nn.Module):
    """MLP on the standardized log power spectrum of every channel.

    ``features = (log(P + eps) − μ) / σ`` flattened over (C, L+1), with μ, σ buffers set by
    :meth:`fit_standardizer` on training spectra (identity before), then ``layers`` ×
    [Linear(hidden) → SiLU] → Linear(num_classes). Rotation invariant, since P is.

    Shapes
    ------
    power spectra (B, C, L+1) -> logits (B, num_classes).
    """

    def __init__(self, channels: int, lmax: int, num_classes: int, *, hidden: int = 256, layers: int = 2,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.channels, self.lmax, self.eps = int(channels), int(lmax), float(eps)
        d = self.channels * (self.lmax + 1)
        self.register_buffer("mu", torch.zeros(d))
        self.register_buffer("sigma", torch.ones(d))
        mods: list[nn.Module] = []
        width = d
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        mods.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*mods)

    def features(self, power: torch.Tensor) -> torch.Tensor:
        """Unstandardized log power, flattened: (B, C, L+1) -> (B, C·(L+1))."""
        if power.shape[-2:] != (self.channels, self.lmax + 1):
            raise ValueError(f"expected power spectra (B, {self.channels}, {self.lmax + 1}), got {tuple(power.shape)}")
        return torch.log(power + self.eps).flatten(-2)

    @torch.no_grad()
    def fit_standardizer(self, power: torch.Tensor) -> None:
        """Set μ, σ from training spectra (B, C, L+1)."""
        f = self.features(power.to(self.mu.dtype))
        self.mu.copy_(f.mean(0))
        self.sigma.copy_(f.std(0).clamp_min(1e-6))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return self.mlp((self.features(power) - self.mu) / self.sigma)
