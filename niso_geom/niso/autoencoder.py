"""The NIso autoencoder: encoder E, decoder D and learned operator (Φ, Λ, M), and its training loop.

Generic over the domain: any encoder mapping images ``(B, C_in, H, W)`` to grid latents
``(B, C, h, w)`` (or directly to flat latents ``(B, N, C)``) and any decoder mapping them back
works, e.g. the grid models of :mod:`niso_geom.niso.models` on the plane, torus or sphere.

Pre-training objective on a pair (x, Tx) (``niso-reference.md`` §1.5), with z = E(x) and
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
classification loss (``niso-reference.md`` §7 item 8), which can erode the isometry the
invariant head relies on. Pass ``train_kernel=True`` to get that behaviour on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from niso_geom.niso import distributed
from niso_geom.niso.isometry import iso_solve_coeffs
from niso_geom.niso.linalg import DEFAULT_EPS, ProcrustesMethod, no_autocast
from niso_geom.niso.losses import l1, multiplicity_loss
from niso_geom.niso.operator import (
    LearnedOperator,
    OperatorState,
    project,
    sample_truncation,
    spectral_dropout,
    unproject,
)
from niso_geom.niso.training import (
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    prune_checkpoints,
    save_checkpoint,
)

log = logging.getLogger(__name__)

__all__ = [
    "LatentScaleNorm",
    "NIsoAutoencoder",
    "PlainAutoencoder",
    "BatchSource",
    "PretrainResult",
    "encode_coefficients",
    "pretrain",
    "resolve_amp_dtype",
    "resolve_device",
]


# --------------------------------------------------------------------------------------------
# devices and mixed precision
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: CUDA if available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return device


def resolve_amp_dtype(amp: bool | str | torch.dtype | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for the encoder/decoder, or None for full precision.

    ``None``/``"auto"``: bfloat16 on CUDA devices that support it, else float16 on CUDA, and no
    autocast on CPU. ``False``/``"off"``: none. ``True``: as auto, but bfloat16 on CPU too.
    ``"bf16"``/``"bfloat16"``, ``"fp16"``/``"float16"`` or a dtype: that dtype.
    """
    dev = torch.device(device)
    if isinstance(amp, torch.dtype):
        return amp
    if amp is False or amp == "off":
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    if amp is None or amp == "auto" or amp is True:
        if dev.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp is True else None
    raise ValueError(f"amp must be a bool, None, 'auto', 'off', 'bf16', 'fp16' or a dtype, got {amp!r}")


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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
        with _autocast(x.device, self.amp_dtype):
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
        with _autocast(z.device, self.amp_dtype):
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

    def _solve(self, a_hat: torch.Tensor, b_hat: torch.Tensor, evals: torch.Tensor) -> torch.Tensor:
        return iso_solve_coeffs(a_hat, b_hat, evals if self.mask else None, method=self.method,
                                eps=self.eps, compute_dtype=self.compute_dtype)

    def _keep(self, b: int, device: torch.device) -> torch.Tensor | None:
        if not (self.training and self.spectral_dropout):
            return None
        return sample_truncation(self.k, size=(b,), device=device)

    def _edges_loss(self, views: Sequence[torch.Tensor], coeffs: Sequence[torch.Tensor],
                    edges: Sequence[tuple[int, int, torch.Tensor]], state: OperatorState) -> dict[str, torch.Tensor]:
        """The NIso objective averaged over edges (i, j, τ_ij) with τ_ij ĉ_i ≈ ĉ_j.

        Per edge: equiv = L1(ĉ_j, τ ĉ_i) + L1(ĉ_i, τᵀ ĉ_j) and recon = L1(x_i, D(Φ τᵀ ĉ_j)) +
        L1(x_j, D(Φ τ ĉ_i)); all decodes of a step go through the decoder in one call.
        """
        b = views[0].shape[0]
        preds, targets, equiv = [], [], []
        for i, j, tau in edges:
            to_j = tau @ coeffs[i]          # τ ĉ_i ≈ ĉ_j
            to_i = tau.mT @ coeffs[j]       # τᵀ ĉ_j ≈ ĉ_i
            equiv.append(l1(coeffs[j], to_j) + l1(coeffs[i], to_i))
            preds += [to_i, to_j]
            targets += [views[i], views[j]]
        pred = torch.stack(preds)  # (2E, B, K, C)
        keep = self._keep(b, pred.device)
        if keep is not None:
            pred = spectral_dropout(pred, keep=keep)
        latents = unproject(state, pred).flatten(0, 1)  # (2E·B, N, C)
        out = self.decode(latents).unflatten(0, (len(preds), b))
        recon = sum(l1(t, out[n]) for n, t in enumerate(targets)) / len(edges)
        equiv_t = sum(equiv) / len(edges)
        mult = multiplicity_loss(state.evals)
        loss = recon + self.alpha * equiv_t + self.beta * mult
        return {"loss": loss, "recon": recon.detach(), "equiv": equiv_t.detach(), "mult": mult.detach()}

    def _encode_views(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        shapes = {tuple(v.shape) for v in views}
        if len(shapes) != 1:
            raise ValueError(f"all views must have the same shape, got {sorted(shapes)}")
        z = self.encode(torch.cat(list(views), 0))
        return list(z.chunk(len(views), 0))

    def pair_loss(self, x: torch.Tensor, tx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The NIso objective on a batch of pairs x, Tx (B, C_in, H, W)."""
        z0, z1 = self._encode_views([x, tx])
        state = self.state()
        with no_autocast(z0.device.type):
            dtype = state.phi.dtype
            c0, c1 = project(state, z0.to(dtype)), project(state, z1.to(dtype))
            tau = self._solve(c0, c1, state.evals)
            return self._edges_loss([x, tx], [c0, c1], [(0, 1, tau)], state)

    def triplet_loss(self, x0: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The objective on triplets: edges 0→1 (τ01), 1→2 (τ12) and the chain 0→2 (τ12 τ01)."""
        zs = self._encode_views([x0, x1, x2])
        state = self.state()
        with no_autocast(x0.device.type):
            dtype = state.phi.dtype
            c = [project(state, z.to(dtype)) for z in zs]
            t01 = self._solve(c[0], c[1], state.evals)
            t12 = self._solve(c[1], c[2], state.evals)
            return self._edges_loss([x0, x1, x2], c, [(0, 1, t01), (1, 2, t12), (0, 2, t12 @ t01)], state)

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
    from tqdm.auto import tqdm

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
    ``train_kernel`` (the official classifiers' behaviour, ``niso-reference.md`` §7 item 8):
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


# --------------------------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------------------------


class BatchSource(Protocol):
    """What :func:`pretrain` draws from: ``source()`` returns one micro-batch, a tuple of tensors.

    ``state_dict()`` / ``load_state_dict()`` (optional) save and restore its RNG so that a
    resumed run continues the same data stream; the state must be JSON-serializable.
    """

    def __call__(self) -> Sequence[torch.Tensor]: ...


@dataclass
class PretrainResult:
    """Summary of a :func:`pretrain` call."""

    steps: int
    wall_seconds: float
    final: dict[str, float] = field(default_factory=dict)
    resumed_from: int = 0
    checkpoint: Path | None = None


class _JsonlWriter:
    def __init__(self, path: Path | None, resume_step: int) -> None:
        self.path = path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():  # keep only records up to the resumed step
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if int(json.loads(line).get("step", 0)) <= resume_step:
                        kept.append(line)
                except (ValueError, AttributeError):
                    continue
            if resume_step == 0:
                kept = []
            tmp = path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(k + "\n" for k in kept))
            os.replace(tmp, path)

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def pretrain(model: nn.Module, pair_sampler: BatchSource, steps: int, *, lr: float = 5e-4,
             weight_decay: float = 1e-4, warmup: int = 2000, decay_steps: int | None = None,
             init_lr: float = 1e-8, end_lr: float = 5e-5, accum: int = 1,
             amp: bool | str | torch.dtype | None = None, device: str | torch.device | None = "auto",
             out_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
             checkpoint_every: int = 1000, keep_checkpoints: int = 2, log_every: int = 50,
             desc: str = "pretrain", extra: Mapping[str, Any] | None = None,
             on_log: Callable[[dict[str, Any]], None] | None = None,
             param_groups: Sequence[dict[str, Any]] | None = None) -> PretrainResult:
    """Train ``model`` for ``steps`` optimizer updates on batches from ``pair_sampler``.

    The model follows the ``step_loss(batch) -> {"loss": ..., other terms}`` protocol
    (:class:`NIsoAutoencoder`, :class:`PlainAutoencoder`, or any module with that method).
    Optimizer and schedule are the reference's (§1.8): AdamW, weight decay on every parameter,
    linear warmup from ``init_lr`` to ``lr`` then cosine to ``end_lr`` at ``decay_steps``
    (default ``steps``), no clipping.

    Parameters
    ----------
    steps : optimizer updates; each averages the gradients of ``accum`` micro-batches.
    amp : autocast dtype of the encoder/decoder (see :func:`resolve_amp_dtype`; default: bf16 or
        fp16 on CUDA, off on CPU). float16 uses a ``GradScaler``. Linear algebra stays float32.
    device : "auto" (CUDA if available), "cpu", "cuda", or a torch.device; the model is moved.
    out_dir : run folder: ``metrics.jsonl`` (one record per ``log_every`` updates, plus the last)
        and ``checkpoints/step_*.pt`` (atomic; every ``checkpoint_every`` updates and at the
        end; the newest ``keep_checkpoints`` are kept). None writes nothing.
    resume : continue from the newest checkpoint in ``out_dir`` (model, optimizer, schedule,
        global RNGs and the sampler's ``state_dict``), so the run reproduces an uninterrupted one.
    progress : tqdm progress bar.
    extra : stored in every checkpoint's ``extra`` (e.g. the config).
    on_log : called with every metrics record.
    param_groups : optimizer parameter groups instead of ``model.parameters()``; a group's
        ``lr_scale`` scales the schedule for it (:func:`~niso_geom.niso.training.make_scheduler`).

    Notes
    -----
    Distributed data parallel (one code path, :mod:`niso_geom.niso.distributed`): inside a
    ``torch.distributed`` process group (e.g. under ``torchrun``), every rank draws the same
    global micro-batch from its identically seeded ``pair_sampler``, keeps its shard of it, and
    :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients, so the updates
    equal those of one process on the global batch. Logged terms are averaged over ranks; only
    rank 0 writes metrics and checkpoints; every rank resumes from the same checkpoint.

    Returns
    -------
    PretrainResult (wall seconds accumulate over resumed sessions).
    """
    from tqdm.auto import tqdm

    if steps < 0 or accum < 1:
        raise ValueError(f"need steps >= 0 and accum >= 1, got steps={steps}, accum={accum}")
    ctx = distributed.context()
    dev = distributed.rank_device(resolve_device(device))
    model.to(dev)
    amp_dtype = resolve_amp_dtype(amp, dev)
    if hasattr(model, "amp_dtype"):
        model.amp_dtype = amp_dtype
    use_scaler = amp_dtype == torch.float16 and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    optimizer = make_optimizer(model.parameters() if param_groups is None else param_groups, lr=lr,
                               weight_decay=weight_decay)
    scheduler = make_scheduler(optimizer, decay_steps=decay_steps or max(steps, 1), warmup=warmup,
                               init=init_lr, end=end_lr, peak=lr)
    run_dir = Path(out_dir) if out_dir is not None else None
    ckpt_dir = run_dir / "checkpoints" if run_dir is not None else None

    start, wall0 = 0, 0.0
    ckpt_path: Path | None = None
    if resume and ckpt_dir is not None and (found := latest_checkpoint(ckpt_dir)) is not None:
        loaded = load_checkpoint(found, model, optimizer, scheduler, map_location=dev)
        start, wall0 = loaded.step, float(loaded.extra.get("wall_seconds", 0.0))
        sampler_state = loaded.extra.get("sampler_state")
        if sampler_state is not None and hasattr(pair_sampler, "load_state_dict"):
            pair_sampler.load_state_dict(json.loads(sampler_state))
        if scaler is not None and loaded.extra.get("scaler_state"):
            scaler.load_state_dict(json.loads(loaded.extra["scaler_state"]))
        ckpt_path = found
        log.info("%s: resumed from %s (step %d)", desc, found, start)
    writer = _JsonlWriter(run_dir / "metrics.jsonl" if run_dir is not None and ctx.is_main else None, start)
    net: nn.Module | None = None
    if ctx.distributed and any(p.requires_grad for p in model.parameters()):
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(distributed.StepLossModule(model),
                                      device_ids=[dev.index] if dev.type == "cuda" else None,
                                      find_unused_parameters=True)

    def checkpoint(step: int, wall: float) -> Path | None:
        if ckpt_dir is None:
            return None
        if not ctx.is_main:
            distributed.barrier()
            return ckpt_dir / f"step_{step:09d}.pt"
        payload = {"wall_seconds": wall, **(dict(extra) if extra else {})}
        if hasattr(pair_sampler, "state_dict"):
            payload["sampler_state"] = json.dumps(pair_sampler.state_dict())
        if scaler is not None:
            payload["scaler_state"] = json.dumps(scaler.state_dict())
        path = save_checkpoint(ckpt_dir / checkpoint_name(step), model, optimizer, scheduler, step, payload)
        prune_checkpoints(ckpt_dir, keep_checkpoints)
        distributed.barrier()
        return path

    model.train()
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    count = 0
    final: dict[str, float] = {}
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        for step in range(start, steps):
            optimizer.zero_grad(set_to_none=True)
            for micro in range(accum):
                batch = tuple(t.to(dev, non_blocking=True) for t in distributed.shard(pair_sampler(), ctx))
                # under DDP, gradients are all-reduced once per update, on the last micro-batch
                sync = net.no_sync() if net is not None and micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    terms = model.step_loss(batch) if net is None else net(*batch)
                    loss = terms["loss"]
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"{desc}: non-finite loss {loss.item()} at step {step}")
                    scaled = loss / accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                for key, val in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(val.detach()) / accum
            lr_now = optimizer.param_groups[0]["lr"]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            count += 1
            done = step + 1
            bar.update(1)
            if done % log_every == 0 or done == steps:
                means = distributed.all_reduce_mean({k: v / count for k, v in sums.items()})
                record = {"step": done, "lr": lr_now, **means,
                          "seconds": wall0 + time.perf_counter() - t0}
                final = {k: v for k, v in record.items() if k not in ("step",)}
                writer.write(record)
                if on_log is not None:
                    on_log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                sums, count = {}, 0
            if done % checkpoint_every == 0 and done != steps:
                ckpt_path = checkpoint(done, wall0 + time.perf_counter() - t0)
    finally:
        bar.close()
    wall = wall0 + time.perf_counter() - t0
    if not final and writer.path is not None and writer.path.exists():  # resumed a finished run
        lines = writer.path.read_text().splitlines()
        if lines:
            final = {k: v for k, v in json.loads(lines[-1]).items() if k != "step"}
    if steps > start:
        ckpt_path = checkpoint(steps, wall)
    return PretrainResult(steps=steps, wall_seconds=wall, final=final, resumed_from=start,
                          checkpoint=ckpt_path)

