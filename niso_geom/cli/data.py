"""``niso data build|show``: build the project's datasets from the shared data (cached, checksummed)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from niso_geom.cli._common import (
    HELP,
    add_data_root,
    add_threads_arg,
    check_output_file,
    format_table,
)
from niso_geom.errors import UsageError
from niso_geom.geometry.mobius_severity import check_severity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="where the data is looked for, verify it, build or show datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="{info,verify,build,show}")
    dsub.required = True
    _register_info_verify(dsub)
    b = dsub.add_parser("build", help="build a dataset into the cache")
    bsub = b.add_subparsers(dest="dataset", metavar="DATASET")
    bsub.required = True
    h = bsub.add_parser("homnist", help="MNIST test digits padded to 40×40 and warped by 32 homographies each")
    h.add_argument("--seed", type=int, default=0, help=HELP["seed"].replace("the preset's", "0"))
    h.add_argument("--subset", type=int, default=None, help="use the first N test digits (default all 10,000)")
    h.add_argument("--sampler", choices=["metropolis", "gaussian"], default="metropolis")
    h.add_argument("--scale", type=float, default=1.0, help="factor on the homConv sl(3) scales")
    h.add_argument("--homographies", type=int, default=32)
    h.add_argument("--idx-dir", default=None, help="read t10k-* IDX files from this folder instead")
    h.add_argument("--cache-dir", default=None, help="cache root (default $NISO_GEOM_CACHE_DIR)")
    add_threads_arg(h)
    h.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_root(h)
    h.set_defaults(func=cmd_build_homnist)
    c = bsub.add_parser("cshrec11", help="conformal SHREC'11: HKS of 25 classes pulled back to the sphere, "
                                         "with random Möbius views (datasets/cshrec11/README.md)")
    _cshrec11_args(c)
    c.add_argument("--source", default=None, help="shrec_16 tarball (default: shrec_16.tar.gz in the data root)")
    c.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    c.add_argument("--classes", default=None, help="comma-separated subset of classes (default all 25)")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_build_cshrec11)

    s = dsub.add_parser("show", help="render a dataset")
    ssub = s.add_subparsers(dest="dataset", metavar="DATASET")
    ssub.required = True
    cs = ssub.add_parser("cshrec11", help="one HKS channel of a few meshes: the map and 3 of its Möbius views")
    _cshrec11_args(cs)
    cs.add_argument("--source", default=None, help="shrec_16 tarball the dataset was built from")
    cs.add_argument("--meshes", default=None, help="comma-separated mesh names (default: one per class, up to --count)")
    cs.add_argument("--count", type=int, default=4, help="number of meshes when --meshes is not given (default 4)")
    cs.add_argument("--channel", type=int, default=8, help="HKS channel 0..15 (default 8, t ≈ 0.12)")
    cs.add_argument("--out", type=Path, required=True, help="PNG to write")
    cs.add_argument("--by-k", action="store_true",
                    help="order views by k (largest linear scale factor): the figure shows views at evenly spaced "
                         "ranks of k, and the most expanded views of the build are listed")
    cs.set_defaults(func=cmd_show_cshrec11)


def _cshrec11_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--res", type=int, default=96, help=HELP["res"] + " (default 96: the paper's 96×192 grid)")
    p.add_argument("--transforms", type=int, default=30, help="Möbius views per mesh (default 30)")
    p.add_argument("--seed", type=int, default=0, help=HELP["seed"].replace("the preset's", "0"))
    p.add_argument("--mobius", choices=["paper", "boost", "rotation"], default="paper",
                   help="how views are drawn: paper (default; the official ExtMobius 3-D inversion of the mesh, "
                        "base map re-centred), boost (|c| ~ U[0, severity]) or rotation")
    p.add_argument("--severity", type=float, default=None,
                   help="paper: |c| of the inversion (default 1.2, > 0.9, larger is milder); boost: largest |c| "
                        "(default 0.2, < 1); rotation: none")
    p.add_argument("--cache-dir", default=None, help="cache root (default $NISO_GEOM_CACHE_DIR or the user cache)")
    add_data_root(p)


def _grid_shape(rows: int) -> tuple[int, int]:
    """The cSHREC'11 grid of ``--res`` latitude rows: (rows, 2·rows)."""
    if rows < 2:
        raise UsageError(f"--res {rows}: the grid needs at least 2 latitude rows")
    return rows, 2 * rows


