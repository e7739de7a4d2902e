"""The conformal SHREC'11 run: every method for every seed, resumable, into one run folder.

A run folder holds ``config.json``, ``metrics.jsonl`` (a line per finished method/seed),
``<method>/seed<k>/{pretrain,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``,
``results.json`` (``{"num_classes": n, "methods": {method: {"accuracy_mean", "accuracy_se",
"seeds", "wall_seconds"}}, "by_k": ...}``, fractions; ``by_k``: accuracy per bin of the view
severity k and NIso's equivariance error per bin of the pair's k, :mod:`.severity`), ``results.md``,
``confusion.png``, ``mass_map.png`` and ``accuracy_by_k.png`` (:mod:`.report`). Interrupted runs resume: finished method/seeds are skipped, training continues
from its last checkpoint. Under ``torchrun`` every training loop and every feature pass is
data-parallel (:mod:`niso_geom.niso.distributed`); rank 0 writes.

Every model sees random views of **train** meshes only; every accuracy is over **every view of
every held-out test mesh** (the official pre-training "evaluation" reads training batches,
``docs/algorithm.md`` §7 items 2 and 10). Every classifier gets the same budget: ``head_steps``
updates of ``head_batch`` labelled views (random views as the paper, or with
``head_views="original"`` view 0 only).
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
from torch import nn

from niso_geom.experiments.common import aggregate, finished_result
from niso_geom.runio import append_jsonl, write_json
from niso_geom.train import distributed, pretrain, resolve_device

from .config import CShrec11Config
from .data import SeedData, load_data, seed_data
from .methods import METHODS, PRETRAININGS, MethodContext, Pretraining, method_info
from .report import write_report
from .severity import accuracy_by_bin, aggregate_by_k
from .views import LabelledViews, ViewPairs, confusion_matrix, predict_views

__all__ = ["pick_device", "run", "run_method"]


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """:func:`~niso_geom.train.resolve_device` (``cuda`` without a GPU raises
    :class:`~niso_geom.train.DeviceUnavailableError`), under DDP each rank's own device."""
    return distributed.rank_device(resolve_device(device))


def _train_head(cfg: CShrec11Config, model: nn.Module, source: Any, out: Path, *, device: torch.device,
                progress: bool, resume: bool, desc: str, extra: dict[str, Any],
                param_groups: list[dict[str, Any]] | None = None):
    """The classifier stage every method shares: ``head_steps`` x ``head_batch`` labelled views."""
    return pretrain(model, source, cfg.head_steps, lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=cfg.head_lr * 0.05,
                    amp="off", device=device, out_dir=out / "head", resume=resume, progress=progress,
                    checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=desc, extra=extra,
                    param_groups=param_groups)


def _pretrain(cfg: CShrec11Config, pre: Pretraining, data: SeedData, seed: int, folder: Path, *,
              device: torch.device, progress: bool, resume: bool, desc: str):
    """Pre-train ``pre``'s model on pairs of views of the train meshes (or resume/reuse ``folder``)."""
    torch.manual_seed(seed)
    model = pre.build(cfg)
    source = ViewPairs(data.images, data.train, cfg.batch, seed=seed, p_original=cfg.p_original)
    res = pretrain(model, source, cfg.steps, lr=cfg.lr, warmup=cfg.warmup, end_lr=cfg.end_lr, accum=cfg.accum,
                   amp=cfg.amp, device=device, out_dir=folder, resume=resume, progress=progress,
                   checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=desc,
                   extra={"method": pre.tag, "seed": seed})
    model.eval()
    return model, res


