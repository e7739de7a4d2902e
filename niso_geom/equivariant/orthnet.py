"""The paper's O(K)-invariant classifier (``orth_net`` of the official ``nn/equiv.py``).

Input ``X`` of shape (..., K, C): the K axis (spectral index) is the "vector" axis, C the
channels. Every linear map multiplies the channel axis from the right and every
nonlinearity sees the K axis only through inner products and norms, so for any orthogonal
``R`` (K, K), reflections included, the hidden features are equivariant, ``f(R X) = R f(X)``,
and the readout is invariant. Sizes and initialisers follow the reference
(``docs/algorithm.md`` §2.2); only ``OrthOut``'s hidden width is configurable so that the
head fits a CPU (the paper's 4·2080 = 8320 makes it 17.3 M parameters).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from niso_geom.equivariant._init import dense

__all__ = ["OrthNeuron", "OrthNorm", "OrthMLP", "OrthOut", "OrthNet", "safe_inv"]


def safe_inv(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Tikhonov-regularised reciprocal ``x / (x² + eps)`` (bounded by 1/(2√eps))."""
    return x / (x * x + eps)


class OrthNeuron(nn.Module):
    """Smooth vector-neuron ReLU, O(K)-equivariant.

    ``q = X W_q``, ``k = X W_k`` (no bias); with ``dot = Σ_K q⊙k`` and ``k2 = Σ_K k⊙k``,
    ``out = q + silu(−dot) · safe_inv(k2) · k``: where ``q·k ≪ 0`` the component of q along k
    is removed, where ``q·k ≫ 0`` q passes unchanged.

    Shapes
    ------
    (..., K, in_features) -> (..., K, features)
    """

    def __init__(self, in_features: int, features: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.in_channels = int(in_features)
        self.features = int(features)
        self.eps = eps
        self.q = dense(in_features, features, bias=False)
        self.k = dense(in_features, features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q, k = self.q(x), self.k(x)
        dot = (q * k).sum(-2, keepdim=True)
        k2 = (k * k).sum(-2, keepdim=True)
        return q + F.silu(-dot) * safe_inv(k2, self.eps) * k


class OrthNorm(nn.Module):
    """Channel-wise RMS normalisation over the K axis, O(K)-equivariant.

    ``x · scale · rsqrt(mean_K(x²) + eps + |eps_learned|)``, with per-channel learned
    ``scale`` (init 1) and ``eps_learned`` (init 1e-3).

    Shapes
    ------
    (..., K, C) -> (..., K, C)
    """

    def __init__(self, features: int, *, eps: float = 1e-6, eps_init: float = 1e-3) -> None:
        super().__init__()
        self.in_channels = int(features)
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(features))
        self.eps_learned = nn.Parameter(torch.full((features,), float(eps_init)))

    def forward(self, x: Tensor) -> Tensor:
        ms = x.pow(2).mean(-2, keepdim=True)
        return x * self.scale * torch.rsqrt(ms + self.eps + self.eps_learned.abs())


class OrthMLP(nn.Module):
    """``num_layers`` × [OrthNorm, OrthNeuron(features)].

    Shapes
    ------
    (..., K, in_features) -> (..., K, features)
    """

    def __init__(self, in_features: int, features: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = int(in_features)
        layers: list[nn.Module] = []
        c = in_features
        for _ in range(num_layers):
            layers += [OrthNorm(c), OrthNeuron(c, features)]
            c = features
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class OrthOut(nn.Module):
    """O(K)-invariant readout from the channel Gram matrix.

    ``OrthNorm -> OrthNeuron(F) -> XᵀX`` (F × F, summed over K) ``-> upper triangle incl.
    diagonal`` (F(F+1)/2 invariants) ``-> Dense(hidden) -> SiLU -> Dense(out_dim)``.

    Parameters
    ----------
    in_features, out_dim : int
    inter_features : int
        F; the paper uses 64 (2080 invariants).
    hidden : int, optional
        Hidden width; default ``4·F(F+1)/2`` as in the paper (8320 for F = 64).

    Shapes
    ------
    (..., K, in_features) -> (..., out_dim)
    """

    def __init__(
        self,
        in_features: int,
        out_dim: int,
        *,
        inter_features: int = 64,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_features)
        self.norm = OrthNorm(in_features)
        self.neuron = OrthNeuron(in_features, inter_features)
        n_tri = inter_features * (inter_features + 1) // 2
        hidden = 4 * n_tri if hidden is None else int(hidden)
        self.register_buffer(
            "triu", torch.triu_indices(inter_features, inter_features), persistent=False
        )
        self.fc1 = dense(n_tri, hidden)
        self.fc2 = dense(hidden, out_dim)

    def invariants(self, x: Tensor) -> Tensor:
        """The F(F+1)/2 Gram invariants, shape (..., F(F+1)/2)."""
        h = self.neuron(self.norm(x))
        g = torch.einsum("...ki,...kj->...ij", h, h)
        return g[..., self.triu[0], self.triu[1]]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1(self.invariants(x))))


class OrthNet(nn.Module):
    """The paper's O(K)-invariant classifier ``orth_net(features, num_layers, out_dim)``.

    ``x0 = OrthMLP(F, n//2+1)(X) + Dense(F, no bias)(X)``; ``x1 = OrthMLP(F, n//2+1)(x0)``;
    output ``OrthOut(out_dim)(x1)``. With the defaults, ``OrthNet(128, 2, 10, in_channels=32)``
    (homNIST) has 17.53 M parameters and ``OrthNet(128, 4, 25, in_channels=64)`` (conformal
    SHREC'11) 17.73 M, as in the reference.

    Parameters
    ----------
    features : int
        F, hidden channels.
    num_layers : int
        n; each half has n//2 + 1 [OrthNorm, OrthNeuron] layers.
    out_dim : int
        Number of logits.
    in_channels : int
        C of the input (Flax infers it; here it is explicit).
    inter_features, readout_hidden
        Passed to :class:`OrthOut` (defaults: 64 and 4·2080 as in the paper; use e.g.
        ``readout_hidden=1024`` on a CPU).

    Shapes
    ------
    (..., K, in_channels) -> (..., out_dim), for any K.
    """

    def __init__(
        self,
        features: int,
        num_layers: int,
        out_dim: int,
        *,
        in_channels: int,
        inter_features: int = 64,
        readout_hidden: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_type = None
        depth = num_layers // 2 + 1
        self.skip = dense(in_channels, features, bias=False)
        self.mlp0 = OrthMLP(in_channels, features, depth)
        self.mlp1 = OrthMLP(features, features, depth)
        self.out = OrthOut(
            features, out_dim, inter_features=inter_features, hidden=readout_hidden
        )

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.mlp0(x) + self.skip(x)
        return self.out(self.mlp1(x0))
