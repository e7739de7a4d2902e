"""Data-parallel training with PyTorch's own engine (DDP under ``torchrun``), one code path.

Every training loop of the library (:func:`~niso_geom.niso.autoencoder.pretrain`) runs
unchanged on one process and on many: each rank draws the *same* global batch from an
identically seeded sampler, keeps its contiguous shard (:func:`shard`), and
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients over ranks. Since
every loss of the library is a mean over the batch, the averaged gradient is the gradient of
the global batch, and the parameters follow the single-process run (to rounding). Only rank 0
writes files; all ranks read the same checkpoints on resume.

Launch with ``torchrun --nproc_per_node N -m niso_geom.cli ...`` (or any launcher that sets
``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``); :func:`init_from_env` starts the
process group (NCCL on CUDA, gloo on CPU). Without those variables everything is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistContext",
    "StepLossModule",
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "context",
    "init_from_env",
    "rank_device",
    "shard",
    "shard_indices",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context() -> DistContext:
    """The current process group's rank and size (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def init_from_env(backend: str | None = None) -> DistContext:
    """Start the default process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    ``backend`` defaults to NCCL when CUDA is available, else gloo. Returns the context; a
    no-op (rank 0 of 1) for a plain single process or an already initialized group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return context()
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return context()


def rank_device(device: torch.device) -> torch.device:
    """A CUDA device without an index becomes this rank's ``cuda:LOCAL_RANK`` under DDP."""
    if device.type == "cuda" and device.index is None and context().distributed:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard_indices(n: int, ctx: DistContext | None = None) -> slice:
    """This rank's contiguous slice of ``n`` items (``n`` must divide evenly)."""
    ctx = context() if ctx is None else ctx
    if n % ctx.world_size:
        raise ValueError(f"a global batch of {n} does not split over {ctx.world_size} ranks; "
                         f"use a batch size divisible by the world size")
    per = n // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def shard(batch: Sequence[torch.Tensor], ctx: DistContext | None = None) -> tuple[torch.Tensor, ...]:
    """This rank's shard of a global batch (every tensor split along its first axis)."""
    ctx = context() if ctx is None else ctx
    if not ctx.distributed:
        return tuple(batch)
    sizes = {len(t) for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors have different lengths {sorted(sizes)}")
    sl = shard_indices(sizes.pop(), ctx)
    return tuple(t[sl] for t in batch)


class StepLossModule(nn.Module):
    """``forward(*batch) = model.step_loss(batch)``, so DDP's forward hooks see the step.

    DDP synchronizes gradients of what runs inside its ``forward``; the library's models expose
    their objective as ``step_loss``, which this wrapper routes through ``forward``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.step_loss(batch)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if context().distributed:
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` without a process group)."""
    ctx = context()
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over ranks (identity without a process group)."""
    ctx = context()
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
