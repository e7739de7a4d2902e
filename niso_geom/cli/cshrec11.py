"""``niso cshrec11 run``: conformal SHREC'11 classification, NIso against baselines (the paper's Table 2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from niso_geom.cli._common import (
    add_data_root,
    add_experiment_run_args,
    add_seeds_args,
    experiment_config,
    format_table,
    seed_range,
)
from niso_geom.experiments.cshrec11 import (
    METHOD_LABELS,
    METHODS,
    PRESETS,
    SUMMARY_HEADERS,
    preset,
    run,
    summary_rows,
)
from niso_geom.train import distributed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cshrec11", help="conformal SHREC'11: NIso pre-training and invariant classifier against "
                                        "AE + aug., a plain CNN, SH power spectra and an e3nn network")
    csub = p.add_subparsers(dest="cshrec11_command", metavar="{run}")
    csub.required = True
    r = csub.add_parser(
        "run", help="build the data if needed, pre-train, train every classifier, evaluate on held-out meshes",
        description="Runs every method for every seed (seed k uses split k) and writes config.json, "
                    "metrics.jsonl, per-run checkpoints, results.json, results.md, confusion.png and "
                    "mass_map.png to --out. The conformal SHREC'11 views are built into the cache from "
                    "the shared shrec_16 data when missing. An interrupted run resumes. Under torchrun "
                    "(e.g. `torchrun --nproc_per_node 2 $(which niso) cshrec11 run ...`) training is "
                    "data-parallel (DDP; gloo on CPU, NCCL on GPUs).")
    r.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="tiny (a minute, smoke test: 3 classes, 16x32) | cpu (25 classes, 48x96, one seed of "
                        "every method in about an hour on 2 cores; default) | paper (96x192, the paper's sizes, GPU)")
    add_seeds_args(r, what=', seed k on split k')
    r.add_argument("--methods", nargs="+", default=list(METHODS.defaults()), choices=list(METHODS.choices()),
                   metavar="METHOD", help=f"methods to run (default: {', '.join(METHODS.defaults())}). "
                                          f"{METHODS.help_text()}")
    add_experiment_run_args(r, set_example="--set steps=3000 enc_channels=16,32,64")
    r.add_argument("--cache-dir", type=Path, default=None,
                   help="dataset cache root (default: $NISO_GEOM_CACHE_DIR, else the user cache folder)")
    add_data_root(r)
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = experiment_config(args, preset)
    ctx = distributed.init_from_env()

    def announce(rec: dict[str, Any]) -> None:
        if ctx.is_main:
            print(f"{METHOD_LABELS[rec['method']]} (seed {rec['seed']}): test {100 * rec['accuracy']:.2f} % "
                  f"over {rec['num_test_predictions']} views, {rec['wall_seconds']:.0f} s", flush=True)

    results, _ = run(cfg, args.out, methods=args.methods, seeds=seed_range(args), data_root=args.data_root,
                     cache_dir=args.cache_dir, device=args.device, progress=not args.no_progress and ctx.is_main,
                     resume=not args.no_resume, on_record=announce)
    if ctx.is_main:
        print()
        print(format_table(summary_rows(results), SUMMARY_HEADERS))
        print(f"\nresults.json, results.md and figures in {args.out}")
    return 0
