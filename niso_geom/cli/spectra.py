"""``niso spectra`` (learn an operator from transformed signals and compare it with the analytic one)
and ``niso compare RUN_DIR`` (recompute a run's report from its checkpoint)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from niso_geom.cli._common import (
    HELP,
    add_data_root,
    add_device_arg,
    add_domain_arg,
    add_grid_arg,
    add_res_arg,
    add_size_arg,
    add_threads_arg,
    check_output_folder,
    format_table,
    parse_overrides,
    parse_size,
    resolve_domain_arg,
)
from niso_geom.errors import UsageError
from niso_geom.experiments.spectra import (
    evaluate,
    load_run,
    preset,
    preset_help,
    train,
    write_report,
)
from niso_geom.train import resolve_device

SUMMARY = [("purity_mean", "mean purity"), ("eigenvalue_spearman", "eigenvalue Spearman"),
           ("eigenvalue_scale_fit_error", "eigenvalue error after scale fit"),
           ("tau_block_energy", "τ block energy"), ("tau_block_energy_random", "  (random orthogonal)"),
           ("commutator", "commutator with generators"), ("mass_correlation", "mass correlation"),
           ("mass_correlation_visible", "  (its part signals can see)"), ("mass_sin_correlation", "mass vs sin θ"),
           ("mass_cv", "mass coefficient of variation"),
           ("multiplicity_match", "eigenspaces with exact multiplicity"), ("wigner_error", "Wigner-D match error (model τ)"),
           ("wigner_error_unmasked", "Wigner-D match error (unmasked τ)"),
           ("wall_seconds", "wall seconds"), ("steps_per_second", "steps per second")]


DOMAIN_NAMES = {"torus": "torus", "sphere": "sphere", "icosphere": "mesh", "mesh": "mesh"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spectra", help="learn an operator from transformed signals; compare with the analytic spectrum")
    add_domain_arg(p, choices=list(DOMAIN_NAMES), default="torus",
                   what="torus (default; circular shifts), sphere (rotations) or icosphere (rotations; 'mesh' is the "
                        "same)")
    p.add_argument("--preset", choices=["tiny", "cpu", "paper"], default="cpu",
                   help="cpu: minutes on 2 cores (default); paper: the paper's sizes and steps (GPU); tiny: seconds. "
                        "Tie-breakers each preset adds to the paper's method (why: docs/spectra.md): " + preset_help())
    p.add_argument("--no-extras", action="store_true",
                   help="the paper's plain method at the preset's sizes: none of the project's tie-breakers "
                        "(decorrelation, cluster rotations, refinement phase, ...)")
    add_device_arg(p)
    p.add_argument("--signals", choices=["random", "mnist"], default=None,
                   help="power-law random fields (the presets') or MNIST digits (from the data root)")
    add_size_arg(p)
    add_grid_arg(p)
    add_res_arg(p)
    p.add_argument("--out", type=Path, required=True, help="run folder (resumed if it holds checkpoints)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    p.add_argument("-k", type=int, default=None, help="override the operator rank K")
    p.add_argument("--seed", type=int, default=None, help=HELP["seed"])
    p.add_argument("--no-dropout", action="store_true", help="disable spectral dropout (the official code has none)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config fields, e.g. --set beta=0.25 lr_end=1e-3 (several after one --set, or "
                        "repeated; docs/spectra.md)")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    add_threads_arg(p)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (minutes to compile; 0.70-0.85x the step after, docs/performance.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_root(p)
    p.set_defaults(func=cmd_spectra)

    c = sub.add_parser("compare", help="recompute report.json/report.md/figures of a spectra run from its checkpoint")
    c.add_argument("run_dir", type=Path, help="a spectra run folder")
    add_data_root(c)
    c.set_defaults(func=cmd_compare)


def print_summary(report: dict, title: str) -> None:
    rows = []
    for key, label in SUMMARY:
        v = report.get(key)
        if v is not None:
            rows.append([label, v])
    print(title)
    print(format_table(rows, ["metric", "value"]))
    print(f"learned vectors per analytic eigenspace: {report['multiplicity']}")
    print(f"analytic multiplicities:                 {report['analytic_multiplicity']}")


def _resolution(args: argparse.Namespace, domain: str) -> int | None:
    """``res`` of the config from --size (torus, square) or --res (sphere rows, icosphere level)."""
    if args.size is not None:
        if domain != "torus":
            raise UsageError(f"--size {args.size}: only the torus has a grid size (use --res for the {domain})")
        h, w = parse_size(args.size, "--size", minimum=3)
        if h != w:
            raise UsageError(f"--size {args.size}: the spectra experiment uses square tori")
        return h
    if args.res is not None and domain == "torus":
        raise UsageError(f"--res {args.res}: the torus has a grid size, not a resolution (use --size HxW)")
    return args.res


def config_overrides(args: argparse.Namespace) -> dict:
    """The SpectraConfig overrides: ``--set KEY=VALUE`` items plus the flags that were given
    (``--signals``, ``--grid``, ``--size``/``--res``, ``--steps``, ``-k``, ``--seed``, ``--no-dropout``,
    ``--device``). A field set both ways is an error rather than letting one silently win."""
    overrides: dict = parse_overrides(args.overrides)
    domain = DOMAIN_NAMES[resolve_domain_arg(args)]
    if args.grid is not None and domain != "sphere":
        raise UsageError(f"--grid {args.grid}: only the sphere has a grid kind (the domain is {args.domain})")
    flags = {"signals": args.signals, "grid": args.grid, "res": _resolution(args, domain), "steps": args.steps,
             "k": args.k, "seed": args.seed, "dropout": False if args.no_dropout else None,
             "device": None if args.device == "auto" and "device" in overrides else args.device}
    for key, value in flags.items():
        if value is None:
            continue
        if key in overrides:
            flag = {"k": "-k", "dropout": "--no-dropout", "res": "--size/--res"}.get(key, f"--{key}")
            raise UsageError(f"{key} is set twice, by {flag} and by --set {key}={overrides[key]}; give it once")
        overrides[key] = value
    return overrides


def cmd_spectra(args: argparse.Namespace) -> int:
    try:
        overrides = config_overrides(args)
        cfg = preset(args.preset, DOMAIN_NAMES[args.domain], overrides, plain=args.no_extras)
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc
    resolve_device(cfg.device)  # a missing GPU is an error before any work
    check_output_folder(args.out)
    if args.no_resume and args.out.exists():
        shutil.rmtree(args.out / "checkpoints", ignore_errors=True)
        (args.out / "config.json").unlink(missing_ok=True)
    report = train(cfg, args.out, data_root=args.data_root, resume=not args.no_resume,
                   progress=not args.no_progress, threads=args.threads, compile=args.compile)
    print_summary(report, f"spectra: {args.domain}, {args.preset} preset, K = {cfg.k}")
    print(f"report: {args.out / 'report.md'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    op, problem, cfg = load_run(args.run_dir, args.data_root)
    report = evaluate(op, problem, cfg)
    old = args.run_dir / "report.json"
    if old.exists():
        prev = json.loads(old.read_text())
        for k in ("wall_seconds", "steps_per_second"):
            if k in prev:
                report[k] = prev[k]
    write_report(args.run_dir, op, problem, cfg, report)
    print_summary(report, f"compare: {args.run_dir}")
    return 0
