"""``niso homnist run``: the homography-perturbed MNIST experiment (the paper's Table 1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from niso_geom.cli._common import add_data_root, format_table, parse_overrides


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
    r.add_argument("--out", type=Path, required=True, help="run folder")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA if available (default)")
    r.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice); 1 is often faster on a busy machine")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set steps=3000 --set enc_channels=32,64 (repeatable)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_root(r)
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from niso_geom.experiments import homnist

    if args.seeds < 1:
        raise SystemExit("niso: error: --seeds must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        cfg = homnist.preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc

    def announce(rec: dict) -> None:
        print(f"{homnist.METHOD_LABELS[rec['method']]} (seed {rec['seed']}): homNIST {100 * rec['accuracy']:.2f} %, "
              f"clean {100 * rec['clean_accuracy']:.2f} %, {rec['wall_seconds']:.0f} s", flush=True)

    results, records = homnist.run(cfg, args.out, methods=args.methods, seeds=range(args.seeds),
                                   data_root=args.data_root, device=args.device, progress=not args.no_progress,
                                   resume=not args.no_resume, on_record=announce)
    print()
    print(format_table(homnist.summary_rows(results, records), homnist.SUMMARY_HEADERS))
    checks = ", ".join(f"{label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}"
                       for label, ok in homnist.targets(results))
    print(f"\n{checks}")
    print(f"results.json and results.md in {args.out}")
    return 0
