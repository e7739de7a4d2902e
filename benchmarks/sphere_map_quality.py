"""Quality and speed of ``spherical_conformal_map`` on real meshes.

Two sweeps, each printed as a table:

* every genus-0 mesh of ``shrec_16.tar.gz`` (588 of 600; the 12 genus-1 meshes listed in
  the data README are skipped), per class and in total: share of bijective maps (zero
  flipped triangles), mean and worst per-corner angle error (mean over meshes of the
  per-mesh mean, and the worst per-mesh mean), seconds per mesh, and which finishing
  stage was needed;
* every closed genus-0 mesh in ``meshes/`` (``3holes.off`` is genus 3 and is checked to
  raise ``MeshError`` instead), one row each.

Meshes are processed by a pool of 2 worker processes. Run::

    .venv/bin/python benchmarks/sphere_map_quality.py [--data-root DIR] [--only shrec|meshes]
        [--classes camel,snake] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tarfile
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

GENUS1 = {
    "alien/test/T124", "alien/train/T9", "alien/train/T18", "alien/train/T30", "alien/train/T137",
    "alien/train/T290", "alien/train/T311", "cat/train/T406", "dog1/train/T99", "dog1/train/T136",
    "man/train/T338", "woman/train/T238",
}


def _load(path: str):
    from niso_geom.geometry.mesh_io import read_mesh

    return read_mesh(path)


def _map_one(args):
    key, path = args
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from niso_geom.errors import MeshError
    from niso_geom.geometry.conformal import spherical_conformal_map

    V, F = _load(path)
    t = time.perf_counter()
    try:
        S, rep = spherical_conformal_map(V, F, name=key)
    except MeshError as e:
        return key, None, f"MeshError: {e}", time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - a benchmark reports failures instead of stopping
        return key, None, f"{type(e).__name__}: {e}", time.perf_counter() - t
    onsphere = float(np.abs(np.linalg.norm(S, axis=1) - 1.0).max())
    return key, rep.as_dict() | {"on_sphere_err": onsphere}, None, time.perf_counter() - t


def _pool_map(jobs, workers, verbose=False):
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    out = []
    with ctx.Pool(workers) as pool:
        for k, res in enumerate(pool.imap_unordered(_map_one, jobs, chunksize=1), 1):
            out.append(res)
            if verbose:
                key, rep, err, sec = res
                what = err if rep is None else f"{rep['n_flipped']} flipped, angle {rep['angle_error_mean']:.4f}"
                print(f"  {key}: {what} ({sec:.1f} s)", file=sys.stderr, flush=True)
            elif k % 50 == 0 or k == len(jobs):
                print(f"  ... {k}/{len(jobs)}", file=sys.stderr, flush=True)
    return sorted(out)


def shrec_sweep(root: Path, workers: int, classes: set[str] | None) -> list:
    from niso_geom.shared_data import data_file

    tar_path = data_file("shrec_16.tar.gz", root)
    tmp = tempfile.mkdtemp(prefix="shrec16-")
    jobs = []
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".obj")]
        for m in members:
            key = m.name.removeprefix("shrec_16/").removesuffix(".obj")
            if key in GENUS1 or (classes and key.split("/")[0] not in classes):
                continue
            tar.extract(m, tmp, filter="data")
            jobs.append((key, os.path.join(tmp, m.name)))
    print(f"shrec_16: {len(jobs)} genus-0 meshes, {workers} workers", file=sys.stderr)
    return _pool_map(jobs, workers)


def meshes_sweep(root: Path, workers: int) -> list:
    from niso_geom.shared_data import data_root, mesh_path

    names = sorted(p.name for p in (data_root(root) / "meshes").iterdir() if p.suffix in (".off", ".obj"))
    jobs = [(n, str(mesh_path(n, root))) for n in names]
    jobs.sort(key=lambda j: -os.path.getsize(j[1]))  # largest first balances the two workers
    print(f"meshes/: {len(jobs)} meshes", file=sys.stderr)
    return _pool_map(jobs, workers, verbose=True)


def pullback_timing(root, n_meshes: int = 10) -> str:
    """Seconds to pull a 16-channel signal back to the paper's 96×192 grid (18,432 points)."""
    from niso_geom.geometry.conformal import spherical_conformal_map
    from niso_geom.geometry.pullback import SpherePullback
    from niso_geom.shared_data import data_file

    th = np.pi * np.arange(96) / 95
    ph = 2 * np.pi * np.arange(192) / 191
    T, P = np.meshgrid(th, ph, indexing="ij")
    grid = np.stack([np.cos(P) * np.sin(T), np.sin(P) * np.sin(T), np.cos(T)], -1).reshape(-1, 3)
    tmp = tempfile.mkdtemp(prefix="shrec16-")
    times = []
    with tarfile.open(data_file("shrec_16.tar.gz", root)) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.name.endswith("/train/T1.obj") or "/test/" in m.name)
        seen, picked = set(), []
        for nm in names:
            cls = nm.split("/")[1]
            key = nm.removeprefix("shrec_16/").removesuffix(".obj")
            if cls not in seen and key not in GENUS1:
                seen.add(cls)
                picked.append(nm)
        for nm in picked[:n_meshes]:
            tar.extract(nm, tmp, filter="data")
            V, F = _load(os.path.join(tmp, nm))
            S, _ = spherical_conformal_map(V, F)
            sig = np.random.default_rng(0).normal(size=(len(V), 16))
            t = time.perf_counter()
            out = SpherePullback(S, F)(sig, grid)
            times.append(time.perf_counter() - t)
            assert out.shape == (len(grid), 16)
    return (f"pull-back of 16 channels to 18,432 grid points ({len(times)} shrec_16 maps, 500 faces): "
            f"mean {np.mean(times):.3f} s, max {np.max(times):.3f} s")


