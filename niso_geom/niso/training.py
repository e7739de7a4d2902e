"""Training pieces shared by the NIso experiments (``niso-reference.md`` §1.8).

* AdamW with decoupled weight decay 1e-4 on every parameter, betas (0.9, 0.999), eps 1e-8;
* warmup -> cosine learning rate (optax ``warmup_cosine_decay_schedule``): linear from
  ``init`` to ``peak`` over ``warmup`` updates, then cosine to ``end`` at ``decay_steps``
  (which includes the warmup), constant after;
* gradient accumulation by mean, the schedule counting real (optimizer) updates;
* atomic, resumable checkpoints (temp file + ``os.replace``) that also carry the RNG states,
  so a resumed run continues the same loss curve. Content is ``torch.load(weights_only=True)``
  compatible: tensors, Python scalars, strings, lists, tuples and dicts only.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "make_optimizer",
    "WarmupCosine",
    "warmup_cosine",
    "make_scheduler",
    "GradientAccumulator",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "LoadedCheckpoint",
    "latest_checkpoint",
    "checkpoint_name",
]

CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------------------------
# optimizer and schedule
# --------------------------------------------------------------------------------------------


def make_optimizer(params: Iterable[torch.Tensor] | Iterable[dict], *, lr: float = 5e-4, weight_decay: float = 1e-4,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW as the reference (decoupled weight decay 1e-4 on all parameters, no clipping).

    ``lr`` is the base (peak) rate that :func:`make_scheduler` multiplies.
    """
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


@dataclass
class WarmupCosine:
    """Learning rate of update ``step`` (0-based): linear warmup, ``hold`` steps at ``peak``, cosine
    decay, then ``end`` (or ``after``, when set) from ``decay_steps`` on.

    A callable object (not a closure) so that ``LambdaLR.state_dict()`` stores its fields.
    """

    peak: float = 5e-4
    decay_steps: int = 1_000_000
    warmup: int = 2000
    init: float = 1e-8
    end: float = 5e-5
    after: float | None = None  # the rate from decay_steps on (None: end)
    hold: int = 0  # steps at peak between the warmup and the cosine

    def lr(self, step: int) -> float:
        if self.after is not None and step >= self.decay_steps:
            return self.after
        if self.warmup > 0 and step < self.warmup:
            return self.init + (self.peak - self.init) * step / self.warmup
        start = self.warmup + self.hold
        span = max(self.decay_steps - start, 1)
        t = min(max(step - start, 0), span) / span
        return self.end + (self.peak - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))

    def __call__(self, step: int) -> float:
        """Multiplier of the base rate ``peak`` (the ``LambdaLR`` convention)."""
        return self.lr(step) / self.peak


def warmup_cosine(step: int, *, peak: float = 5e-4, decay_steps: int = 1_000_000, warmup: int = 2000,
                  init: float = 1e-8, end: float = 5e-5) -> float:
    """The reference schedule's learning rate at update ``step`` (0-based)."""
    return WarmupCosine(peak, decay_steps, warmup, init, end).lr(step)


