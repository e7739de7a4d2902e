"""Shared CLI helpers: domain arguments, tables, output folders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom.runio import write_json  # noqa: F401  (re-exported for the commands)
from niso_geom.threads import set_threads

GRID_ALIASES = {
    "equiangular": "equiangular", "ea": "equiangular",
    "centred": "equiangular-centred", "equiangular-centred": "equiangular-centred",
    "dh": "driscoll-healy", "driscoll-healy": "driscoll-healy",
    "gl": "gauss-legendre", "gauss-legendre": "gauss-legendre",
    "healpix": "healpix",
}


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="folder holding the shared data and SHA256SUMS (default: $NISO_GEOM_DATA, then ../shared/data)")


def add_domain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain", help="torus | sphere | icosphere | a mesh file (OBJ/OFF/PLY) | a mesh name in the data root (e.g. spot)")
    p.add_argument("--size", default="16x16", help="torus grid HxW (default 16x16)")
    p.add_argument("--stencil", default="9pt", choices=["5pt", "9pt"], help="torus stencil (default 9pt, the paper's)")
    p.add_argument("--grid", default="dh", choices=sorted(GRID_ALIASES), help="sphere grid kind (default dh)")
    p.add_argument("--res", type=int, default=None,
                   help="sphere resolution: nlat (equiangular, gl, centred), bandwidth B (dh), nside (healpix); icosphere level")
    add_data_root(p)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise SystemExit(f"niso: error: --size must look like 16x16, got {text!r}") from exc
    return h, w


def build_domain(args: argparse.Namespace):
    from niso_geom import SphereGrid, TorusGrid, TriMesh

    spec = args.domain
    if spec == "torus":
        h, w = parse_size(args.size)
        return TorusGrid(h, w, stencil=args.stencil)
    if spec == "sphere":
        grid = GRID_ALIASES[args.grid]
        if grid == "driscoll-healy":
            return SphereGrid.driscoll_healy(args.res or 8)
        if grid == "healpix":
            return SphereGrid.healpix(args.res or 8)
        if grid == "gauss-legendre":
            return SphereGrid.gauss_legendre(args.res or 32)
        return SphereGrid.equiangular(args.res or 48, poles=grid == "equiangular")
    if spec == "icosphere":
        return TriMesh.icosphere(args.res if args.res is not None else 4)
    path = Path(spec)
    if not path.exists():
        from niso_geom.shared_data import mesh_path

        path = mesh_path(spec, args.data_root)
    return TriMesh.load(path)


def format_table(rows: list[list[Any]], headers: list[str]) -> str:
    """A plain, aligned text table."""
    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.6g}"
        return str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    numeric = [all(isinstance(r[i], (int, float, np.integer, np.floating)) for r in rows) for i in range(len(headers))]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def just(text: str, i: int) -> str:
        return text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])

    line = "  ".join(just(h, i) for i, h in enumerate(headers))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(just(c, i) for i, c in enumerate(r)) for r in cells]
    return "\n".join([line, sep, *body])


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` (repeated ``--set``) -> {KEY: VALUE}; a malformed item exits with an error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"niso: error: --set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def add_experiment_run_args(r: argparse.ArgumentParser, *, set_example: str, device_default: str = "auto",
                            device_help: str = "auto: CUDA if available (default)", threads_default: int | None = None,
                            threads_help: str = "torch and NumPy BLAS threads (default: their own choice); 1 is often "
                                                "faster on a busy machine") -> None:
    """The arguments every ``niso EXPERIMENT run`` shares, after --preset/--seeds/--methods.

    Adds --out, --device, --threads, --set KEY=VALUE [KEY=VALUE ...] (repeatable), --no-resume, --no-progress.
    """
    r.add_argument("--out", type=Path, required=True, help="run folder")
    r.add_argument("--device", default=device_default, choices=["auto", "cpu", "cuda"], help=device_help)
    r.add_argument("--threads", type=int, default=threads_default, help=threads_help)
    r.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help=f"override config fields, e.g. {set_example} (several after one --set, or repeated)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def experiment_config(args: argparse.Namespace, experiment: Any) -> Any:
    """Check --seeds/--threads, set torch's and NumPy's BLAS threads and return ``experiment.preset(--preset, **--set)``."""
    if args.seeds < 1:
        raise SystemExit(f"niso: error: --seeds must be >= 1, got {args.seeds}")
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"niso: error: --threads must be >= 1, got {args.threads}")
        set_threads(args.threads)  # torch's and NumPy's BLAS (niso_geom.threads)
    try:
        return experiment.preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        raise SystemExit(f"niso: error: {exc}") from exc


def print_experiment_summary(rows: list[list[Any]], headers: list[str], targets: Any, written: str) -> None:
    """The results table, the issue-target checks (label, True/False/None) and where the files are."""
    print()
    print(format_table(rows, headers))
    checks = ", ".join(f"{label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}" for label, ok in targets)
    print(f"\n{checks}")
    print(written)
