"""Block-equivariant layers on latent coefficients ``(..., K, C)`` typed by a ``SpectralType``.

The group is the block-orthogonal one, G = O(d_1) × O(d_2) × ..., acting on the K axis by
``x -> g x`` with g block-diagonal. Every linear map here acts on the channel axis inside
one block (``x_b -> x_b W_b``), which commutes with ``g_b``; every nonlinearity depends on a
block only through its channel-wise norms or Gram matrix, which ``g_b`` leaves unchanged.

Norms are smoothed, ``|x|_eps = sqrt(|x|² + eps²)``, so that gradients stay finite when a block
is exactly zero (the failure mode of e3nn issue #112).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from niso_geom.equivariant._init import dense, lecun_normal_
from niso_geom.equivariant.orthnet import OrthNorm
from niso_geom.equivariant.testing import EquivariantModule
from niso_geom.equivariant.types import SpectralType, _check_dim

__all__ = [
    "BlockLinear",
    "NormActivation",
    "InvariantPool",
    "BlockGramHead",
    "block_sq_norms",
    "block_gram",
]


def block_sq_norms(x: Tensor, spectral_type: SpectralType) -> Tensor:
    """Squared norm of every block, channel by channel.

    Parameters
    ----------
    x : Tensor, shape (..., K, C)
    spectral_type : SpectralType of dimension K

    Returns
    -------
    Tensor, shape (..., num_blocks, C)
    """
    _check_dim(x, spectral_type)
    parts = []
    for term, sl in zip(spectral_type.terms, spectral_type.term_slices()):
        if term.mul == 0:
            continue
        xt = x[..., sl, :].reshape(x.shape[:-2] + (term.mul, term.dim, x.shape[-1]))
        parts.append(xt.pow(2).sum(-2))
    return torch.cat(parts, dim=-2)


def block_gram(x: Tensor, spectral_type: SpectralType, *, upper: bool = True) -> Tensor:
    """Channel Gram matrix ``x_bᵀ x_b`` of every block.

    Invariant under any orthogonal map of each block. With ``upper=True`` only the upper
    triangle (incl. the diagonal, row-major) is kept.

    Parameters
    ----------
    x : Tensor, shape (..., K, C)

    Returns
    -------
    Tensor, shape (..., num_blocks, C, C), or (..., num_blocks, C(C+1)/2) with ``upper``
    """
    _check_dim(x, spectral_type)
    c = x.shape[-1]
    parts = []
    for term, sl in zip(spectral_type.terms, spectral_type.term_slices()):
        if term.mul == 0:
            continue
        xt = x[..., sl, :].reshape(x.shape[:-2] + (term.mul, term.dim, c))
        parts.append(torch.einsum("...mki,...mkj->...mij", xt, xt))
    g = torch.cat(parts, dim=-3)
    if upper:
        iu = torch.triu_indices(c, c, device=x.device)
        g = g[..., iu[0], iu[1]]
    return g


class BlockLinear(EquivariantModule):
    """Channel mixing with separate weights for every block: ``y_b = x_b W_b``.

    Parameters
    ----------
    in_type : SpectralType
        Type of the K axis (unchanged by the layer).
    in_channels, out_channels : int
    bias : bool
        Add a learned bias to every **1-dimensional** block. This is equivariant only when
        the group acts trivially on those blocks (the l = 0 block under Wigner-D, or SO(1)
        per block, i.e. ``random_isometry(special=True)``). Under the full block-orthogonal
        group a 1-dim block can flip sign (O(1) = {±1}) and a bias breaks equivariance, so
        the default is ``False``. Blocks of dim > 1 never get a bias.

    Shapes
    ------
    (..., K, in_channels) -> (..., K, out_channels)
    """

    def __init__(
        self,
        in_type: SpectralType | str,
        in_channels: int,
        out_channels: int,
        *,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_type = SpectralType(in_type)
        self.out_type = self.in_type
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        nb = self.in_type.num_blocks
        self.weight = nn.Parameter(torch.empty(nb, self.in_channels, self.out_channels))
        lecun_normal_(self.weight, self.in_channels)
        scalar_rows = [i for i, d in enumerate(self.in_type.blocks) if d == 1]
        if bias and scalar_rows:
            starts = [sl.start for sl in self.in_type.slices()]
            self.register_buffer(
                "bias_rows", torch.tensor([starts[i] for i in scalar_rows]), persistent=False
            )
            self.bias = nn.Parameter(torch.zeros(len(scalar_rows), self.out_channels))
        else:
            self.register_buffer("bias_rows", None, persistent=False)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        _check_dim(x, self.in_type)
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got {x.shape[-1]}")
        outs, b = [], 0
        for term, sl in zip(self.in_type.terms, self.in_type.term_slices()):
            if term.mul == 0:
                continue
            xt = x[..., sl, :].reshape(x.shape[:-2] + (term.mul, term.dim, self.in_channels))
            w = self.weight[b : b + term.mul]
            y = torch.einsum("...mki,mio->...mko", xt, w)
            outs.append(y.reshape(x.shape[:-2] + (term.mul * term.dim, self.out_channels)))
            b += term.mul
        y = torch.cat(outs, dim=-2)
        if self.bias is not None:
            y = y.index_add(-2, self.bias_rows, self.bias.expand(y.shape[:-2] + (-1, -1)))
        return y

    def extra_repr(self) -> str:
        return (
            f"in_type={self.in_type}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, bias={self.bias is not None}"
        )


class NormActivation(EquivariantModule):
    """Norm-gated nonlinearity, block by block and channel by channel.

    ``y_b = x_b · act(n_b + bias_b) / n_b`` (``normalize=True``) or ``x_b · act(n_b + bias_b)``,
    with the smoothed norm ``n_b = sqrt(|x_b|² + eps²)``. The gate is a function of an
    invariant, so the layer is equivariant; with ``eps > 0`` the output and its gradient
    are finite when a block is exactly zero.

    Parameters
    ----------
    in_type : SpectralType
    channels : int
    activation : callable
        Scalar nonlinearity (default SiLU).
    normalize : bool
        Divide by the norm, so that ``act`` sets the output norm.
    bias : bool
        Learned per-(block, channel) shift of the norm (invariant, so always allowed).
    eps : float
        Smoothing of the norm; must be > 0 with ``normalize=True``.

    Shapes
    ------
    (..., K, C) -> (..., K, C)
    """

    def __init__(
        self,
        in_type: SpectralType | str,
        channels: int,
        *,
        activation: Callable[[Tensor], Tensor] = nn.functional.silu,
        normalize: bool = True,
        bias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if normalize and eps <= 0:
            raise ValueError("NormActivation(normalize=True) needs eps > 0 to stay finite at zero")
        self.in_type = SpectralType(in_type)
        self.out_type = self.in_type
        self.in_channels = int(channels)
        self.activation = activation
        self.normalize = normalize
        self.eps = float(eps)
        self.register_buffer("block_ids", self.in_type.block_index(), persistent=False)
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.in_type.num_blocks, self.in_channels))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        n = torch.sqrt(block_sq_norms(x, self.in_type) + self.eps**2)
        z = n + self.bias if self.bias is not None else n
        gate = self.activation(z)
        if self.normalize:
            gate = gate / n
        return x * gate.index_select(-2, self.block_ids)

    def extra_repr(self) -> str:
        return f"in_type={self.in_type}, channels={self.in_channels}, eps={self.eps}"


class InvariantPool(EquivariantModule):
    """Per-block smoothed norms as invariant features.

    Parameters
    ----------
    in_type : SpectralType
    channels : int
    eps : float
        Norm smoothing ``sqrt(|x_b|² + eps²)`` (finite gradients at zero); 0 gives plain norms.
    flatten : bool
        Return (..., num_blocks·C) instead of (..., num_blocks, C).

    Shapes
    ------
    (..., K, C) -> (..., num_blocks·C), block-major
    """

    def __init__(
        self, in_type: SpectralType | str, channels: int, *, eps: float = 1e-6, flatten: bool = True
    ) -> None:
        super().__init__()
        self.in_type = SpectralType(in_type)
        self.out_type = None
        self.in_channels = int(channels)
        self.eps = float(eps)
        self.flatten = flatten

    @property
    def out_features(self) -> int:
        return self.in_type.num_blocks * self.in_channels

    def forward(self, x: Tensor) -> Tensor:
        n = torch.sqrt(block_sq_norms(x, self.in_type) + self.eps**2)
        return n.flatten(-2) if self.flatten else n


class BlockGramHead(EquivariantModule):
    """Block-invariant classifier: per-block Gram matrices -> MLP.

    ``OrthNorm -> BlockLinear(C -> F) -> [x_bᵀ x_b upper triangle for every block]
    -> LayerNorm -> Linear(hidden) -> SiLU -> Linear(out_dim)``.

    Invariant exactly under the block-orthogonal group of ``in_type``, a smaller group than
    the O(K) of :class:`~niso_geom.equivariant.orthnet.OrthNet`: the readout keeps how each
    eigenspace's channels relate to each other, but never compares different eigenspaces,
    whose relative orientation an isometry changes.

    Parameters
    ----------
    in_type : SpectralType
    in_channels, out_dim : int
    inter_features : int
        F, channels entering the Gram matrices (num_blocks·F(F+1)/2 invariants).
    hidden : int
        Width of the hidden layer of the MLP.

    Shapes
    ------
    (..., K, in_channels) -> (..., out_dim)
    """

    def __init__(
        self,
        in_type: SpectralType | str,
        in_channels: int,
        out_dim: int,
        *,
        inter_features: int = 16,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.in_type = SpectralType(in_type)
        self.out_type = None
        self.in_channels = int(in_channels)
        self.norm = OrthNorm(in_channels)
        self.lin = BlockLinear(self.in_type, in_channels, inter_features)
        n_inv = self.in_type.num_blocks * inter_features * (inter_features + 1) // 2
        self.mlp = nn.Sequential(
            nn.LayerNorm(n_inv), dense(n_inv, hidden), nn.SiLU(), dense(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        g = block_gram(self.lin(self.norm(x)), self.in_type, upper=True)
        return self.mlp(g.flatten(-2))
