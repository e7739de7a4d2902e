"""A homNIST run: every method for every seed, in turn or in worker processes; the run folder.

A run folder holds ``config.json``, ``metrics.jsonl`` (one record per finished method/seed),
``<method>/seed<k>/{pretrain,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``,
``results.json`` (``{"num_classes": 10, "methods": {method: {"accuracy_mean", "accuracy_se",
"accuracy_se_digits", "clean_accuracy_mean", "clean_accuracy_se_digits", "seeds",
"wall_seconds"}}}``, accuracies as fractions: ``accuracy_se`` across seeds, ``*_se_digits``
across test digits) and ``results.md``. Interrupted runs
resume: finished method/seeds are skipped, unfinished training continues from its last
checkpoint.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from niso_geom.experiments.common import aggregate as _aggregate
from niso_geom.experiments.homnist.config import HomNISTConfig
from niso_geom.experiments.homnist.data import HomNISTData, load_data
from niso_geom.experiments.homnist.methods import METHODS, method_spec
from niso_geom.experiments.homnist.models import NUM_CLASSES
from niso_geom.experiments.homnist.pipeline import digit_standard_error, run_method
from niso_geom.experiments.homnist.report import write_markdown
from niso_geom.runio import append_jsonl, write_json
from niso_geom.threads import set_threads
from niso_geom.train import resolve_device

__all__ = ["aggregate", "run"]


#: What a record keeps out of ``metrics.jsonl`` (long per-digit lists; they stay in result.json).
_BULKY = ("spec", "per_digit_correct", "clean_per_digit_correct")


def _digit_se_of_mean(records: Sequence[dict[str, Any]], key: str, per_key: str | None) -> float | None:
    """Standard error across test digits of the seed-mean accuracy: each digit's accuracy is
    averaged over the seeds (every seed sees the same digits), then sd / sqrt(digits)."""
    if not records or any(key not in r for r in records):
        return None
    counts = np.mean([np.asarray(r[key], dtype=np.float64) for r in records], axis=0)
    return digit_standard_error(counts, int(records[0][per_key]) if per_key else 1)


def aggregate(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """``{"num_classes": 10, "methods": {m: {accuracy_mean, accuracy_se, accuracy_se_digits,
    clean_accuracy_mean, clean_accuracy_se_digits, seeds, wall_seconds}}}``
    (:func:`~niso_geom.experiments.common.aggregate`, plus the standard errors across test digits;
    None where a record lacks its per-digit counts)."""
    out = _aggregate(records, methods, NUM_CLASSES)
    for m, entry in out["methods"].items():
        rs = sorted((r for r in records if r["method"] == m), key=lambda r: r["seed"])
        entry["accuracy_se_digits"] = _digit_se_of_mean(rs, "per_digit_correct", "warps_per_digit")
        clean = [r["clean_accuracy"] for r in rs if "clean_accuracy" in r]
        entry["clean_accuracy_mean"] = float(np.mean(clean)) if len(clean) == len(rs) else None
        entry["clean_accuracy_se_digits"] = _digit_se_of_mean(rs, "clean_per_digit_correct", None)
    return out


def _load(cfg: HomNISTConfig, data_root: str | os.PathLike | None, progress: bool) -> HomNISTData:
    return load_data(cfg.homnist_seed, cfg.test_digits, data_root, progress=progress, pick=cfg.test_pick)


def _task_waves(cfg: HomNISTConfig, methods: Sequence[str], seeds: Sequence[int]) -> list[list[tuple[str, int]]]:
    """(method, seed) tasks in two waves: those that own their pre-training, then those that reuse
    another method's (``ae_aug_labels`` after ``ae_aug``), so parallel tasks never share a folder."""
    first = [(m, int(s)) for s in seeds for m in methods if method_spec(cfg, m).pretrain_of == m]
    second = [(m, int(s)) for s in seeds for m in methods if (m, int(s)) not in first]
    return [w for w in (first, second) if w]


def _method_seed(cfg: HomNISTConfig, method: str, seed: int, out: Path, data: HomNISTData, *,
                 device: str | torch.device, progress: bool, resume: bool) -> dict[str, Any]:
    """:func:`run_method` in the run folder layout (pre-training in the folder of ``pretrain_of``)."""
    pretrain_of = method_spec(cfg, method).pretrain_of
    return run_method(cfg, method, seed, out / method / f"seed{seed}", data, device=device, progress=progress,
                      resume=resume, pretrain_dir=out / pretrain_of / f"seed{seed}" / "pretrain")


def _worker(cfg: HomNISTConfig, method: str, seed: int, out: Path, data_root: str | os.PathLike | None,
            device: str, resume: bool, threads: int) -> dict[str, Any]:
    """One (method, seed) in a worker process (own data loading, one progress-free run)."""
    set_threads(threads)  # torch's and NumPy's BLAS
    return _method_seed(cfg, method, seed, out, _load(cfg, data_root, progress=False), device=device,
                        progress=False, resume=resume)


def run(cfg: HomNISTConfig, out_dir: str | os.PathLike, *, methods: Sequence[str] = METHODS.defaults(),
        seeds: Sequence[int] = (0,), data_root: str | os.PathLike | None = None,
        device: str | torch.device = "auto", progress: bool = True, resume: bool = True, jobs: int = 1,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method for every seed; write the run folder; return (results, per-run records).

    ``jobs`` > 1 runs that many (method, seed) pairs at once in worker processes (CPU: each gets
    ``max(1, threads // jobs)`` torch threads; results are identical to ``jobs=1``). ``on_record``
    is called with each finished (method, seed) record.
    """
    methods = list(METHODS.validate(dict.fromkeys(methods)))
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(), "jobs": jobs,
            "python": platform.python_version(), "methods": methods, "seeds": list(seeds)}
    write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0 = time.perf_counter()
    data = _load(cfg, data_root, progress)  # also fills the homNIST cache before workers read it

    finished: dict[tuple[str, int], dict[str, Any]] = {}

    def record(rec: dict[str, Any]) -> None:
        finished[(rec["method"], rec["seed"])] = rec
        append_jsonl(out / "metrics.jsonl", {k: v for k, v in rec.items() if k not in _BULKY})
        if on_record is not None:
            on_record(rec)

    waves = _task_waves(cfg, methods, seeds)
    if jobs == 1:
        for wave in waves:
            for m, seed in wave:
                record(_method_seed(cfg, m, seed, out, data, device=dev, progress=progress, resume=resume))
    else:
        threads = max(1, torch.get_num_threads() // jobs)
        bar = tqdm(total=sum(len(w) for w in waves), desc=f"homNIST ({jobs} jobs)", unit="run", disable=not progress)
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            for wave in waves:
                futures = [pool.submit(_worker, cfg, m, seed, out, data_root, str(dev), resume, threads)
                           for m, seed in wave]
                for fut in cf.as_completed(futures):
                    record(fut.result())
                    bar.update()
        bar.close()
    records = [finished[(m, int(s))] for s in seeds for m in methods]
    results = aggregate(records, methods)
    info["total_wall_seconds"] = time.perf_counter() - t0
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", cfg, results, records, info)
    return results, records
