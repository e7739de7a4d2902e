"""Build time and size of the conformal SHREC'11 dataset (niso_geom.data.cshrec11).

For each requested resolution, builds the dataset from scratch into a fresh cache folder
(or ``--cache-dir``) and prints wall and CPU time (this process plus its workers), the
per-mesh wall seconds of each stage (sphere map, HKS, pull-back of 1 + T views) and CPU
seconds from the per-mesh records, and the bytes on disk. ``--per-class K`` builds only the first K meshes
of each class and **extrapolates** wall and CPU time linearly to all 488 meshes; such
rows are labelled "extrapolated". Run it niced on a shared machine::

    nice -n 15 .venv/bin/python benchmarks/cshrec11_build.py --res 48x96 --jobs 2
    nice -n 15 .venv/bin/python benchmarks/cshrec11_build.py --res 96x192 --jobs 2 --per-class 2

``--summarize FOLDER`` prints the same table for an existing dataset folder (e.g. the one
``niso data build cshrec11`` wrote), from its manifest: per-mesh seconds and sizes only.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOTAL_MESHES = 488  # genus-0 meshes of the 25 classes


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _stage_table(meshes: dict) -> list[str]:
    lines = [f"{'stage':<10} {'mean s':>8} {'median':>8} {'max':>8}"]
    for stage in ("map", "hks", "pullback", "total", "cpu"):
        v = np.array([m["seconds"][stage] for m in meshes.values() if stage in m["seconds"]])
        if not len(v):
            continue
        lines.append(f"{stage:<10} {v.mean():8.3f} {np.median(v):8.3f} {v.max():8.3f}")
    return lines


def summarize(folder: Path) -> dict:
    from niso_geom.data.cshrec11 import read_manifest

    m = read_manifest(folder)
    meshes = m["meshes"]
    npy = sum(e["files"]["signals"]["bytes"] for e in meshes.values())
    npz = sum(e["files"]["extras"]["bytes"] for e in meshes.values())
    print(f"{folder}: {len(meshes)} meshes, {len(m['classes'])} classes, "
          f"signals {npy / 1e9:.3f} GB + extras {npz / 1e6:.1f} MB "
          f"({npy / len(meshes) / 1e6:.2f} MB per mesh)")
    print("\n".join(_stage_table(meshes)))
    methods = {}
    for e in meshes.values():
        methods[e["map"]["method"]] = methods.get(e["map"]["method"], 0) + 1
    print("sphere map finish:", ", ".join(f"{k} {v}" for k, v in sorted(methods.items())))
    return {"meshes": len(meshes), "signal_bytes": npy, "extras_bytes": npz,
            "per_mesh_seconds": {s: float(np.mean([e["seconds"][s] for e in meshes.values()]))
                                 for s in ("map", "hks", "pullback", "total", "cpu")
                                 if all(s in e["seconds"] for e in meshes.values())}}


def run(res: tuple[int, int], args: argparse.Namespace) -> dict:
    from niso_geom.data.cshrec11 import build_cshrec11, read_manifest

    tmp = None
    root = args.cache_dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="cshrec11-bench-")
        root = tmp
    try:
        t0, c0 = time.perf_counter(), _cpu()
        folder = build_cshrec11(root, res=res, transforms=args.transforms, seed=args.seed, jobs=args.jobs,
                                progress=not args.no_progress, _max_per_class=args.per_class)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        m = read_manifest(folder)
        n = len(m["last_build"]["computed"])
        label = f"{res[0]}x{res[1]}, {args.transforms} transforms, jobs {args.jobs}"
        print(f"\n== {label}: {n} meshes computed, {len(m['last_build']['reused'])} reused ==")
        print(f"measured: wall {wall:.1f} s, CPU {cpu:.1f} s (this process + workers)")
        out = {"res": list(res), "jobs": args.jobs, "computed": n, "wall_s": wall, "cpu_s": cpu,
               "summary": summarize(folder)}
        if args.per_class is not None and n:
            f = TOTAL_MESHES / n
            print(f"EXTRAPOLATED to {TOTAL_MESHES} meshes (x{f:.1f}): wall ≈ {wall * f / 60:.0f} min, "
                  f"CPU ≈ {cpu * f / 60:.0f} min, signals ≈ {out['summary']['signal_bytes'] * f / 1e9:.1f} GB")
            out["extrapolated"] = {"wall_s": wall * f, "cpu_s": cpu * f,
                                   "signal_bytes": out["summary"]["signal_bytes"] * f}
        return out
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", default="48x96", help="comma-separated HxW list (default 48x96)")
    p.add_argument("--transforms", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--per-class", type=int, default=None, help="first K meshes per class, then extrapolate")
    p.add_argument("--cache-dir", default=None, help="build here (default: a fresh temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--summarize", type=Path, default=None, help="only summarize an existing dataset folder")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.summarize is not None:
        results = [summarize(args.summarize)]
    else:
        results = [run(tuple(int(v) for v in r.lower().split("x")), args) for r in args.res.split(",")]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
