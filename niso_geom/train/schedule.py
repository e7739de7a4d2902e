"""Optimizer and learning-rate schedule of every run (``docs/algorithm.md`` §1.8).

* AdamW with decoupled weight decay 1e-4 on every parameter, betas (0.9, 0.999), eps 1e-8;
* warmup -> cosine learning rate (optax ``warmup_cosine_decay_schedule``): linear from
  ``init`` to ``peak`` over ``warmup`` updates, then cosine to ``end`` at ``decay_steps``
  (which includes the warmup), constant after;
* the schedule counts optimizer updates (the trainer averages accumulated micro-batches).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

__all__ = [
    "WarmupCosine",
    "make_optimizer",
    "make_scheduler",
    "warmup_cosine",
]


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
