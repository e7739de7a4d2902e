"""``niso pose run``: relative rotation from the isometric map τ (a synthetic version of the paper's Table 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from niso_geom.cli._common import format_table, parse_overrides


def register(sub: argparse._SubParsersAction) -> None:
    from niso_geom.experiments.pose import METHODS, PRESETS

    p = sub.add_parser("pose", help="pose from τ: regress the rotation between two spherical signals from NIso's τ, "
                                    "the no-operator ablation and a raw-pair baseline")
    psub = p.add_subparsers(dest="pose_command", metavar="{run}")
    psub.required = True
    r = psub.add_parser(
        "run", help="train the operator and the pose heads, evaluate on held-out pairs; write results.json/.md",
        description="Runs every method for every seed and writes config.json, metrics.jsonl, per-run checkpoints "
                    "and predictions, results.json, results.md and errors.png to --out. An interrupted run "
                    "resumes: finished method/seeds are skipped and training continues from its last checkpoint.")
    r.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="tiny (seconds, smoke test) | cpu (2 CPU cores, about 10-15 min; default) | "
                        "paper (bigger grid, K and head, for a GPU)")
    r.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default 1)")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD",
                   help=f"methods to run (default: {', '.join(METHODS)})")
    r.add_argument("--out", type=Path, required=True, help="run folder")
    r.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"],
                   help="where the heads train (default cpu; auto: CUDA if available)")
    r.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: the small SVDs run fastest on one thread)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set signals=cap --set rotations=camera (repeatable)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from niso_geom.experiments import pose

    if args.seeds < 1:
        raise SystemExit("niso: error: --seeds must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"niso: error: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        cfg = pose.preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc

    def announce(rec: dict) -> None:
        print(f"{rec['method']} (seed {rec['seed']}): median {rec['median_deg']:.2f}°, mean {rec['mean_deg']:.2f}°, "
              f"{rec['wall_seconds']:.0f} s", flush=True)

    results, _ = pose.run(cfg, args.out, methods=args.methods, seeds=range(args.seeds), device=args.device,
                          progress=not args.no_progress, resume=not args.no_resume, on_record=announce)
    print()
    print(format_table(pose.summary_rows(results), pose.SUMMARY_HEADERS))
    checks = ", ".join(f"{label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}"
                       for label, ok in pose.targets(results))
    print(f"\n{checks}")
    print(f"results.json, results.md and errors.png in {args.out}")
    return 0
