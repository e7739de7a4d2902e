"""``niso cshrec11 run``: conformal SHREC'11 classification, NIso against baselines (the paper's Table 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from niso_geom.cli._common import add_data_root, format_table, parse_overrides


def register(sub: argparse._SubParsersAction) -> None:
    from niso_geom.experiments.cshrec11 import EXTRA_METHODS, METHODS, PRESETS

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
    r.add_argument("--seeds", type=int, default=1, help="number of seeds 0..N-1, each with its own split (default 1)")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS + EXTRA_METHODS),
                   metavar="METHOD", help=f"methods to run (default: {', '.join(METHODS)})")
    r.add_argument("--out", type=Path, required=True, help="run folder")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA if available (default)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice); 1 is often faster on a busy machine")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set steps=3000 --set enc_channels=16,32,64 (repeatable)")
    r.add_argument("--cache-dir", type=Path, default=None,
                   help="dataset cache root (default: $NISO_GEOM_CACHE_DIR, else the user cache folder)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_root(r)
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from niso_geom.experiments import cshrec11
    from niso_geom.niso import distributed

    if args.seeds < 1:
        raise SystemExit("niso: error: --seeds must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        cfg = cshrec11.preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc
    ctx = distributed.init_from_env()

    def announce(rec: dict) -> None:
        if ctx.is_main:
            print(f"{cshrec11.METHOD_LABELS[rec['method']]} (seed {rec['seed']}): test {100 * rec['accuracy']:.2f} % "
                  f"over {rec['num_test_predictions']} views, {rec['wall_seconds']:.0f} s", flush=True)

    results, records = cshrec11.run(cfg, args.out, methods=args.methods, seeds=range(args.seeds),
                                    data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
                                    progress=not args.no_progress and ctx.is_main, resume=not args.no_resume,
                                    on_record=announce)
    if ctx.is_main:
        print()
        print(format_table(cshrec11.summary_rows(results), cshrec11.SUMMARY_HEADERS))
        checks = ", ".join(f"{label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}"
                           for label, ok in cshrec11.targets(results))
        print(f"\n{checks}")
        print(f"results.json, results.md and figures in {args.out}")
    return 0
