"""The NIso autoencoder: encoder E, decoder D and learned operator (Φ, Λ, M), and its training loop.

Generic over the domain: any encoder mapping images ``(B, C_in, H, W)`` to grid latents
``(B, C, h, w)`` (or directly to flat latents ``(B, N, C)``) and any decoder mapping them back
works, e.g. the grid models of :mod:`niso_geom.niso.models` on the plane, torus or sphere.

Pre-training objective on a pair (x, Tx) (``docs/algorithm.md`` §1.5), with z = E(x) and
Tz = E(Tx) flattened to (B, N, C), ẑ = Φᵀ M z, Tẑ = Φᵀ M Tz and τ ∈ SO(K) the masked
Procrustes map with τ ẑ ≈ Tẑ (:func:`~niso_geom.niso.isometry.iso_solve_coeffs`)::

    recon = L1(x, D(Φ τᵀ Tẑ)) + L1(Tx, D(Φ τ ẑ))
    equiv = L1(Tẑ, τ ẑ) + L1(ẑ, τᵀ Tẑ)
    loss  = recon + α · equiv + β · mult(Λ)

The official code also decodes the band-limited latents Φ ẑ and Φ Tẑ, for display only; that
is half of the decoder work, and it is skipped here. Optional spectral dropout truncates each
sample's coefficients to its lowest ``i ~ U{1..K-1}`` eigenpairs before unprojection (the same
``i`` for both directions of a pair).

Triplets (x0, x1, x2) (e.g. x1 = T1 x0, x2 = T2 T1 x0) are supported by
:meth:`NIsoAutoencoder.triplet_loss`: the pair objective on the edges 0→1 and 1→2 with their own
maps τ01 and τ12, and on the chain 0→2 with the *composed* map τ12 τ01 (so the maps of
consecutive transformations must compose); the three edges are averaged.

Mixed precision: with ``amp_dtype`` set (CUDA: bfloat16, or float16 with a gradient scaler in
:func:`pretrain`), the encoder and decoder run under ``torch.autocast``; the latents are cast
to float32 and everything spectral — the operator, projections, τ, the equivariance and
multiplicity losses and the unprojection — runs with autocast disabled (the core's
``no_autocast``), in float32 or the operator's ``compute_dtype``.

Downstream (:func:`encode_coefficients`) the coefficients Φᵀ M E(x) are computed with the
operator **frozen** by default: the official classifier scripts fine-tune Φ and M through the
classification loss (``docs/algorithm.md`` §7 item 8), which can erode the isometry the
invariant head relies on. Pass ``train_kernel=True`` to get that behaviour on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from niso_geom.niso.linalg import DEFAULT_EPS, ProcrustesMethod, no_autocast
from niso_geom.niso.losses import l1, niso_objective
from niso_geom.niso.operator import LearnedOperator, OperatorState, project, sample_truncation
from niso_geom.train.device import autocast

log = logging.getLogger(__name__)

__all__ = [
    "LatentScaleNorm",
    "NIsoAutoencoder",
    "PlainAutoencoder",
    "encode_coefficients",
]


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


class LatentScaleNorm(nn.Module):
    """Divide each sample by its root mean square over all non-batch axes: ``z / sqrt(mean(z²) + eps)``.

    Append it to an encoder (``nn.Sequential(encoder, LatentScaleNorm())``) to remove a scale
    degeneracy of the NIso objective: a decoder that starts with instance normalization (as
    the reference ``ConvDecoder`` does) ignores the scale of its input, while the L1
    equivariance term is proportional to it, so without a fixed scale the encoder can lower
    that term by shrinking its output instead of becoming more equivariant. The objective
    itself is unchanged. Computed in float32 under autocast.

    ``dims`` restricts the mean to some axes, e.g. ``(1,)`` on (B, K, C) coefficients divides
    each channel by its own RMS over the K coefficients (invariant under O(K) acting on K).
    """

    def __init__(self, eps: float = 1e-6, dims: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.eps = float(eps)
        self.dims = None if dims is None else tuple(int(d) for d in dims)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z32 = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
        dims = tuple(range(1, z32.dim())) if self.dims is None else self.dims
        return z32 * torch.rsqrt(z32.square().mean(dim=dims, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}" + ("" if self.dims is None else f", dims={self.dims}")


class _LatentCodec(nn.Module):
    """Encoder/decoder pair with the flat latent layout and optional autocast."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, *,
                 latent_shape: tuple[int, int] | None = None, amp_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_shape = None if latent_shape is None else (int(latent_shape[0]), int(latent_shape[1]))
        self.amp_dtype = amp_dtype
        self._flat_latents: bool | None = None

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)`` as flat latents (B, N, C) in float32 (at least), whatever the autocast dtype."""
        with autocast(x.device, self.amp_dtype):
            z = self.encoder(x)
        if z.dim() == 4:  # (B, C, h, w) grid latent -> (B, N, C), row-major idx = i*w + j
            h, w = z.shape[-2], z.shape[-1]
            if self.latent_shape is None:
                self.latent_shape = (h, w)
            elif self.latent_shape != (h, w):
                raise ValueError(f"encoder produced a {h}x{w} latent grid, expected {self.latent_shape}")
            self._flat_latents = False
            z = z.flatten(-2).transpose(-1, -2)
        elif z.dim() == 3:
            self._flat_latents = True
        else:
            raise ValueError(f"encoder output must be (B, C, h, w) or (B, N, C), got {tuple(z.shape)}")
        return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``D(z)`` for flat latents (B, N, C); the output is float32 (at least)."""
        if not self._flat_latents:
            if self.latent_shape is None:
                raise RuntimeError("latent grid shape unknown: pass latent_shape or call encode first")
            h, w = self.latent_shape
            if z.shape[-2] != h * w:
                raise ValueError(f"expected latents (B, {h * w}, C) for a {h}x{w} grid, got {tuple(z.shape)}")
            z = z.transpose(-1, -2).reshape(*z.shape[:-2], z.shape[-1], h, w)
        with autocast(z.device, self.amp_dtype):
            out = self.decoder(z)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


