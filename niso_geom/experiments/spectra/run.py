"""A spectra run: learn an operator from transformed signals through the one trainer, then report.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``report.json``,
``report.md`` and the figures; :func:`train` resumes it where it stopped, and refuses to resume
a directory made with another configuration.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from niso_geom.errors import RunDirError
from niso_geom.experiments.spectra.config import SpectraConfig
from niso_geom.experiments.spectra.objective import (
    ClusterRotationHook,
    SpectraBatches,
    SpectraObjective,
    signal_moment,
)
from niso_geom.experiments.spectra.problem import Problem, build_problem
from niso_geom.experiments.spectra.report import evaluate, write_report
from niso_geom.niso.linalg import ProcrustesMethod
from niso_geom.niso.operator import LearnedOperator
from niso_geom.runio import write_json
from niso_geom.threads import limit_threads
from niso_geom.train import (
    Hook,
    TrainSettings,
    fit,
    latest_checkpoint,
    load_checkpoint,
    resolve_device,
    verify_resume,
)

log = logging.getLogger(__name__)

__all__ = ["build_training", "load_run", "make_operator", "operator_param_groups", "train"]


def make_operator(cfg: SpectraConfig, n: int) -> LearnedOperator:
    """The operator (Φ, Λ, M) on ``n`` points, initialised from ``cfg.seed``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return LearnedOperator(n, cfg.k, eigenvalue_param=cfg.eigenvalue_param, generator=gen)


def operator_param_groups(op: LearnedOperator, cfg: SpectraConfig) -> list[dict[str, Any]]:
    """Optimizer groups: the rest (Φ, M) and the eigenvalues (their own schedule when the extras say so)."""
    rest = [p for name, p in op.named_parameters() if name != "evals_raw"]
    return [{"params": rest}, {"params": [op.evals_raw], **cfg.extras.eigenvalue_group()}]


def settings(cfg: SpectraConfig, *, progress: bool = True, compile: bool = False) -> TrainSettings:
    """The trainer's settings of a spectra run (a metrics record every step; ``compile``: the step
    through ``torch.compile``, which changes no result but the floating-point path)."""
    return TrainSettings(steps=cfg.steps, lr=cfg.lr, warmup=cfg.warmup, end_lr=cfg.lr_end,
                         decay_steps=cfg.steps - cfg.extras.refine_steps, hold=cfg.extras.hold_steps,
                         device=cfg.device, checkpoint_every=cfg.checkpoint_every, keep_checkpoints=2,
                         log_every=1, progress=progress, desc=f"spectra/{cfg.domain}", compile=compile)


def build_training(cfg: SpectraConfig, problem: Problem, *, method: ProcrustesMethod = "polar"
                   ) -> tuple[LearnedOperator, SpectraBatches, SpectraObjective, list[Hook], list[dict[str, Any]]]:
    """Operator, batch source, loss, hooks and optimizer groups of a run (the moment on ``cfg.device``)."""
    dev = resolve_device(cfg.device)
    moment = signal_moment(problem, cfg)
    moment = None if moment is None else moment.to(dev)
    op = make_operator(cfg, problem.domain.n)
    groups = operator_param_groups(op, cfg)
    objective = SpectraObjective(cfg, moment, method=method)
    hooks: list[Hook] = [objective]
    if cfg.extras.cluster_pca_every > 0:
        hooks.append(ClusterRotationHook(op, cfg, moment))
    return op, SpectraBatches(problem, cfg), objective, hooks, groups


def _check_config(out: Path, cfg: SpectraConfig, resume: bool) -> None:
    cfg_path = out / "config.json"
    if not (resume and cfg_path.exists() and (out / "checkpoints").is_dir()):
        return
    saved = SpectraConfig.from_dict(json.loads(cfg_path.read_text())).identity()
    if saved != cfg.identity():
        changed = sorted(k for k in saved if saved[k] != cfg.identity()[k])
        raise RunDirError(f"{cfg_path} holds a different configuration (differs in {', '.join(changed)}); "
                          "use a new --out or --no-resume")


def train(cfg: SpectraConfig, out: Path, *, data_root: str | None = None, resume: bool = True,
          progress: bool = True, max_steps: int | None = None, threads: int | None = 1,
          compile: bool = False) -> dict[str, Any]:
    """Train (resuming from out/checkpoints if present), then evaluate and write the report.

    ``max_steps`` stops early (an interrupted run) without evaluating. ``threads`` sets torch's
    intra-op threads and NumPy's BLAS threads for the run (default 1: the K×K SVDs and the signal
    sampler's products are small, and several threads on them run many times slower on a busy
    2-core machine; :mod:`niso_geom.threads`); None leaves both alone.
    """
    out = Path(out)
    with limit_threads(threads):
        _check_config(out, cfg, resume)
        if resume:  # config.json may be missing or edited: the checkpoints say what they were trained with
            verify_resume(out, cfg.identity())
        write_json(out / "config.json", cfg.to_dict())
        problem = build_problem(cfg, data_root)
        op, batches, objective, hooks, groups = build_training(cfg, problem)
        result = fit(op, batches, settings(cfg, progress=progress, compile=compile), loss_fn=objective, param_groups=groups,
                     hooks=hooks, out_dir=out, resume=resume, config=cfg.identity(), stop_at=max_steps)
        if result.steps < cfg.steps:
            return {"stopped_at": result.steps, "wall_seconds": result.wall_seconds}
        op.to("cpu")
        report = evaluate(op, problem, cfg)
        report["wall_seconds"] = result.wall_seconds
        report["steps_per_second"] = (cfg.steps - result.resumed_from) / max(result.train_seconds, 1e-9)
        write_report(out, op, problem, cfg, report)
        return report


def load_run(run_dir: Path, data_root: str | None = None) -> tuple[LearnedOperator, Problem, SpectraConfig]:
    """(op, problem, cfg) from a run directory's config and newest checkpoint (on the CPU)."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.json"
    if not cfg_file.is_file():
        raise RunDirError(f"{run_dir}: no config.json (is this a spectra run directory?)")
    cfg = SpectraConfig.from_dict(json.loads(cfg_file.read_text()))
    problem = build_problem(cfg, data_root)
    op = make_operator(cfg, problem.domain.n)
    last = latest_checkpoint(run_dir / "checkpoints")
    if last is None:
        raise RunDirError(f"{run_dir}/checkpoints holds no checkpoint")
    load_checkpoint(last, op, restore_rng=False, map_location="cpu")
    return op, problem, cfg
