"""An e3nn SO(3)-equivariant network on the signals' spherical-harmonic coefficients.

Input: the real SH coefficients ``(B, (L+1)², C)`` of C signals on the sphere (from
:class:`~baselines.sh_power.SHTransform`), ordered as the library's real SH. They enter e3nn
through :class:`~niso_geom.equivariant.e3nn_bridge.E3nnBridge` (the explicit change of basis
to e3nn's (y, z, x) frame and its block layout ``C x 0e + C x 1o + C x 2e + ...``), so a
rotation R of the signals, which maps the degree-l coefficients by our Wigner-D ``D^l(R)``,
acts on the e3nn tensor by e3nn's ``D^l(P R Pᵀ)``.

Network (all e3nn modules; every step is equivariant, the output invariant):

1. per-(channel, degree) scaling by a fixed 1/RMS of the training coefficients
   (:meth:`E3nnSHClassifier.fit_scale`; a scalar per irrep block, so equivariant);
2. ``layers`` × [``o3.Linear`` → ``o3.TensorSquare`` (quadratic couplings between degrees:
   power spectra, then bispectra, ...) → ``nn.Gate`` (SiLU on scalars, sigmoid-gated l > 0) →
   ``nn.BatchNorm`` (scalars by mean and variance, l > 0 blocks by their norm: equivariant)];
   the hidden irreps are ``mul x 0e + mul x 1o + ...`` up to ``lmax_hidden``. Without the
   normalization each tensor square raises the activations' scale to a power: at unit-RMS input
   two blocks gave activations of RMS ~11 and logits of standard deviation ~20 on the conformal
   SHREC'11 coefficients, an initial loss of ~15 (ln 25 = 3.2) from which training did not recover;
3. the invariant scalars (``0e``) of the last layer → ``nn.FullyConnectedNet`` → logits.

Shapes: (B, (L+1)², C) -> (B, num_classes).
"""

from __future__ import annotations

import torch
from e3nn import nn as enn
from e3nn import o3
from torch import nn

from niso_geom.equivariant.e3nn_bridge import E3nnBridge
from niso_geom.equivariant.types import SpectralType

__all__ = ["E3nnSHClassifier"]


def _sh_irreps(mul: int, lmax: int) -> o3.Irreps:
    """``mul x 0e + mul x 1o + ... + mul x lmax``, parities (−1)^l as the SH."""
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])


class _GatedBlock(nn.Module):
    """``o3.Linear → o3.TensorSquare → nn.Gate → nn.BatchNorm``: irreps_in -> ``mul x 0e`` + gated ``mul x l`` (l ≥ 1)."""

    def __init__(self, irreps_in: o3.Irreps, mul: int, lmax: int) -> None:
        super().__init__()
        self.lin = o3.Linear(irreps_in, _sh_irreps(mul, lmax))
        gated = o3.Irreps([(mul, (l, (-1) ** l)) for l in range(1, lmax + 1)])
        scalars = o3.Irreps(f"{mul}x0e")
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        self.square = o3.TensorSquare(self.lin.irreps_out, irreps_out=(scalars + gates + gated).simplify()
                                      if gated.num_irreps else scalars)
        self.gate = enn.Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid] if gated.num_irreps else [],
                             gated)
        # TensorSquare returns its irreps_out sorted/simplified: reorder to the gate's input layout
        self.reorder = o3.Linear(self.square.irreps_out, self.gate.irreps_in) if \
            self.square.irreps_out != self.gate.irreps_in else nn.Identity()
        self.irreps_out = self.gate.irreps_out
        self.norm = enn.BatchNorm(self.irreps_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return self.norm(self.gate(self.reorder(self.square(h))))


class E3nnSHClassifier(nn.Module):
    """SO(3)-invariant classifier of SH coefficients built from e3nn modules.

    Parameters
    ----------
    channels : C, signals per sample.
    lmax : degree of the input coefficients ((lmax+1)² of them).
    num_classes : logits.
    mul : multiplicity of every hidden irrep.
    lmax_hidden : largest hidden degree (default ``min(lmax, 3)``).
    layers : gated tensor-square blocks.
    mlp_hidden : width of the scalar MLP.

    Shapes
    ------
    (B, (lmax+1)², channels) -> (B, num_classes); invariant under ``x -> D(R) x`` for every
    rotation R (D block-diagonal Wigner-D of degrees 0..lmax in the library's real SH basis).
    """

    def __init__(self, channels: int, lmax: int, num_classes: int, *, mul: int = 16, lmax_hidden: int | None = None,
                 layers: int = 2, mlp_hidden: int = 128) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.channels, self.lmax = int(channels), int(lmax)
        self.type = SpectralType.sphere(self.lmax)
        self.bridge = E3nnBridge(self.type, self.channels)
        self.irreps_in = self.bridge.irreps
        # one scale per (degree block, channel), repeated over the block's 2l+1 entries (e3nn layout)
        self.register_buffer("scale", torch.ones(self.irreps_in.dim))
        lh = min(self.lmax, 3) if lmax_hidden is None else int(lmax_hidden)
        blocks: list[nn.Module] = []
        irreps = self.irreps_in
        for _ in range(layers):
            block = _GatedBlock(irreps, mul, lh)
            blocks.append(block)
            irreps = block.irreps_out
        self.blocks = nn.ModuleList(blocks)
        self.scalars = o3.Linear(irreps, o3.Irreps(f"{mul}x0e"))
        self.mlp = enn.FullyConnectedNet([mul, mlp_hidden, num_classes], torch.nn.functional.silu)

    @torch.no_grad()
    def fit_scale(self, coeffs: torch.Tensor) -> None:
        """Set the per-(degree, channel) input scale to 1/RMS over training coefficients (B, K, C)."""
        y = self.bridge.to_e3nn(coeffs.to(self.scale.dtype))  # (B, dim)
        parts, i = [], 0
        for mul, ir in self.irreps_in:
            block = y[:, i: i + mul * ir.dim].unflatten(-1, (mul, ir.dim))
            rms = block.square().mean(dim=(0, 2)).sqrt().clamp_min(1e-6)  # (mul,)
            parts.append((1.0 / rms)[:, None].expand(mul, ir.dim).flatten())
            i += mul * ir.dim
        self.scale.copy_(torch.cat(parts))

    def invariants(self, coeffs: torch.Tensor) -> torch.Tensor:
        """The ``mul`` invariant scalars before the MLP: (B, K, C) -> (B, mul)."""
        h = self.bridge.to_e3nn(coeffs) * self.scale.to(coeffs.dtype)
        for block in self.blocks:
            h = block(h)
        return self.scalars(h)

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.invariants(coeffs))
