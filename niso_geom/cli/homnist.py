"""``niso homnist run``: the homography-perturbed MNIST experiment (the paper's Table 1)."""

from __future__ import annotations

import argparse

from niso_geom.cli._common import add_data_root, add_experiment_run_args, experiment_config, print_experiment_summary


def register(sub: argparse._SubParsersAction) -> None:
    from niso_geom.experiments.homnist import EXTRA_METHODS, METHODS, PRESETS

    p = sub.add_parser("homnist", help="homography-perturbed MNIST: NIso pre-training, invariant classifier, "
                                       "ablations and the AE + augmentation baseline")
    hsub = p.add_subparsers(dest="homnist_command", metavar="{run}")
    hsub.required = True
    r = hsub.add_parser(
        "run", help="pre-train, train the heads on clean digits, evaluate on homNIST; write results.json/.md",
        description="Runs every method for every seed and writes config.json, metrics.jsonl, per-run "
                    "checkpoints, results.json and results.md to --out. An interrupted run resumes: "
                    "finished method/seeds are skipped and training continues from its last checkpoint.")
    r.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="tiny (a minute, smoke test) | cpu (2 CPU cores, about an hour; default) | "
                        "paper (the paper's sizes, for a GPU)")
    r.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default 1)")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS + EXTRA_METHODS),
                   metavar="METHOD", help=f"methods to run (default: {', '.join(METHODS)}; also available: "
                                          f"{', '.join(EXTRA_METHODS)}, the ae_aug autoencoder with its head "
                                          "trained on homography-augmented labelled digits)")
    add_experiment_run_args(r, set_example="--set steps=3000 enc_channels=32,64")
    r.add_argument("--jobs", type=int, default=1,
                   help="run this many (method, seed) pairs at once in worker processes, each with "
                        "threads/jobs torch threads (default 1; 2 on a 2-core CPU halves the wall time)")
    add_data_root(r)
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from niso_geom.experiments import homnist

    cfg = experiment_config(args, homnist)
    if args.jobs < 1:
        raise SystemExit(f"niso: error: --jobs must be >= 1, got {args.jobs}")

    def announce(rec: dict) -> None:
        print(f"{homnist.METHOD_LABELS[rec['method']]} (seed {rec['seed']}): homNIST {100 * rec['accuracy']:.2f} %, "
              f"clean {100 * rec['clean_accuracy']:.2f} %, {rec['wall_seconds']:.0f} s", flush=True)

    results, records = homnist.run(cfg, args.out, methods=args.methods, seeds=range(args.seeds),
                                   data_root=args.data_root, device=args.device, progress=not args.no_progress,
                                   resume=not args.no_resume, jobs=args.jobs, on_record=announce)
    print_experiment_summary(homnist.summary_rows(results, records), homnist.SUMMARY_HEADERS, homnist.targets(results),
                             f"results.json and results.md in {args.out}")
    return 0
