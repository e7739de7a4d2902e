"""Measure the two ways of mapping a ``paper``-mode view (deformed mesh) to the sphere.

For a few shrec_16 meshes and a few random |c| = 1.2 directions: a fresh spherical conformal map
of the deformed mesh (and the Möbius fitted to it) against the base map re-centred on the deformed
mesh's vertex areas (what the builder does). Prints one JSON line per view and a summary; see
docs/cshrec11.md. Usage: ``python benchmarks/cshrec11_two_maps.py [--meshes laptop/T..,...] [--views 3]``.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from niso_geom.data.cshrec11 import list_source, mesh_rng
from niso_geom.geometry.conformal import spherical_conformal_map
from niso_geom.geometry.mesh_io import read_mesh
from niso_geom.geometry.mobius_severity import fresh_map_view
from niso_geom.shared_data import data_file
from niso_geom.threads import set_blas_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--classes", default="laptop,bird1,hand,octopus")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--severity", type=float, default=1.2)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the per-view rows")
    args = p.parse_args()
    set_blas_threads(1)
    tarball = data_file("shrec_16.tar.gz")
    entries, _ = list_source(tarball)
    chosen = [next(e for e in entries if e.cls == c) for c in args.classes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
        for e in chosen:
            tar.extract(e.member, tmp, filter="data")
            V, F = read_mesh(Path(tmp) / e.member)
            S, _ = spherical_conformal_map(V, F, name=e.relpath)
            rng = mesh_rng(0, e.name)
            for v in range(args.views):
                d = rng.normal(size=3)
                row = {"mesh": e.relpath, "view": v,
                       **fresh_map_view(V, F, S, args.severity * d / np.linalg.norm(d), name=e.relpath)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    keys = ("k_fresh", "k_recentred", "fit_residual_deg", "angle_rms_deg", "angle_max_deg", "angle_error_fresh",
            "angle_error_recentred", "seconds_fresh", "seconds_recentred")
    print(json.dumps({"summary_median": {k: float(np.median([r[k] for r in rows])) for k in keys},
                      "summary_max": {k: float(np.max([r[k] for r in rows])) for k in keys}}))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