class NIsoAutoencoder(_LatentCodec):
    """Encoder, decoder and learned operator, with the NIso pair and triplet objectives.

    Parameters
    ----------
    encoder : images (B, C_in, H, W) -> grid latents (B, C, h, w) or flat latents (B, N, C).
    decoder : the inverse layout (grid latents, or flat ones if the encoder is flat) -> images.
    operator : the :class:`~niso_geom.niso.operator.LearnedOperator` on the N = h·w latent points.
    alpha, beta : weights of the equivariance and multiplicity losses (homNIST: 0.5 and 0.1).
    spectral_dropout : random truncation before unprojection in training mode; None uses the
        operator's ``spectral_dropout`` flag.
    mask : use the eigenvalue mask exp(-|λ_i - λ_j|) in the τ solve (the reference always does).
    method, eps, compute_dtype : passed to the Procrustes solve (see
        :func:`~niso_geom.niso.linalg.procrustes`); ``compute_dtype=torch.float64`` runs τ in
        float64.
    latent_shape : (h, w) of the latent grid; inferred from the first :meth:`encode` if None.
    amp_dtype : autocast dtype of the encoder/decoder (None: full precision); see
        :func:`resolve_amp_dtype`.

    Notes
    -----
    Loss methods return a dict of 0-d tensors: ``loss`` (the objective), ``recon``, ``equiv``,
    ``mult`` (every term is computed and logged, also when its weight is 0).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, operator: LearnedOperator, *,
                 alpha: float = 0.5, beta: float = 0.1, spectral_dropout: bool | None = None,
                 mask: bool = True, method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                 compute_dtype: torch.dtype | None = None, latent_shape: tuple[int, int] | None = None,
                 amp_dtype: torch.dtype | None = None) -> None:
        super().__init__(encoder, decoder, latent_shape=latent_shape, amp_dtype=amp_dtype)
        self.operator = operator
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.spectral_dropout = operator.spectral_dropout if spectral_dropout is None else bool(spectral_dropout)
        self.mask = bool(mask)
        self.method = method
        self.eps = float(eps)
        self.compute_dtype = compute_dtype

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, spectral_dropout={self.spectral_dropout}, "
                f"mask={self.mask}, method={self.method!r}, amp_dtype={self.amp_dtype}")

    @property
    def k(self) -> int:
        return self.operator.k

    def state(self) -> OperatorState:
        """The realized operator (Φ, Λ, M), computed outside autocast."""
        with no_autocast(self.operator.phi_raw.device.type):
            return self.operator()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = super().encode(x)
        if z.shape[-2] != self.operator.n:
            raise ValueError(f"the encoder gives N = {z.shape[-2]} latent points, the operator has "
                             f"n = {self.operator.n}")
        return z

    def coefficients(self, x: torch.Tensor, state: OperatorState | None = None) -> torch.Tensor:
        """Φᵀ M E(x): images (B, ...) -> (B, K, C), differentiable (see :func:`encode_coefficients`)."""
        z = self.encode(x)
        state = self.state() if state is None else state
        with no_autocast(z.device.type):
            return project(state, z.to(state.phi.dtype))

    def _keep(self, b: int, device: torch.device) -> torch.Tensor | None:
        if not (self.training and self.spectral_dropout):
            return None
        return sample_truncation(self.k, size=(b,), device=device)

    def _views_loss(self, views: Sequence[torch.Tensor], topology: str) -> dict[str, torch.Tensor]:
        """:func:`~niso_geom.niso.losses.niso_objective` on the encoded views, reconstructing the images."""
        zs = self._encode_views(views)
        state = self.state()
        with no_autocast(views[0].device.type):
            latents = [z.to(state.phi.dtype) for z in zs]
            keep = self._keep(views[0].shape[0], views[0].device)
            out = niso_objective(state, latents, list(views), alpha=self.alpha, beta=self.beta, topology=topology,
                                 decoder=self.decode, keep=keep, mask=self.mask, method=self.method, eps=self.eps,
                                 compute_dtype=self.compute_dtype)
        terms = out.terms
        return {"loss": terms["loss"], **{k: v.detach() for k, v in terms.items() if k != "loss"}}

    def _encode_views(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        shapes = {tuple(v.shape) for v in views}
        if len(shapes) != 1:
            raise ValueError(f"all views must have the same shape, got {sorted(shapes)}")
        z = self.encode(torch.cat(list(views), 0))
        return list(z.chunk(len(views), 0))

    def pair_loss(self, x: torch.Tensor, tx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NIso objective on a batch of pairs x, Tx (B, C_in, H, W)."""
        return self._views_loss([x, tx], "pair")

    def triplet_loss(self, x0: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The objective on triplets: edges 0→1 (τ01), 1→2 (τ12) and the chain 0→2 (τ12 τ01)."""
        return self._views_loss([x0, x1, x2], "triplet")

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training protocol of :func:`pretrain`: a pair (x, Tx) or a triplet (x0, x1, x2)."""
        if len(batch) == 2:
            return self.pair_loss(*batch)
        if len(batch) == 3:
            return self.triplet_loss(*batch)
        raise ValueError(f"expected a pair or a triplet of views, got {len(batch)} tensors")

    def forward(self, *views: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.step_loss(views)


class PlainAutoencoder(_LatentCodec):
    """The same encoder/decoder trained as a plain autoencoder: ``L1(x, D(E(x)))`` on every view.

    The baseline for NIso (e.g. homNIST's "AE w/ aug."): fed the same (x, Tx) batches as NIso,
    it simply reconstructs both images, i.e. it is trained with augmentation.
    """

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat(list(batch), 0)
        recon = l1(x, self.decode(self.encode(x)))
        return {"loss": recon, "recon": recon.detach()}

    def forward(self, *views: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.step_loss(views)


@torch.no_grad()
def _encode_chunks(model: _LatentCodec, x: torch.Tensor, batch_size: int, device: torch.device,
                   progress: bool, desc: str) -> torch.Tensor:
    out = []
    starts = range(0, len(x), batch_size)
    for s in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        out.append(model.encode(x[s:s + batch_size].to(device)))
    return torch.cat(out) if out else x.new_zeros((0,))


def encode_coefficients(model: NIsoAutoencoder, x: torch.Tensor, *, train_kernel: bool = False,
                        batch_size: int | None = None, state: OperatorState | None = None,
                        progress: bool = False) -> torch.Tensor:
    """Spectral coefficients Φᵀ M E(x) (B, K, C) for a downstream network.

    The encoder is always frozen here (no gradient). The operator is frozen too unless
    ``train_kernel`` (the official classifiers' behaviour, ``docs/algorithm.md`` §7 item 8):
    then the result carries gradients to Φ_raw and M_raw (and ``batch_size`` must be None).

    Parameters
    ----------
    model : a trained :class:`NIsoAutoencoder`.
    x : images (B, C_in, H, W), on any device (chunks are moved to the model's device).
    train_kernel : let gradients flow into the operator (off by default).
    batch_size : encode in chunks of this many images (memory), None for one pass.
    state : a precomputed operator state to use instead of ``model.state()``.
    progress : tqdm bar over chunks.
    """
    device = model._device()
    was_training = model.training
    model.eval()
    try:
        z = _encode_chunks(model, x, batch_size or max(len(x), 1), device, progress, "encode")
        if train_kernel:
            if state is None:
                state = model.state()
            with no_autocast(device.type):
                return project(state, z.to(state.phi.dtype))
        with torch.no_grad():
            state = (model.state() if state is None else state).detach()
            with no_autocast(device.type):
                return project(state, z.to(state.phi.dtype))
    finally:
        model.train(was_training)
