"""The one training loop of the project: every run command trains through :func:`fit`.

``fit(model, source, settings)`` draws micro-batches from ``source()``, computes
``loss_fn(model, batch)`` (default ``model.step_loss(batch)``: a dict of 0-d tensors with a
``"loss"``), and steps AdamW under the warmup → cosine schedule (``docs/algorithm.md`` §1.8). Around
that it gives every run the same services:

* **device** ``auto | cpu | cuda`` (the model and every batch tensor are moved), opt-in **AMP**
  for models with an ``amp_dtype`` attribute (float16 with a gradient scaler), opt-in
  ``torch.compile`` of the step, **channels-last** memory for convolutional models;
* **DDP** under ``torchrun`` (:mod:`niso_geom.train.distributed`): every rank draws the same global
  batch and keeps its shard, gradients are averaged, only rank 0 writes;
* **resume** from the newest intact checkpoint of ``out_dir/checkpoints`` (model, optimizer,
  schedule, RNGs and the source's ``state_dict``), refusing a folder trained with another
  configuration; **atomic checkpoints** with checksums (:mod:`niso_geom.train.checkpoints`);
* ``metrics.jsonl`` (and TensorBoard on request), a progress bar, and **hooks** for what a method
  adds between steps (:class:`Hook`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from niso_geom.errors import RunDirError
from niso_geom.runio import read_jsonl
from niso_geom.train import distributed
from niso_geom.train.checkpoints import (
    CorruptCheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_latest_intact,
    prune_checkpoints,
    read_checkpoint,
    save_checkpoint,
)
from niso_geom.train.device import resolve_amp_dtype, resolve_device
from niso_geom.train.metrics import MetricsLog
from niso_geom.train.schedule import make_optimizer, make_scheduler

log = logging.getLogger(__name__)

__all__ = ["BatchSource", "FitResult", "Hook", "LossFn", "TrainSettings", "config_digest", "fit", "pretrain",
           "verify_resume"]

LossFn = Callable[[nn.Module, Sequence[torch.Tensor]], Mapping[str, torch.Tensor]]


class BatchSource(Protocol):
    """What :func:`fit` draws from: ``source()`` returns one micro-batch, a tuple of tensors.

    ``state_dict()`` / ``load_state_dict()`` (optional) save and restore its RNG so that a
    resumed run continues the same data stream; the state must be JSON-serializable.
    """

    def __call__(self) -> Sequence[torch.Tensor]: ...


class Hook:
    """What a method adds between steps; override what you need.

    ``on_fit_start(model, optimizer)`` runs once the optimizer exists (after a resume restored it);
    ``on_step_start(step)`` runs before the step's batches are drawn (0-based ``step``);
    ``on_step_end(step, record)`` after the optimizer and schedule stepped — it may change the
    parameters (and the optimizer state) and add numbers to ``record``, the step's logged terms.
    """

    def on_fit_start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Called once before the first update of this call."""

    def on_step_start(self, step: int) -> None:
        """Called before update ``step``."""

    def on_step_end(self, step: int, record: dict[str, float]) -> None:
        """Called after update ``step``."""


@dataclass(frozen=True)
class TrainSettings:
    """How to train (what to train is the model, the source and the loss).

    ``steps`` optimizer updates, each the mean gradient of ``accum`` micro-batches; AdamW
    (``lr`` peak, ``weight_decay``) with a linear warmup from ``init_lr`` over ``warmup`` updates,
    ``hold`` updates at the peak, then a cosine to ``end_lr`` at ``decay_steps`` (None: ``steps``);
    ``device``, ``amp`` (``off | auto | bf16 | fp16``), ``compile``, ``channels_last``;
    a checkpoint every ``checkpoint_every`` updates (the newest ``keep_checkpoints`` kept), a
    metrics record every ``log_every`` updates (means over them), ``progress`` bar labelled
    ``desc``, ``tensorboard`` scalars beside ``metrics.jsonl``.
    """

    steps: int
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 2000
    decay_steps: int | None = None
    init_lr: float = 1e-8
    end_lr: float = 5e-5
    hold: int = 0
    accum: int = 1
    device: str = "auto"
    amp: str | bool | None = "off"
    compile: bool = False
    channels_last: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    progress: bool = True
    desc: str = "train"
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "warmup", "hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("accum", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "init_lr", "end_lr", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number{' > 0' if name == 'lr' else ' >= 0'}, got {value}")
        if self.decay_steps is not None and self.decay_steps < 1:
            raise ValueError(f"decay_steps must be >= 1, got {self.decay_steps}")


@dataclass
class FitResult:
    """Summary of a :func:`fit` call; ``wall_seconds`` accumulate over resumed sessions,
    ``train_seconds`` are this call's."""

    steps: int
    wall_seconds: float
    final: dict[str, float] = field(default_factory=dict)
    resumed_from: int = 0
    checkpoint: Path | None = None
    train_seconds: float = 0.0


