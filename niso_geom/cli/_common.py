"""Shared CLI helpers: domain arguments, tables, output folders."""

from __future__ import annotations

import argparse
import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from niso_geom.domains.sphere import GRID_NAMES, grid_from_rows
from niso_geom.errors import UsageError
from niso_geom.runio import same_file, write_json  # noqa: F401  (write_json: re-exported for the commands)
from niso_geom.threads import set_threads

C = TypeVar("C")

# One CLI language: every flag below is added by one function, so it has the same name, values,
# default and help in every command (tests/test_cli_language.py checks it).
HELP = {
    "domain": "the domain, positionally or as --domain",
    "size": "torus grid HxW, each side ≥ 3 (default 16x16)",
    "grid": "sphere grid: dh (Driscoll–Healy), centred (equiangular, cell-centred rings), equiangular (rings "
            "through the poles), gl (Gauss–Legendre), healpix",
    "res": "sphere resolution: latitude rows of a latitude-longitude grid (dh, centred, equiangular, gl; "
           "2·rows longitudes), nside of healpix (a power of 2); the subdivision level of an icosphere",
    "device": "where training runs: auto (default: CUDA if available), cpu, cuda",
    "threads": "torch and NumPy BLAS threads (default 1: the small K×K solves and samplers are fastest on one "
               "thread, and more threads slow a busy machine)",
    "data_root": "folder holding the shared data and SHA256SUMS (default: $NISO_GEOM_DATA, then ../shared/data "
                 "beside a source checkout; see niso data info)",
    "seed": "random seed (default: the preset's)",
}


def add_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help=HELP["data_root"])


def add_domain_arg(p: argparse.ArgumentParser, *, choices: list[str] | None = None, default: str | None = None,
                   what: str = "") -> None:
    """The domain, given positionally or as ``--domain`` (the same value either way)."""
    help_text = f"{HELP['domain']}: {what}" if what else HELP["domain"]
    p.add_argument("domain", nargs="?", default=None, choices=choices, metavar="DOMAIN", help=help_text)
    p.add_argument("--domain", dest="domain_flag", default=None, choices=choices, metavar="DOMAIN",
                   help=help_text)
    p.set_defaults(domain_default=default)


def resolve_domain_arg(args: argparse.Namespace) -> str:
    """The domain of ``add_domain_arg``: positional and ``--domain`` must agree when both are given."""
    pos, flag = getattr(args, "domain", None), getattr(args, "domain_flag", None)
    if pos is not None and flag is not None and pos != flag:
        raise UsageError(f"the domain is given twice, as {pos!r} and as --domain {flag}; give it once")
    value = pos or flag or getattr(args, "domain_default", None)
    if value is None:
        raise UsageError("give a domain (positionally or as --domain)")
    args.domain = value
    return value


def add_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default=None, metavar="HxW", help=HELP["size"])


def add_grid_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", default=None, choices=list(GRID_NAMES), help=HELP["grid"] + " (default dh)")


def add_res_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--res", type=int, default=None, help=HELP["res"])


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=HELP["device"])


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help=HELP["threads"])


def add_domain_args(p: argparse.ArgumentParser) -> None:
    add_domain_arg(p, what="torus | sphere | icosphere | a mesh file (OBJ/OFF/PLY/STL) | a mesh name in the data "
                           "root (e.g. spot)")
    add_size_arg(p)
    p.add_argument("--stencil", default="9pt", choices=["5pt", "9pt"], help="torus stencil (default 9pt, the paper's)")
    add_grid_arg(p)
    add_res_arg(p)
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
    """(points, extra bytes) of a sphere grid at resolution ``res`` (rows, or nside)."""
    if grid == "healpix":
        n = 12 * res * res
        return n, 3 * 8 * (2 * res + 1) ** 2 * n  # the quadrature fit's dense harmonic matrix
    return 2 * res * res, 0


SPHERE_DEFAULT_RES = {"driscoll-healy": 16, "healpix": 8, "gauss-legendre": 32,
                      "equiangular": 48, "equiangular-centred": 48}


def build_domain(args: argparse.Namespace, *, task: str = "info", k: int = 0):
    """The domain the arguments describe; bad values are :class:`UsageError` naming the flag.

    ``task`` ("info" or "spectrum") and ``k`` size the memory check made before building.
    """
    from niso_geom import TorusGrid, TriMesh

    spec = resolve_domain_arg(args)
    size, res = getattr(args, "size", None), getattr(args, "res", None)
    if spec != "sphere" and getattr(args, "grid", None) is not None:
        raise UsageError(f"--grid {args.grid}: only the sphere has a grid kind (the domain is {spec})")
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
        grid = GRID_NAMES[args.grid or "dh"]
        res = SPHERE_DEFAULT_RES[grid] if res is None else res
        if res < 1:
            raise UsageError(f"--res {res}: the {grid} resolution must be ≥ 1")
        if grid == "healpix" and res & (res - 1):
            raise UsageError(f"--res {res}: the HEALPix nside must be a power of 2")
        n, extra = _sphere_points(grid, res)
        check_fits(f"--res {res} ({grid})", n, task=task, k=k, extra_bytes=extra)
        try:
            return grid_from_rows(grid, res)
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
        if same_file(src, path):
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


def add_seeds_args(r: argparse.ArgumentParser, *, what: str = "") -> None:
    """--seeds N and --first-seed K: the seeds K..K+N-1 (:func:`seed_range`). Disjoint seed ranges
    can run as separate processes into one --out; a last run over all of them then only aggregates."""
    r.add_argument("--seeds", type=int, default=1,
                   help=f"number of seeds, FIRST..FIRST+N-1{what} (default 1)")
    r.add_argument("--first-seed", type=int, default=0, metavar="FIRST",
                   help="first seed (default 0); e.g. `--seeds 2 --first-seed 3` in a second process runs "
                        "seeds 3 and 4 beside `--seeds 3` into the same --out, and a final `--seeds 5` "
                        "resumes both and writes the five-seed table")


def seed_range(args: argparse.Namespace) -> range:
    """The seeds of --seeds/--first-seed (checked by :func:`experiment_config`)."""
    return range(args.first_seed, args.first_seed + args.seeds)


def add_experiment_run_args(r: argparse.ArgumentParser, *, set_example: str) -> None:
    """The arguments every ``niso EXPERIMENT run`` shares, after --preset/--seeds/--methods:
    --out, --device, --threads, --set KEY=VALUE [KEY=VALUE ...] (repeatable), --no-resume, --no-progress."""
    r.add_argument("--out", type=Path, required=True, help="run folder")
    add_device_arg(r)
    add_threads_arg(r)
    r.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help=f"override config fields, e.g. {set_example} (several after one --set, or repeated)")
    r.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")


def experiment_config(args: argparse.Namespace, preset: Callable[..., C]) -> C:
    """Check --out/--seeds/--first-seed/--threads, set torch's and NumPy's BLAS threads and return
    ``preset(--preset, **--set)``; every bad value is a :class:`UsageError` naming its flag."""
    if getattr(args, "out", None) is not None:
        check_output_folder(Path(args.out))
    if getattr(args, "seeds", 1) < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if getattr(args, "first_seed", 0) < 0:
        raise UsageError(f"--first-seed must be >= 0, got {args.first_seed}")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        set_threads(args.threads)  # torch's and NumPy's BLAS (niso_geom.threads)
    try:
        return preset(args.preset, **parse_overrides(args.overrides))
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from exc
