"""``niso homnist run``, ``niso homnist equivariance`` and ``niso homnist size``: the
homography-perturbed MNIST experiment (the paper's Table 1), its equivariance diagnostic and the
size of a config's encoder."""

from __future__ import annotations

import argparse
from typing import Any

from niso_geom.cli._common import (
    HELP,
    add_data_root,
    add_experiment_run_args,
    add_seeds_args,
    experiment_config,
    format_table,
    parse_overrides,
    seed_range,
)
from niso_geom.experiments import homnist
from niso_geom.experiments.homnist import (
    METHOD_LABELS,
    METHODS,
    PRESETS,
    SUMMARY_HEADERS,
    HomNISTConfig,
    encoder_cost,
    equivariance_report,
    niso_methods,
    run,
    summary_rows,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("homnist", help="homography-perturbed MNIST: NIso pre-training, invariant classifier, "
                                       "ablations and the AE + augmentation baseline")
    hsub = p.add_subparsers(dest="homnist_command", metavar="{run,equivariance,size}")
    hsub.required = True
    r = hsub.add_parser(
        "run", help="pre-train, train the heads on clean digits, evaluate on homNIST; write results.json/.md",
        description="Runs every method for every seed and writes config.json, metrics.jsonl, per-run "
                    "checkpoints, results.json and results.md to --out. An interrupted run resumes: "
                    "finished method/seeds are skipped and training continues from its last checkpoint.")
    r.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="tiny (a minute, smoke test) | cpu (2 CPU cores, about an hour; default) | "
                        "cpu_official_head (cpu with the official classifier protocol) | "
                        "paper (the paper's sizes and protocol, for a GPU: --device cuda [--set amp=bf16])")
    add_seeds_args(r)
    r.add_argument("--methods", nargs="+", default=list(METHODS.defaults()), choices=list(METHODS.choices()),
                   metavar="METHOD", help=f"methods to run (default: {', '.join(METHODS.defaults())}). "
                                          f"{METHODS.help_text()}")
    add_experiment_run_args(r, set_example="--set steps=3000 enc_channels=32,64")
    r.add_argument("--jobs", type=int, default=1,
                   help="run this many (method, seed) pairs at once in worker processes, each with "
                        "threads/jobs torch and BLAS threads (default 1; 2 on a 2-core CPU halves the wall time)")
    add_data_root(r)
    r.set_defaults(func=cmd_run)

    e = hsub.add_parser(
        "equivariance", help="how equivariant a finished NIso method is on the test homographies, "
                             "and its accuracy by quartile of the residual",
        description="For clean test digits and their homNIST warps, the relative residual of "
                    "ẑ(Tx) ≈ τ ẑ(x) with the loss's masked τ and with the best rotation, per mode and "
                    "against a chance level, and the head's accuracy split by residual quartile. "
                    "Writes equivariance.json beside the method's result.json.")
    e.add_argument("run_dir", help="a homNIST run folder (from niso homnist run)")
    e.add_argument("--method", default="niso", choices=list(niso_methods()))
    e.add_argument("--seed", type=int, default=0, help=HELP["seed"].replace("the preset's", "0"))
    e.add_argument("--digits", type=int, default=100, help="clean test digits, each with its 32 warps (default 100)")
    add_data_root(e)
    e.set_defaults(func=cmd_equivariance)

    z = hsub.add_parser(
        "size", help="parameters, multiply-adds per image and receptive field of a config's encoder and decoder",
        description="Builds nothing that trains: counts on the meta device. FLOPs per pre-training step "
                    "≈ 2 × 3 × (2·batch encoder + 2·batch decoder passes) × MACs.")
    z.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    z.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config fields, e.g. enc_depth=1,3 enc_channels=24,48")
    z.set_defaults(func=cmd_size)


def cmd_run(args: argparse.Namespace) -> int:
    cfg: HomNISTConfig = experiment_config(args, homnist.preset)
    if args.jobs < 1:
        raise SystemExit(f"niso: error: --jobs must be >= 1, got {args.jobs}")

    def announce(rec: dict[str, Any]) -> None:
        print(f"{METHOD_LABELS[rec['method']]} (seed {rec['seed']}): homNIST {100 * rec['accuracy']:.2f} %, "
              f"clean {100 * rec['clean_accuracy']:.2f} %, {rec['wall_seconds']:.0f} s", flush=True)

    results, records = run(cfg, args.out, methods=args.methods, seeds=seed_range(args), data_root=args.data_root,
                           device=args.device, progress=not args.no_progress, resume=not args.no_resume,
                           jobs=args.jobs, on_record=announce)
    print()
    print(format_table(summary_rows(results, records), SUMMARY_HEADERS))
    print(f"results.json and results.md in {args.out}")
    return 0


def cmd_equivariance(args: argparse.Namespace) -> int:
    rep = equivariance_report(args.run_dir, args.method, args.seed, args.digits, data_root=args.data_root)
    print(f"{rep['method']} seed {rep['seed']}: {rep['images']} warped images of {rep['digits']} test digits")
    print(f"relative residual |ẑ(Tx) − τ ẑ(x)|²/|ẑ(Tx)|²: masked τ {rep['residual_masked_mean']:.4f}, "
          f"best rotation {rep['residual_free_mean']:.4f} (median {rep['residual_free_median']:.4f}), "
          f"chance (another digit) {rep['residual_chance_mean']:.4f}; "
          f"best rotation / chance {rep['residual_free_over_chance']:.3f}")
    print(f"homNIST accuracy {100 * rep['accuracy']:.2f} % (clean {100 * rep['clean_accuracy']:.2f} %); "
          "by quartile of the best-rotation residual:")
    for q in rep["accuracy_by_residual_quartile"]:
        acc = "–" if q["accuracy"] is None else f"{100 * q['accuracy']:.1f} %"
        print(f"  {q['residual_from']:.4f} – {q['residual_to']:.4f}: {acc} of {q['images']}")
    print(f"equivariance.json in {args.run_dir}/{rep['method']}/seed{rep['seed']}")
    return 0


def cmd_size(args: argparse.Namespace) -> int:
    try:
        cfg = homnist.preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc
    c = encoder_cost(cfg)
    step_macs = 2 * cfg.batch * (c["encoder_macs"] + c["decoder_macs"])  # a pair: 2B encodes, 2B decodes
    print(f"preset {args.preset} {' '.join(args.overrides)}".rstrip())
    print(f"encoder {cfg.enc_channels} depth {cfg.enc_depth} lift {cfg.lift}: {c['encoder_parameters']:,} parameters, "
          f"{c['encoder_macs'] / 1e6:.1f} M MACs per image, receptive field {c['receptive_field']} px")
    print(f"decoder {cfg.dec_channels} depth {cfg.dec_depth}: {c['decoder_parameters']:,} parameters, "
          f"{c['decoder_macs'] / 1e6:.1f} M MACs per image")
    print(f"pre-training step (batch {cfg.batch} pairs): {6 * step_macs / 1e9:.1f} GFLOP "
          f"(forward + backward ≈ 3 × forward); {cfg.steps:,} steps: {6 * step_macs * cfg.steps / 1e15:.2f} PFLOP")
    return 0