def _at_least(args: argparse.Namespace, minimum: int, *names: str) -> None:
    """UsageError naming the flag when an integer option is below ``minimum`` (None is allowed)."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < minimum:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be ≥ {minimum}")


def cmd_build_homnist(args: argparse.Namespace) -> int:
    import numpy as np

    _at_least(args, 1, "subset", "homographies", "threads")
    if not (math.isfinite(args.scale) and args.scale > 0):
        raise UsageError(f"--scale {args.scale}: must be a positive finite number")

    from niso_geom.data.homnist import build_homnist

    t0 = time.perf_counter()
    ds = build_homnist(args.cache_dir, seed=args.seed, subset=args.subset, progress=not args.no_progress,
                       data_root=args.data_root, idx_dir=args.idx_dir, num_homographies=args.homographies,
                       scale=args.scale, sampler=args.sampler, threads=args.threads)
    secs = time.perf_counter() - t0
    counts = np.bincount(ds.labels, minlength=10)
    rows = [["images", len(ds)], ["digits", len(np.unique(ds.digit_index))], ["homographies per digit", args.homographies],
            ["sampler", args.sampler], ["seed", args.seed], ["per-label counts", " ".join(map(str, counts))],
            ["cache file", ds.path if ds.path else "(not cached)"], ["seconds", f"{secs:.1f}"]]
    print(format_table(rows, ["homNIST", "value"]))
    return 0


def _check_severity(args: argparse.Namespace) -> None:
    """A :class:`UsageError` naming --severity when it is out of --mobius's range."""
    try:
        check_severity(args.mobius, args.severity)
    except ValueError as exc:
        raise UsageError(f"--severity {args.severity} (--mobius {args.mobius}): {exc}") from exc


def _folder(args: argparse.Namespace) -> Path:
    from niso_geom.data.cshrec11 import dataset_folder, resolve_source

    _at_least(args, 0, "transforms")
    res = _grid_shape(args.res)
    _, sha = resolve_source(args.source, args.data_root)
    return dataset_folder(args.cache_dir, res, args.transforms, args.seed, sha, args.mobius, args.severity)


def cmd_build_cshrec11(args: argparse.Namespace) -> int:
    from niso_geom.data.cshrec11 import build_cshrec11, read_manifest

    _check_severity(args)
    res = _grid_shape(args.res)
    _at_least(args, 1, "jobs")
    _at_least(args, 0, "transforms")
    t0 = time.perf_counter()
    try:
        folder = build_cshrec11(args.cache_dir, res=res, transforms=args.transforms, seed=args.seed,
                                classes=args.classes, jobs=args.jobs, data_root=args.data_root,
                                progress=not args.no_progress, source=args.source, mobius=args.mobius,
                                severity=args.severity)
    except ValueError as exc:
        if "class" in str(exc) and args.classes is not None:
            raise UsageError(f"--classes {args.classes}: {exc}") from exc
        raise
    secs = time.perf_counter() - t0
    m = read_manifest(folder)
    last = m["last_build"]
    built = [m["meshes"][n] for n in last["computed"]]
    per_mesh = sum(b["seconds"]["total"] for b in built) / len(built) if built else float("nan")
    rows = [["meshes (this build's classes)", len(last["computed"]) + len(last["reused"])],
            ["  computed / reused", f"{len(last['computed'])} / {len(last['reused'])}"],
            ["classes", f"{len(last['classes'])}: {', '.join(last['classes'])}"],
            ["skipped classes", ", ".join(m["skipped_classes"])],
            ["excluded meshes (genus 1)", _excluded(m["excluded_meshes"])],
            ["grid, views", f"{res[0]}x{res[1]} equiangular, 1 + {args.transforms} Möbius"],
            ["Möbius mode, severity", f"{m['params']['mobius']}, {m['params']['severity']:g}"],
            ["k quantiles 10/50/90/99 %, max", _k_text(m["view_k"])],
            ["seconds (wall)", f"{secs:.1f}"],
            ["seconds per computed mesh (one process)", f"{per_mesh:.2f}"],
            ["meshes in folder, bytes", f"{m['counts']['meshes']}, {m['counts']['bytes'] / 1e6:.1f} MB"],
            ["folder", str(folder)]]
    print(format_table(rows, ["cSHREC'11", "value"]))
    return 0


def _k_text(summary: dict) -> str:
    if not summary.get("views"):
        return "no Möbius views"
    q = summary["quantiles"]
    return " / ".join(f"{q[p]:.3g}" for p in ("0.1", "0.5", "0.9", "0.99")) + f", {summary['max']:.3g}"


