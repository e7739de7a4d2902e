"""Shared CLI helpers: domain arguments, tables, output folders."""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom.errors import UsageError
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
    p.add_argument("domain", help="torus | sphere | icosphere | a mesh file (OBJ/OFF/PLY/STL) | a mesh name in the data root (e.g. spot)")
    p.add_argument("--size", default=None, help="torus grid HxW, each ≥ 3 (default 16x16)")
    p.add_argument("--stencil", default="9pt", choices=["5pt", "9pt"], help="torus stencil (default 9pt, the paper's)")
    p.add_argument("--grid", default="dh", choices=sorted(GRID_ALIASES), help="sphere grid kind (default dh)")
    p.add_argument("--res", type=int, default=None,
                   help="sphere resolution ≥ 1: nlat (equiangular, gl, centred; default 48, 32), bandwidth B (dh; "
                        "default 8), nside (healpix, a power of 2; default 8); icosphere level ≥ 0 (default 4)")
    add_data_root(p)


def parse_size(text: str, flag: str = "--size", minimum: int = 1) -> tuple[int, int]:
    """``"HxW"`` -> (H, W); anything else (or a side below ``minimum``) is a :class:`UsageError` naming ``flag``."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError as exc:
        raise UsageError(f"{flag} must look like 16x16 (HxW), got {text!r}") from exc
    if h < minimum or w < minimum:
        raise UsageError(f"{flag} {text}: each side must be ≥ {minimum}")
    return h, w


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of the system's available memory, the
    cgroup's remaining limit and the address-space rlimit; None when none is known."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            limits.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


# bytes per point measured on icosphere levels 5-6 (`niso domain info` / `spectrum`), rounded up
BYTES_PER_POINT = {"info": 3 * 1024, "spectrum": 6 * 1024}


def check_fits(what: str, n_points: int, *, task: str = "info", k: int = 0, extra_bytes: int = 0) -> None:
    """Refuse up front (:class:`UsageError`, with the estimate) a domain that would not fit in memory."""
    need = n_points * (BYTES_PER_POINT[task] + 24 * k) + extra_bytes
    have = available_memory()
    if have is not None and need > have:
        raise UsageError(f"{what}: {n_points:,} points need about {need / 2**30:.1f} GiB, "
                         f"more than the {have / 2**30:.1f} GiB available; choose a smaller size")


def _sphere_points(grid: str, res: int) -> tuple[int, int]:
    """(points, extra bytes) of a sphere grid at resolution ``res``."""
    if grid == "driscoll-healy":
        return (2 * res) ** 2, 0
    if grid == "healpix":
        n = 12 * res * res
        return n, 3 * 8 * (2 * res + 1) ** 2 * n  # the quadrature fit's dense harmonic matrix
    return 2 * res * res, 0


SPHERE_DEFAULT_RES = {"driscoll-healy": 8, "healpix": 8, "gauss-legendre": 32,
                      "equiangular": 48, "equiangular-centred": 48}


def build_domain(args: argparse.Namespace, *, task: str = "info", k: int = 0):
    """The domain the arguments describe; bad values are :class:`UsageError` naming the flag.

    ``task`` ("info" or "spectrum") and ``k`` size the memory check made before building.
    """
    from niso_geom import SphereGrid, TorusGrid, TriMesh

    spec = args.domain
    size, res = getattr(args, "size", None), getattr(args, "res", None)
    if spec != "torus" and size is not None:
        raise UsageError(f"--size {size}: only the torus has a grid size (use --res for {spec})")
    if spec not in ("sphere", "icosphere") and res is not None:
        raise UsageError(f"--res {res}: only sphere and icosphere have a resolution (use --size for the torus)"
                         if spec == "torus" else f"--res {res}: a mesh file has no resolution")
    if spec == "torus":
        h, w = parse_size(size or "16x16", "--size", minimum=3)
        check_fits(f"--size {h}x{w}", h * w, task=task, k=k)
        return TorusGrid(h, w, stencil=args.stencil)
    if spec == "sphere":
        grid = GRID_ALIASES[args.grid]
        res = SPHERE_DEFAULT_RES[grid] if res is None else res
        if res < 1:
            raise UsageError(f"--res {res}: the {grid} resolution must be ≥ 1")
        if grid == "healpix" and res & (res - 1):
            raise UsageError(f"--res {res}: the HEALPix nside must be a power of 2")
        n, extra = _sphere_points(grid, res)
        check_fits(f"--res {res} ({grid})", n, task=task, k=k, extra_bytes=extra)
        try:
            if grid == "driscoll-healy":
                return SphereGrid.driscoll_healy(res)
            if grid == "healpix":
                return SphereGrid.healpix(res)
            if grid == "gauss-legendre":
                return SphereGrid.gauss_legendre(res)
            return SphereGrid.equiangular(res, poles=grid == "equiangular")
        except ValueError as exc:
            raise UsageError(f"--res {res} ({grid}): {exc}") from exc
    if spec == "icosphere":
        level = 4 if res is None else res
        if level < 0:
            raise UsageError(f"--res {level}: the icosphere level must be ≥ 0")
        check_fits(f"--res {level} (icosphere level)", 10 * 4**level + 2, task=task, k=k)
        return TriMesh.icosphere(level)
    return TriMesh.load(resolve_mesh(spec, args.data_root))


def resolve_mesh(spec: str, data_root: str | None) -> Path:
    """A path if it exists, else a mesh in the data root's ``meshes/`` (checksum-verified)."""
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise UsageError(f"{spec}: is a folder, not a mesh file")
        return path
    if any(sep in spec for sep in ("/", "\\")):
        raise UsageError(f"{spec}: no such mesh file")
    from niso_geom.shared_data import mesh_path

    return mesh_path(spec, data_root)


def check_output_file(path: Path, *, flag: str = "--out", inputs: tuple[Path, ...] = ()) -> Path:
    """Check before any work that ``path`` can be written as a file and is none of ``inputs``.

    Refused (:class:`UsageError` naming ``flag``): an existing folder, the same file as an
    input (also through a symlink or another relative path), a parent that is a file, or a
    folder without write permission.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    target = path.resolve()
    for src in inputs:
        src = Path(src)
        same = src.resolve() == target
        if not same and path.exists() and src.exists():
            try:
                same = os.path.samefile(src, path)
            except OSError:
                same = False
        if same:
            raise UsageError(f"{flag} {path}: is the input file {src}; refusing to overwrite it")
    _check_writable_folder(target.parent, flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: the file exists and is not writable")
    return path


def check_output_folder(path: Path, *, flag: str = "--out") -> Path:
    """Check before any work that ``path`` is (or can be made as) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder")
    _check_writable_folder(path.resolve(), flag, path)
    return path


def _check_writable_folder(folder: Path, flag: str, given: Path) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {given}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {given}: the folder {existing} is not writable")


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
    """Check --out/--seeds/--threads, set torch's and NumPy's BLAS threads and return
    ``experiment.preset(--preset, **--set)``. ``--out`` must be (or be creatable as) a writable folder."""
    if getattr(args, "out", None) is not None:
        check_output_folder(Path(args.out))
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
