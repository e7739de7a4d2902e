"""k (largest linear scale factor) of the views each Möbius mode draws, at its default severity, on
shrec_16 meshes: the base map of each mesh and its 30 view transforms exactly as the builder draws
them (same seeds), without the pull-backs. Prints quantiles per mode as JSON (docs/cshrec11.md).
Usage: ``python benchmarks/cshrec11_k_stats.py [--per-class 3] [--transforms 30] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from niso_geom.data.cshrec11 import list_source, mesh_rng, view_k_summary
from niso_geom.geometry.conformal import spherical_conformal_map
from niso_geom.geometry.mesh_io import read_mesh
from niso_geom.geometry.mobius import mobius_max_scale
from niso_geom.geometry.mobius_severity import MOBIUS_MODES, draw_view_transforms
from niso_geom.shared_data import data_file
from niso_geom.threads import set_blas_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--per-class", type=int, default=3)
    p.add_argument("--transforms", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    set_blas_threads(1)
    tarball = data_file("shrec_16.tar.gz")
    entries, _ = list_source(tarball)
    chosen = [e for c in sorted({e.cls for e in entries}) for e in [x for x in entries if x.cls == c][:args.per_class]]
    ks: dict[str, list[list[float]]] = {m: [] for m in MOBIUS_MODES}
    secs = {m: 0.0 for m in MOBIUS_MODES}
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
        for e in chosen:
            tar.extract(e.member, tmp, filter="data")
            V, F = read_mesh(Path(tmp) / e.member)
            S, _ = spherical_conformal_map(V, F, name=e.relpath)
            for m in MOBIUS_MODES:
                t0 = time.perf_counter()
                A = draw_view_transforms(mesh_rng(args.seed, e.name), m, None, args.transforms, sphere=S, V=V, F=F)
                secs[m] += time.perf_counter() - t0
                ks[m].append([1.0, *np.atleast_1d(mobius_max_scale(A)).tolist()])
    out = {"meshes": len(chosen), "transforms": args.transforms,
           "modes": {m: {**view_k_summary(ks[m]), "seconds_per_view": secs[m] / (len(chosen) * args.transforms)}
                     for m in MOBIUS_MODES}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