def _excluded(entries: list[dict]) -> str:
    from collections import Counter

    per = Counter(e["relpath"].split("/")[0] for e in entries)
    return f"{len(entries)} (" + ", ".join(f"{c} {n}" for c, n in sorted(per.items())) + "; see manifest.json)"


def cmd_show_cshrec11(args: argparse.Namespace) -> int:
    from niso_geom import plotting
    from niso_geom.data.cshrec11 import plot_views, read_manifest

    plotting.require_plot_extra("niso data show")
    _check_severity(args)
    _at_least(args, 1, "count")
    if not 0 <= args.channel <= 15:
        raise UsageError(f"--channel {args.channel}: must be 0..15")
    check_output_file(args.out)
    folder = _folder(args)
    m = read_manifest(folder)
    if args.meshes:
        names = [n.strip() for n in args.meshes.split(",") if n.strip()]
    else:
        first: dict[str, str] = {}
        for name, entry in m["meshes"].items():
            first.setdefault(entry["class"], name)
        names = list(first.values())[:args.count]
    if args.by_k:
        from niso_geom.data.cshrec11_views import plot_views_by_k, views_by_k

        rows = [[r["mesh"], r["class"], r["view"], f"{r['k']:.4g}"] for r in views_by_k(folder)[:args.count * 5]]
        print(format_table(rows, ["mesh", "class", "view", "k (most expanded first)"]))
        fig = plot_views_by_k(folder, names, channel=args.channel, n_views=4)
    else:
        fig = plot_views(folder, names, channel=args.channel, n_mobius=3)
    plotting.save(fig, args.out)
    print(f"wrote {args.out} ({len(names)} meshes: {', '.join(names)}; channel {args.channel}; from {folder})")
    return 0


def _register_info_verify(dsub: argparse._SubParsersAction) -> None:
    i = dsub.add_parser("info", help="where the data root is looked for, what it must hold, what was found")
    add_data_root(i)
    i.set_defaults(func=cmd_data_info)
    v = dsub.add_parser("verify", help="check every file in the data root against its SHA256SUMS")
    add_data_root(v)
    v.set_defaults(func=cmd_data_verify)


def cmd_data_info(args: argparse.Namespace) -> int:
    from niso_geom.errors import DataError
    from niso_geom.shared_data import ENV_VAR, EXPECTED_LAYOUT, data_root, search_locations

    print("The data root is looked for, in order:")
    print(f"  1. --data-root DIR   2. ${ENV_VAR}   3. ../shared/data beside a source checkout (not for an installed package)")
    places = search_locations(args.data_root)
    rows = [[how, str(path), "yes" if found else "no"] for how, path, found in places]
    print(format_table(rows or [["(nothing to look at)", "-", "-"]], ["looked at", "path", "exists"]))
    print("\nIt must hold (docs/data.md: where to get each file):")
    print(format_table([list(r) for r in EXPECTED_LAYOUT], ["path", "what", "used by"]))
    try:
        base = data_root(args.data_root)
    except DataError as exc:
        print(f"\nfound: nothing. {exc}")
        return 1
    found = [["SHA256SUMS", "yes" if (base / "SHA256SUMS").is_file() else "MISSING"],
             ["meshes", ", ".join(sorted(p.name for p in (base / "meshes").glob("*.*"))) or "none"],
             ["mnist/mnist.pkl.gz", "yes" if (base / "mnist" / "mnist.pkl.gz").is_file() else "no"],
             ["shrec_16.tar.gz", "yes" if (base / "shrec_16.tar.gz").is_file() else "no"]]
    print(f"\nfound: data root {base}")
    print(format_table(found, ["entry", "present"]))
    print("run `niso data verify` to check the checksums")
    return 0


def cmd_data_verify(args: argparse.Namespace) -> int:
    from niso_geom.shared_data import data_root, verify_all

    t0 = time.perf_counter()
    results = verify_all(args.data_root)
    bad = [(rel, status) for rel, status in results if status != "ok"]
    print(format_table([[rel, status] for rel, status in results], ["file", "sha256"]))
    secs = time.perf_counter() - t0
    base = data_root(args.data_root)
    if bad:
        print(f"{len(bad)} of {len(results)} files in {base} failed: " + ", ".join(f"{r} ({s})" for r, s in bad))
        return 1
    print(f"all {len(results)} files in {base} match SHA256SUMS ({secs:.1f} s)")
    return 0
