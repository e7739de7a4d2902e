"""``niso pose run``: relative rotation from the isometric map τ (a synthetic version of the paper's Table 3)."""

from __future__ import annotations

import argparse
from typing import Any

from niso_geom.cli._common import (
    add_experiment_run_args,
    add_seeds_args,
    experiment_config,
    format_table,
    seed_range,
)
from niso_geom.experiments.pose import (
    METHODS,
    PRESETS,
    SUMMARY_HEADERS,
    preset,
    run,
    summary_rows,
)

PRESET_HELP = ("tiny (seconds, smoke test) | cpu (isotropic fields, Haar rotations; 2 CPU cores, about 10-15 min; "
               "default) | camera (caps, rotations <= 45°; cpu sizes) | paper (bigger grid, K and head, for a GPU)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pose", help="pose from τ: regress the rotation between two spherical signals from NIso's τ, "
                                    "the no-operator ablation and a raw-pair baseline")
    psub = p.add_subparsers(dest="pose_command", metavar="{run}")
    psub.required = True
    r = psub.add_parser(
        "run", help="train the operator and the pose heads, evaluate on held-out pairs; write results.json/.md",
        description="Runs every method for every seed and writes config.json, metrics.jsonl, per-run checkpoints "
                    "and predictions, results.json, results.md and errors.png to --out. An interrupted run "
                    "resumes: finished method/seeds are skipped and training continues from its last checkpoint.")
    r.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help=PRESET_HELP)
    add_seeds_args(r)
    r.add_argument("--methods", nargs="+", default=list(METHODS.defaults()), choices=METHODS.choices(),
                   metavar="METHOD", help=f"methods to run (default: {', '.join(METHODS.defaults())}). "
                                          f"{METHODS.help_text()}")
    add_experiment_run_args(r, set_example="--set signals=cap rotations=camera")
    r.set_defaults(func=cmd_run)


def announce(rec: dict[str, Any]) -> None:
    """One line per finished method/seed."""
    print(f"{rec['method']} (seed {rec['seed']}): median {rec['median_deg']:.2f}°, mean {rec['mean_deg']:.2f}°, "
          f"{rec['wall_seconds']:.0f} s", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = experiment_config(args, preset)
    results, _ = run(cfg, args.out, methods=args.methods, seeds=seed_range(args), device=args.device,
                     progress=not args.no_progress, resume=not args.no_resume, on_record=announce)
    print()
    print(format_table(summary_rows(results), SUMMARY_HEADERS))
    print(f"\nresults.json, results.md and errors.png in {args.out}")
    return 0
