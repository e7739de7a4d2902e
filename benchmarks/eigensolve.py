"""Time to the first 128 eigenpairs of large meshes: niso_geom vs a plain potpourri3d + eigsh call.

Run: .venv/bin/python benchmarks/eigensolve.py [--k 128] [--meshes armadillo bunny00] [--repeats 2]

For each mesh, in the same process and alternating order:
  peer   : pp3d.cotan_laplacian + pp3d.vertex_areas + scipy eigsh(k, M, sigma=-1e-8)
  cold   : TriMesh(V, F).eigenbasis(k, cache=<empty dir>) — validation, operators, solve,
           Rayleigh–Ritz polish, residual check, cache write
  cached : the same call again on a fresh TriMesh (reload from the disk cache)
Prints medians and the ratios cold/peer (target ≤ 1.1) and cold/cached (target ≥ 50).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import potpourri3d as pp3d
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from niso_geom import TriMesh
from niso_geom.cache import DiskCache
from niso_geom.geometry.mesh_io import read_mesh
from niso_geom.shared_data import mesh_path


def peer(V, F, k):
    L = pp3d.cotan_laplacian(V, F)
    M = pp3d.vertex_areas(V, F)
    return spla.eigsh(L, k=k, M=sp.diags(M), sigma=-1e-8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--meshes", nargs="+", default=["armadillo", "bunny00"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for name in args.meshes:
        V, F = read_mesh(mesh_path(name))
        t_peer, t_cold, t_hit = [], [], []
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as d:
                cache = DiskCache(d)
                order = ("peer", "cold") if r % 2 == 0 else ("cold", "peer")
                for which in order:
                    t0 = time.perf_counter()
                    if which == "peer":
                        w, _ = peer(V, F, args.k)
                        t_peer.append(time.perf_counter() - t0)
                    else:
                        eb = TriMesh(V, F, name=name).eigenbasis(args.k, cache=cache)
                        t_cold.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                hit = TriMesh(V, F, name=name).eigenbasis(args.k, cache=cache)
                t_hit.append(time.perf_counter() - t0)
                assert hit.info["method"] == "cache"
                np.testing.assert_allclose(np.sort(w), eb.evals, rtol=1e-6, atol=1e-10)
        p, c, h = (statistics.median(x) for x in (t_peer, t_cold, t_hit))
        rows.append((name, len(V), p, c, h, c / p, c / h, eb.info["residual"]))
    print(f"first {args.k} eigenpairs, median of {args.repeats} run(s)")
    print(f"{'mesh':>10} {'N':>7} {'peer s':>8} {'cold s':>8} {'cached s':>9} {'cold/peer':>10} {'cold/cached':>12} {'residual':>9}")
    for name, n, p, c, h, r1, r2, res in rows:
        print(f"{name:>10} {n:>7} {p:>8.2f} {c:>8.2f} {h:>9.3f} {r1:>10.2f} {r2:>12.0f} {res:>9.1e}")


if __name__ == "__main__":
    main()