def config_digest(config: Mapping[str, Any]) -> str:
    """A short hash of a JSON-able configuration (stored in checkpoints, checked on resume)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _StepModule(nn.Module):
    """``forward(*batch) = loss_fn(model, batch)``, so DDP (and ``torch.compile``) see the whole step."""

    def __init__(self, model: nn.Module, loss_fn: LossFn | None) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *batch: torch.Tensor) -> Mapping[str, torch.Tensor]:
        if self.loss_fn is None:
            return self.model.step_loss(batch)
        return self.loss_fn(self.model, batch)


def _to_device(batch: Sequence[torch.Tensor], dev: torch.device, channels_last: bool) -> tuple[torch.Tensor, ...]:
    out = []
    for t in batch:
        t = t.to(dev, non_blocking=True)
        if channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        out.append(t)
    return tuple(out)


def _check_resumable(loaded_extra: Mapping[str, Any], digest: str | None, path: Path | None) -> None:
    saved = loaded_extra.get("config_digest")
    if digest is None:
        return
    if saved is None:
        raise RunDirError(f"{path}: this checkpoint does not record its configuration, so resuming it with the "
                          "current one cannot be verified; use a new --out or --no-resume")
    if saved != digest:
        raise RunDirError(f"{path} was trained with another configuration (digest {saved}, this run {digest}); "
                          "use a new --out or --no-resume")


def verify_resume(out_dir: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """Before writing anything into a run folder: refuse (:class:`~niso_geom.errors.RunDirError`)
    when its newest intact checkpoint was trained with another ``config`` or does not record one.
    A folder without checkpoints passes."""
    for path in reversed(list_checkpoints(Path(out_dir) / "checkpoints")):
        try:
            payload = read_checkpoint(path)
        except CorruptCheckpointError:
            continue
        _check_resumable(payload.get("extra", {}), config_digest(config), path)
        return


def fit(model: nn.Module, source: BatchSource, settings: TrainSettings, *, loss_fn: LossFn | None = None,
        param_groups: Sequence[dict[str, Any]] | None = None, hooks: Sequence[Hook] = (),
        out_dir: str | os.PathLike | None = None, resume: bool = True, extra: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None, on_log: Callable[[dict[str, Any]], None] | None = None,
        stop_at: int | None = None) -> FitResult:
    """Train ``model`` for ``settings.steps`` updates on batches from ``source``.

    Parameters
    ----------
    model : the module whose parameters train (and whose ``state_dict`` the checkpoints hold).
    source : a :class:`BatchSource`.
    settings : :class:`TrainSettings`.
    loss_fn : ``loss_fn(model, batch) -> {"loss": ..., other terms}``; None: ``model.step_loss(batch)``.
    param_groups : optimizer groups instead of ``model.parameters()``; a group's ``lr_scale``,
        ``lr_end`` and ``lr_after`` shape its schedule (:func:`~niso_geom.train.schedule.make_scheduler`).
    hooks : :class:`Hook` objects called around every update.
    out_dir : run folder for ``metrics.jsonl``, ``checkpoints/`` (and ``tensorboard/``); None writes nothing.
    resume : continue from the newest intact checkpoint in ``out_dir``.
    extra : stored in every checkpoint.
    config : the run's configuration (JSON-able); its digest goes into every checkpoint and a
        resume with another configuration is refused (:class:`~niso_geom.errors.RunDirError`).
    on_log : called with every metrics record.
    stop_at : stop after this many updates (an interrupted run, resumable), without the final
        update count changing the schedule.
    """
    ctx = distributed.context()
    dev = distributed.rank_device(resolve_device(settings.device))
    model.to(dev)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = resolve_amp_dtype(settings.amp, dev)
    if hasattr(model, "amp_dtype"):
        model.amp_dtype = amp_dtype
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 and dev.type == "cuda" else None
    values_visible = dev.type != "meta"  # meta tensors carry shapes only: nothing to check or log

    optimizer = make_optimizer(model.parameters() if param_groups is None else param_groups, lr=settings.lr,
                               weight_decay=settings.weight_decay)
    scheduler = make_scheduler(optimizer, decay_steps=settings.decay_steps or max(settings.steps, 1),
                               warmup=settings.warmup, init=settings.init_lr, end=settings.end_lr, peak=settings.lr,
                               hold=settings.hold)
    run_dir = Path(out_dir) if out_dir is not None else None
    ckpt_dir = run_dir / "checkpoints" if run_dir is not None else None
    digest = config_digest(config) if config is not None else None

    start, wall0 = 0, 0.0
    ckpt_path: Path | None = None
    if resume and ckpt_dir is not None:
        loaded = load_latest_intact(ckpt_dir, model, optimizer, scheduler, map_location=dev)
        if loaded is not None:
            _check_resumable(loaded.extra, digest, loaded.path)
            start, wall0 = loaded.step, float(loaded.extra.get("wall_seconds", 0.0))
            if loaded.extra.get("sampler_state") is not None and hasattr(source, "load_state_dict"):
                source.load_state_dict(json.loads(loaded.extra["sampler_state"]))
            if scaler is not None and loaded.extra.get("scaler_state"):
                scaler.load_state_dict(json.loads(loaded.extra["scaler_state"]))
            ckpt_path = loaded.path
            log.info("%s: resumed from %s (step %d)", settings.desc, loaded.path, start)
    tb_dir = run_dir / "tensorboard" if settings.tensorboard and run_dir is not None and ctx.is_main else None
    metrics = MetricsLog(run_dir / "metrics.jsonl" if run_dir is not None and ctx.is_main else None, start,
                         tensorboard=tb_dir)

    step_module: nn.Module = _StepModule(model, loss_fn)
    if ctx.distributed and any(p.requires_grad for p in model.parameters()):
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(step_module, device_ids=[dev.index] if dev.type == "cuda" else None,
                                              find_unused_parameters=True)
    if settings.compile:
        step_module = torch.compile(step_module)

    def checkpoint(step: int, wall: float) -> Path | None:
        if ckpt_dir is None:
            return None
        if not ctx.is_main:
            distributed.barrier()
            return ckpt_dir / checkpoint_name(step)
        metrics.flush()
        payload = {"wall_seconds": wall, **(dict(extra) if extra else {})}
        if digest is not None:
            payload["config_digest"] = digest
        if hasattr(source, "state_dict"):
            payload["sampler_state"] = json.dumps(source.state_dict())
        if scaler is not None:
            payload["scaler_state"] = json.dumps(scaler.state_dict())
        path = save_checkpoint(ckpt_dir / checkpoint_name(step), model, optimizer, scheduler, step, payload)
        prune_checkpoints(ckpt_dir, settings.keep_checkpoints)
        distributed.barrier()
        return path

    for hook in hooks:
        hook.on_fit_start(model, optimizer)
    steps, accum = settings.steps, settings.accum
    stop = steps if stop_at is None else min(steps, stop_at)
    model.train()
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    count = 0
    final: dict[str, float] = {}
    bar = tqdm(total=steps, initial=start, desc=settings.desc, unit="step", disable=not settings.progress,
               dynamic_ncols=True, leave=False)
    try:
        for step in range(start, stop):
            for hook in hooks:
                hook.on_step_start(step)
            optimizer.zero_grad(set_to_none=True)
            record: dict[str, float] = {}
            for micro in range(accum):
                batch = _to_device(distributed.shard(source(), ctx), dev, settings.channels_last)
                # under DDP, gradients are all-reduced once per update, on the last micro-batch
                no_sync = getattr(step_module, "no_sync", None)
                sync = no_sync() if no_sync is not None and micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    terms = step_module(*batch)
                    loss = terms["loss"]
                    if values_visible and not torch.isfinite(loss):
                        last = ckpt_path if ckpt_path is not None else "none"
                        raise FloatingPointError(f"{settings.desc}: non-finite loss {loss.item()} at step {step}; "
                                                 f"the last checkpoint is {last}")
                    scaled = loss / accum if accum > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                if values_visible:
                    for key, val in terms.items():
                        record[key] = record.get(key, 0.0) + float(val.detach()) / accum
            lr_now = optimizer.param_groups[0]["lr"]  # the rate of this update
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            for hook in hooks:
                hook.on_step_end(step, record)
            for key, val in record.items():
                sums[key] = sums.get(key, 0.0) + val
            count += 1
            done = step + 1
            bar.update(1)
            if done % settings.log_every == 0 or done == stop:
                means = distributed.all_reduce_mean({k: v / count for k, v in sums.items()})
                rec = {"step": done, "lr": lr_now, **means, "seconds": wall0 + time.perf_counter() - t0}
                final = {k: v for k, v in rec.items() if k != "step"}
                metrics.write(rec)
                if on_log is not None:
                    on_log(rec)
                if "loss" in rec:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}")
                sums, count = {}, 0
            if done % settings.checkpoint_every == 0 or done == stop:
                ckpt_path = checkpoint(done, wall0 + time.perf_counter() - t0)
    finally:
        bar.close()
        metrics.close()
    train_seconds = time.perf_counter() - t0
    wall = wall0 + train_seconds
    if not final and run_dir is not None:  # resumed a finished run: report its last record
        records = read_jsonl(run_dir / "metrics.jsonl")
        if records:
            final = {k: v for k, v in records[-1].items() if k != "step"}
    return FitResult(steps=stop, wall_seconds=wall, final=final, resumed_from=start, checkpoint=ckpt_path,
                     train_seconds=train_seconds)


def pretrain(model: nn.Module, source: BatchSource, steps: int, *, out_dir: str | os.PathLike | None = None,
             resume: bool = True, extra: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
             on_log: Callable[[dict[str, Any]], None] | None = None,
             param_groups: Sequence[dict[str, Any]] | None = None, hooks: Sequence[Hook] = (),
             loss_fn: LossFn | None = None, **settings: Any) -> FitResult:
    """:func:`fit` with the settings as keywords (``lr=…, warmup=…, device=…``; see :class:`TrainSettings`)."""
    return fit(model, source, TrainSettings(steps=steps, **settings), loss_fn=loss_fn, param_groups=param_groups,
               hooks=hooks, out_dir=out_dir, resume=resume, extra=extra, config=config, on_log=on_log)
