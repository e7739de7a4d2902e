"""``niso spectra`` (learn an operator from transformed signals and compare it with the analytic one)
and ``niso compare RUN_DIR`` (recompute a run's report from its checkpoint)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from niso_geom.cli._common import add_data_root, format_table, parse_overrides
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spectra", help="learn an operator from transformed signals; compare with the analytic spectrum")
    p.add_argument("--domain", choices=["torus", "sphere", "mesh"], default="torus")
    p.add_argument("--preset", choices=["tiny", "cpu", "paper"], default="cpu",
                   help="cpu: minutes on 2 cores (default); paper: the paper's sizes and steps (GPU); tiny: seconds. "
                        "Tie-breakers each preset adds to the paper's method (why: docs/spectra.md): " + preset_help())
    p.add_argument("--no-extras", action="store_true",
                   help="the paper's plain method at the preset's sizes: none of the project's tie-breakers "
                        "(decorrelation, cluster rotations, refinement phase, ...)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="where training runs: auto (default), CUDA if available; the report is computed on the CPU")
    p.add_argument("--signals", choices=["random", "mnist"], default=None,
                   help="power-law random fields (the presets') or MNIST digits (from the data root)")
    p.add_argument("--grid", choices=["dh", "equiangular"], default=None,
                   help="sphere grid: dh, the paper's Driscoll–Healy grid (the presets'), or equiangular, cell-centred "
                        "rings × twice as many longitudes, Fejér weights (16×32 at the cpu preset; docs/spectra.md)")
    p.add_argument("--out", type=Path, required=True, help="run directory (resumed if it holds checkpoints)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    p.add_argument("-k", type=int, default=None, help="override the operator rank K")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-dropout", action="store_true", help="disable spectral dropout (the official code has none)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override SpectraConfig fields, e.g. --set beta=0.25 lr_end=1e-3 (see docs/spectra.md)")
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    p.add_argument("--threads", type=int, default=1, help="torch and NumPy BLAS threads (default 1; see docs/spectra.md)")
    p.add_argument("--no-progress", action="store_true")
    add_data_root(p)
    p.set_defaults(func=cmd_spectra)

    c = sub.add_parser("compare", help="recompute report.json/report.md/figures of a spectra run from its checkpoint")
    c.add_argument("run_dir", type=Path)
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


def config_overrides(args: argparse.Namespace) -> dict:
    """The SpectraConfig overrides: ``--set KEY=VALUE`` items plus the flags that were given
    (``--signals``, ``--grid``, ``--steps``, ``-k``, ``--seed``, ``--no-dropout``). A field set both
    ways exits with an error rather than letting one silently win."""
    overrides: dict = parse_overrides(args.overrides)
    if args.grid is not None and args.domain != "sphere":
        raise SystemExit(f"niso: error: --grid chooses a sphere grid; --domain is {args.domain}")
    flags = {"signals": args.signals, "grid": args.grid, "steps": args.steps, "k": args.k, "seed": args.seed,
             "dropout": False if args.no_dropout else None, "device": args.device}
    for key, value in flags.items():
        if value is None:
            continue
        if key in overrides:
            flag = {"k": "-k", "dropout": "--no-dropout"}.get(key, f"--{key}")
            raise SystemExit(f"niso: error: {key} is set twice, by {flag} and by --set {key}={overrides[key]};"
                             " give it once")
        overrides[key] = value
    return overrides


def cmd_spectra(args: argparse.Namespace) -> int:
    try:
        cfg = preset(args.preset, args.domain, config_overrides(args), plain=args.no_extras)
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc
    resolve_device(cfg.device)  # a missing GPU is an error before any work
    if args.no_resume and args.out.exists():
        shutil.rmtree(args.out / "checkpoints", ignore_errors=True)
        (args.out / "config.json").unlink(missing_ok=True)
    report = train(cfg, args.out, data_root=args.data_root, resume=not args.no_resume,
                   progress=not args.no_progress, threads=args.threads)
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