def run_method(cfg: CShrec11Config, method: str, seed: int, out_dir: str | os.PathLike, data: SeedData, *,
               device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
               pretrain_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train and evaluate one method with one seed on ``data``; returns its record (also written
    to ``out_dir/result.json``; with ``resume`` a finished record of the same config is reused).

    ``pretrain_dir``: the folder of the pre-training the method reuses (default ``out_dir/pretrain``).
    """
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and (rec := finished_result(result_path, cfg.digest())) is not None:
        return rec
    info = method_info(method)
    dev = pick_device(device)
    ctx = MethodContext(cfg, seed, data, dev, progress)
    timings: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}

    model = None
    pre_wall = 0.0
    if info.pretraining is not None:
        pre = PRETRAININGS[info.pretraining]
        model, pre_res = _pretrain(cfg, pre, data, seed, Path(pretrain_dir) if pretrain_dir is not None
                                   else out / "pretrain", device=dev, progress=progress, resume=resume,
                                   desc=f"{info.pretraining} s{seed} pretrain")
        pre_wall = timings["pretrain"] = pre_res.wall_seconds
        diagnostics["pretrain_final"] = pre_res.final
        if pre.diagnose is not None:
            t0 = time.perf_counter()
            diagnostics["pretrained"] = pre.diagnose(model, ctx, out)  # Table 4's error, also binned by k
            timings["diagnostics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    torch.manual_seed(seed + 1)
    head = info.setup(ctx, model)
    # the classifier trains on the train meshes' views of the same table it is tested on
    src = LabelledViews(head.table, data.train, torch.as_tensor(data.labels), cfg.head_batch, seed=seed,
                        views=None if cfg.head_views == "all" else [0])
    timings["features"] = time.perf_counter() - t0
    head_res = _train_head(cfg, head.classifier, src, out, device=dev, progress=progress, resume=resume,
                           desc=f"{method} s{seed} head", extra={"method": method, "seed": seed},
                           param_groups=head.param_groups)
    timings["head"] = head_res.wall_seconds

    # evaluation: every view of every held-out test mesh
    t0 = time.perf_counter()
    clf = head.classifier
    clf.eval()
    pred = predict_views(clf, head.table, data.test, desc=f"{method} s{seed} test", **ctx.eval_kw)
    true = data.labels[data.test]
    hits = pred == true[:, None]
    test_k = data.view_k(data.test)
    if head.after_eval is not None:
        diagnostics.update(head.after_eval())
    timings["eval"] = time.perf_counter() - t0
    rec = {
        "method": method,
        "seed": seed,
        "accuracy": float(np.mean(hits)),
        "num_test_meshes": len(data.test),
        "num_test_predictions": int(pred.size),
        "num_train_meshes": len(data.train),
        "per_view_accuracy": np.mean(hits, axis=0).tolist(),
        "by_k": None if test_k is None else accuracy_by_bin(hits, test_k),
        "confusion": confusion_matrix(pred, true, data.num_classes).tolist(),
        "wall_seconds": pre_wall + timings["features"] + timings["head"] + timings["eval"]
        + timings.get("diagnostics", 0.0),
        "timings": timings,
        "head_final": head_res.final,
        "diagnostics": diagnostics,
        "spec": info.spec(),
        "config_digest": cfg.digest(),
    }
    if distributed.context().is_main:
        write_json(result_path, rec)
    return rec


def run(cfg: CShrec11Config, out_dir: str | os.PathLike, *, methods: Sequence[str] | None = None,
        seeds: Sequence[int] = (0,), data_root: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None, device: str | torch.device = "auto", progress: bool = True,
        resume: bool = True, on_record: Callable[[dict[str, Any]], None] | None = None,
        dataset: Any | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method (default ``METHODS.defaults()``) for every seed; write the run folder;
    return (results, per-run records).

    ``dataset``: an already opened dataset with the interface of
    :class:`~niso_geom.data.cshrec11.CShrec11` (e.g. an in-memory stand-in in tests); None opens
    (building when missing) the one of ``cfg`` from ``cache_dir`` / ``data_root``.
    """
    methods = list(dict.fromkeys(METHODS.validate(METHODS.defaults() if methods is None else methods)))
    dev = pick_device(device)
    ctx = distributed.context()
    out = Path(out_dir)
    info = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "methods": methods, "seeds": list(seeds),
            "world_size": ctx.world_size}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0, c0 = time.perf_counter(), time.process_time()

    ds = dataset if dataset is not None else load_data(cfg, data_root, progress=progress, cache_dir=cache_dir)
    records = []
    for seed in seeds:
        data = seed_data(ds, int(seed), progress=progress)
        for m in methods:
            owner = method_info(m).pretraining
            pre = out / owner / f"seed{int(seed)}" / "pretrain" if owner is not None else None
            rec = run_method(cfg, m, int(seed), out / m / f"seed{int(seed)}", data, device=dev, progress=progress,
                             resume=resume, pretrain_dir=pre)
            records.append(rec)
            if ctx.is_main:
                append_jsonl(out / "metrics.jsonl", {k: v for k, v in rec.items() if k not in ("spec", "confusion")})
            if on_record is not None:
                on_record(rec)
        del data
    results = aggregate(records, methods, len(ds.class_names))
    by_k = aggregate_by_k(records, methods)
    if by_k is not None:
        results["by_k"] = by_k
    info["total_wall_seconds"] = time.perf_counter() - t0
    info["total_cpu_seconds"] = time.process_time() - c0
    if ctx.is_main:
        write_json(out / "results.json", results)
        write_report(out, cfg, results, records, info, methods=methods, seeds=seeds, class_names=ds.class_names)
    return results, records