def _fmt_shrec(results) -> str:
    by = defaultdict(list)
    for key, rep, err, sec in results:
        by[key.split("/")[0]].append((rep, err, sec))
    lines = [
        f"{'class':<11} {'n':>3} {'bijective':>9} {'angle mean':>10} {'angle worst':>11} {'max corner':>10} "
        f"{'s/mesh':>7}  finish (cmcf / tutte / progressive)",
    ]
    allrows = []
    for cls in sorted(by) + ["ALL"]:
        rows = allrows if cls == "ALL" else by[cls]
        if cls != "ALL":
            allrows.extend(rows)
        reps = [r for r, e, s in rows if r is not None]
        n = len(rows)
        ok = sum(1 for r in reps if r["n_flipped"] == 0)
        am = np.mean([r["angle_error_mean"] for r in reps]) if reps else float("nan")
        aw = np.max([r["angle_error_mean"] for r in reps]) if reps else float("nan")
        ax = np.max([r["angle_error_max"] for r in reps]) if reps else float("nan")
        sec = np.mean([s for _, _, s in rows])
        meth = [r["method"] for r in reps]
        fin = (f"{sum(m == 'cmcf' for m in meth)} / {sum('tutte' in m for m in meth)} / "
               f"{sum('progressive' in m for m in meth)}")
        if cls == "ALL":
            lines.append("-" * len(lines[0]))
        lines.append(f"{cls:<11} {n:>3} {ok:>4}/{n:<4} {am:>10.3f} {aw:>11.3f} {ax:>10.2f} {sec:>7.2f}  {fin}")
    errs = [(k, e) for k, r, e, s in results if e]
    for k, e in errs:
        lines.append(f"ERROR {k}: {e}")
    return "\n".join(lines)


def _fmt_meshes(results) -> str:
    lines = [
        f"{'mesh':<14} {'verts':>6} {'flipped':>7} {'angle mean':>10} {'angle max':>9} {'QC mean':>7} "
        f"{'|log area|':>10} {'centroid':>8} {'s':>7}  method",
    ]
    for key, rep, err, sec in results:
        if rep is None:
            lines.append(f"{key:<14} {err}")
            continue
        lines.append(
            f"{key:<14} {rep['n_vertices']:>6} {rep['n_flipped']:>7} {rep['angle_error_mean']:>10.4f} "
            f"{rep['angle_error_max']:>9.3f} {rep['qc_mean']:>7.3f} {rep['area_distortion_mean']:>10.2f} "
            f"{rep['centroid_norm']:>8.1e} {sec:>7.1f}  {rep['method']}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None, help="folder holding SHA256SUMS (default: see niso_geom.shared_data)")
    ap.add_argument("--only", choices=["shrec", "meshes"], default=None)
    ap.add_argument("--classes", default=None, help="comma-separated shrec_16 classes (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write all per-mesh reports to this JSON file")
    a = ap.parse_args(argv)
    out = {}
    if a.only in (None, "shrec"):
        classes = set(a.classes.split(",")) if a.classes else None
        t = time.perf_counter()
        res = shrec_sweep(a.data_root, a.workers, classes)
        print(f"\nshrec_16 genus-0 meshes (wall {time.perf_counter() - t:.0f} s, {a.workers} workers)")
        print(_fmt_shrec(res))
        print(pullback_timing(a.data_root))
        out["shrec_16"] = res
    if a.only in (None, "meshes"):
        t = time.perf_counter()
        res = meshes_sweep(a.data_root, a.workers)
        print(f"\nmeshes/ (wall {time.perf_counter() - t:.0f} s, {a.workers} workers)")
        print(_fmt_meshes(res))
        out["meshes"] = res
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