def make_scheduler(optimizer: torch.optim.Optimizer, *, decay_steps: int = 1_000_000, warmup: int = 2000,
                   init: float = 1e-8, end: float = 5e-5, peak: float | None = None, hold: int = 0
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with :class:`WarmupCosine`; ``peak`` defaults to the optimizer's ``lr``; ``hold``
    steps at the peak rate between the warmup and the cosine.

    A parameter group with an ``lr_scale`` entry follows the schedule scaled by it (e.g. 0.1 for
    a fine-tuned encoder beside a fresh head); one with an ``lr_end`` entry decays to that rate
    instead of ``end · lr_scale`` (e.g. eigenvalues held at their peak while the basis anneals);
    one with an ``lr_after`` entry moves at that constant rate once the decay is over (e.g. a final
    phase for the eigenvalues alone). Call ``scheduler.step()`` after each ``optimizer.step()``.
    """
    if peak is None:
        peak = optimizer.param_groups[0]["lr"]
    schedules = []
    for group in optimizer.param_groups:
        scale = float(group.get("lr_scale", 1.0))
        base = peak * scale
        group["lr"] = base
        group["initial_lr"] = base
        after = group.get("lr_after")
        schedules.append(WarmupCosine(base, decay_steps, warmup, init * scale, float(group.get("lr_end", end * scale)),
                                      None if after is None else float(after), int(hold)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)


class GradientAccumulator:
    """Mean of ``every`` micro-batch gradients per update (optax ``MultiSteps``).

    ``backward(loss)`` scales and back-propagates one micro-batch loss; on every ``every``-th
    call it steps the optimizer (and scheduler), zeroes the gradients and returns True.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, every: int = 1,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.optimizer, self.scheduler, self.every = optimizer, scheduler, every
        self.micro_steps = 0

    def backward(self, loss: torch.Tensor) -> bool:
        (loss / self.every).backward()
        self.micro_steps += 1
        if self.micro_steps % self.every:
            return False
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    @property
    def updates(self) -> int:
        return self.micro_steps // self.every

    def state_dict(self) -> dict[str, int]:
        return {"micro_steps": self.micro_steps, "every": self.every}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if int(state["every"]) != self.every:
            raise ValueError(f"checkpoint accumulates over {state['every']} micro-steps, this run over {self.every}")
        self.micro_steps = int(state["micro_steps"])


# --------------------------------------------------------------------------------------------
# RNG state
# --------------------------------------------------------------------------------------------


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The global RNG states (Python, NumPy, torch CPU and CUDA) plus named generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only if the device count matches)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
        else:
            log.warning("checkpoint has %d CUDA RNG states, this machine %d devices: not restored",
                        len(cuda), torch.cuda.device_count())
    saved = state.get("generators") or {}
    for key, gen in (generators or {}).items():
        if key not in saved:
            raise KeyError(f"checkpoint has no state for generator {key!r} (has {sorted(saved)})")
        gen.set_state(saved[key].cpu())


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """``step_000001234.pt``: names that sort by step."""
    return f"step_{step:09d}.pt"


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` latest ``step_*.pt`` files of ``directory`` (keep ≤ 0 keeps them all)."""
    files = sorted(Path(directory).glob("step_*.pt"))
    for p in files[:-keep] if keep > 0 else []:
        with contextlib.suppress(OSError):
            p.unlink()


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The ``step_*.pt`` file with the highest step in ``directory``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in directory.iterdir():
        m = re.fullmatch(r"step_(\d+)\.pt", p.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return None if best is None else best[1]


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, step: int = 0, extra: Mapping[str, Any] | None = None, *,
                    generators: Mapping[str, torch.Generator] | None = None,
                    accumulator: GradientAccumulator | None = None) -> Path:
    """Write a resumable checkpoint atomically (temp file in the same folder, then ``os.replace``).

    Parameters
    ----------
    path : destination file; its folder is created.
    model, optimizer, scheduler : saved through their ``state_dict()``.
    step : the number of completed steps.
    extra : anything else (weights_only-loadable types: tensors, numbers, strings, containers).
    generators : named ``torch.Generator`` objects whose states are saved (e.g. the data RNG).
    accumulator : a :class:`GradientAccumulator` whose micro-step count is saved.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "accumulator": accumulator.state_dict() if accumulator is not None else None,
        "rng": rng_state(generators),
        "extra": dict(extra) if extra is not None else {},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    log.debug("saved checkpoint %s (step %d)", path, step)
    return path


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns besides restoring state in place."""

    step: int
    extra: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, *, generators: Mapping[str, torch.Generator] | None = None,
                    accumulator: GradientAccumulator | None = None, restore_rng: bool = True,
                    map_location: str | torch.device | None = None, strict: bool = True) -> LoadedCheckpoint:
    """Restore a checkpoint written by :func:`save_checkpoint` in place (``weights_only`` load).

    Model, optimizer, scheduler, accumulator and (if ``restore_rng``) the global and named RNG
    states are restored, so that continuing reproduces an uninterrupted run.
    """
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {payload.get('format')!r}")
    model.load_state_dict(payload["model"], strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("accumulator", accumulator)):
        if obj is None:
            continue
        if payload[name] is None:
            raise ValueError(f"{path}: checkpoint has no {name} state")
        obj.load_state_dict(payload[name])
    if restore_rng:
        set_rng_state(payload["rng"], generators)
    return LoadedCheckpoint(step=int(payload["step"]), extra=dict(payload["extra"]))
