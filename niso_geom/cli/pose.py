"""``niso pose run``: relative rotation from the isometric map τ (a synthetic version of the paper's Table 3)."""

from __future__ import annotations

import argparse

from niso_geom.cli._common import add_experiment_run_args, experiment_config, print_experiment_summary


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
    add_experiment_run_args(r, set_example="--set signals=cap rotations=camera", device_default="cpu",
                            device_help="where the heads train (default cpu; auto: CUDA if available)", threads_default=1,
                            threads_help="torch and NumPy BLAS threads (default 1: the small SVDs run fastest on one thread)")
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from niso_geom.experiments import pose

    cfg = experiment_config(args, pose)

    def announce(rec: dict) -> None:
        print(f"{rec['method']} (seed {rec['seed']}): median {rec['median_deg']:.2f}°, mean {rec['mean_deg']:.2f}°, "
              f"{rec['wall_seconds']:.0f} s", flush=True)

    results, _ = pose.run(cfg, args.out, methods=args.methods, seeds=range(args.seeds), device=args.device,
                          progress=not args.no_progress, resume=not args.no_resume, on_record=announce)
    print_experiment_summary(pose.summary_rows(results), pose.SUMMARY_HEADERS, pose.targets(results),
                             f"results.json, results.md and errors.png in {args.out}")
    return 0
