"""Running the pose experiment: one method and seed (:func:`run_method`), then every method over
seeds into a run folder (:func:`run`), and the mean ± standard error over seeds (:func:`aggregate`).

Interrupted runs resume: a finished method/seed (its ``result.json`` with the same config digest)
is skipped and unfinished training continues from its last checkpoint.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niso_geom.data.pose_pairs import PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.common import finished_result, standard_error
from niso_geom.experiments.pose.config import PoseConfig, build_grid, validate
from niso_geom.experiments.pose.data import PairBatches, build_pairs
from niso_geom.experiments.pose.evaluation import (
    error_summary,
    predict,
    references,
    save_predictions,
)
from niso_geom.experiments.pose.methods import METHODS, MethodContext
from niso_geom.experiments.pose.models import PoseRegressor
from niso_geom.experiments.pose.report import make_figure, write_markdown
from niso_geom.niso.pose import geodesic_deg
from niso_geom.runio import append_jsonl, write_json
from niso_geom.train import pretrain, resolve_device

__all__ = ["aggregate", "run", "run_method"]


def run_method(cfg: PoseConfig, method: str, seed: int, out_dir: str | os.PathLike, *, grid: SphereGrid,
               train_pairs: PosePairs, eval_pairs: PosePairs, device: str | torch.device = "cpu",
               progress: bool = True, resume: bool = True) -> dict[str, Any]:
    """Train and evaluate one method with one seed; returns its record (also ``out_dir/result.json``).

    With ``resume``, a finished record with the same config digest is returned (marked
    ``"resumed": True``, which is not saved), and unfinished training continues from its checkpoints.
    """
    setup_method = METHODS[method]  # an unknown name raises, listing the known ones
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and (rec := finished_result(result_path, cfg.digest())) is not None:
        return {**rec, "resumed": True}
    dev = resolve_device(device)
    t0 = time.perf_counter()

    # 1. the features the head sees (for niso: after training the operator)
    setup = setup_method(MethodContext(cfg, int(seed), grid, train_pairs, out, dev, progress, resume))
    operator_seconds = setup.info.get("operator_seconds", 0.0)
    t_features = time.perf_counter() - t0 - operator_seconds

    # 2. the pose head
    torch.manual_seed(seed + 1)
    net = setup.make_head()
    model = PoseRegressor(net, cfg.loss)
    head = pretrain(model, PairBatches(train_pairs, cfg.head_batch, seed=seed, stream=1, features=setup.features),
                    cfg.head_steps, lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=cfg.head_lr * 0.05, amp="off",
                    device=dev, out_dir=out / "head", resume=resume, progress=progress,
                    checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=f"{method} s{seed} head",
                    extra={"method": method, "seed": seed})

    # 3. held-out evaluation
    t1 = time.perf_counter()
    pred, true = predict(model, setup.features, cfg, eval_pairs, dev)
    errors = np.asarray(geodesic_deg(pred, true))
    t_eval = time.perf_counter() - t1
    save_predictions(out / "predictions.npz", pred, true, errors)
    rec = {
        "method": method,
        "seed": int(seed),
        **error_summary(errors),
        "num_eval": len(errors),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "wall_seconds": operator_seconds + max(t_features, 0.0) + head.wall_seconds + t_eval,
        "timings": {"operator": operator_seconds, "head": head.wall_seconds, "eval": t_eval},
        "head_final": head.final,
        **{k: v for k, v in setup.info.items() if k != "operator_seconds"},
        "config_digest": cfg.digest(),
    }
    write_json(result_path, rec)
    return rec


def aggregate(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """``{"methods": {m: {median_deg_mean, median_deg_se, mean_deg_mean, mean_deg_se, seeds, wall_seconds}}}``.

    Errors are geodesic angles in degrees on the held-out pairs; ``*_se`` is the standard error of
    the mean over seeds (sample std / sqrt(n); null for one seed); ``wall_seconds`` the total.
    Methods without records are left out.
    """
    out: dict[str, Any] = {"methods": {}}
    for m in methods:
        rs = sorted((r for r in records if r["method"] == m), key=lambda r: r["seed"])
        if not rs:
            continue
        entry: dict[str, Any] = {}
        for key in ("median_deg", "mean_deg"):
            v = np.array([r[key] for r in rs], dtype=np.float64)
            entry[f"{key}_mean"] = float(v.mean())
            entry[f"{key}_se"] = standard_error(v)
        entry["seeds"] = [int(r["seed"]) for r in rs]
        entry["wall_seconds"] = float(sum(r["wall_seconds"] for r in rs))
        out["methods"][m] = entry
    return out


def run(cfg: PoseConfig, out_dir: str | os.PathLike, *, methods: Sequence[str] | None = None,
        seeds: Sequence[int] = (0,), device: str | torch.device = "cpu", progress: bool = True, resume: bool = True,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method (default: ``METHODS.defaults()``) for every seed; write the run folder.

    Writes ``config.json``, ``metrics.jsonl`` (one record per finished method/seed),
    ``<method>/seed<k>/...``, ``results.json``, ``results.md`` and ``errors.png`` to ``out_dir``;
    returns (results, per-run records). ``on_record`` is called with each record as it finishes.
    """
    methods = list(dict.fromkeys(METHODS.validate(METHODS.defaults() if methods is None else methods)))
    validate(cfg)
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
                            "python": platform.python_version(), "methods": methods, "seeds": list(seeds)}
    write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0 = time.perf_counter()
    grid = build_grid(cfg)
    train_pairs, eval_pairs = build_pairs(cfg, grid, "train"), build_pairs(cfg, grid, "eval")

    records = []
    for seed in seeds:
        for m in methods:
            rec = run_method(cfg, m, int(seed), out / m / f"seed{int(seed)}", grid=grid, train_pairs=train_pairs,
                             eval_pairs=eval_pairs, device=dev, progress=progress, resume=resume)
            records.append(rec)
            if not rec.get("resumed"):  # one line per finished method/seed, not per invocation
                append_jsonl(out / "metrics.jsonl", rec)
            if on_record is not None:
                on_record(rec)
    results = aggregate(records, methods)
    results["references"] = references(cfg, grid, eval_pairs)
    results["eval_pairs"] = cfg.eval_pairs
    results["config_digest"] = cfg.digest()
    info["total_wall_seconds"] = time.perf_counter() - t0
    figure = make_figure(out, methods, int(seeds[0])) if len(seeds) else None
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", cfg, grid, results, records, info, figure)
    return results, records
