"""``niso tour``: a tour of the domains, each spectrum held against its analytic one."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from niso_geom.cli._common import add_data_root, check_output_folder, format_table, write_json
from niso_geom.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tour", help="domain tour: build each domain, compare its spectrum with the analytic one, save figures")
    p.add_argument("--out", type=Path, default=Path("runs/tour"), help="output folder (default runs/tour)")
    p.add_argument("-k", type=int, default=36, help="eigenpairs per domain (default 36)")
    add_data_root(p)
    p.set_defaults(func=cmd_tour)


def _tour(data_root):
    from niso_geom import SphereGrid, TorusGrid, TriMesh
    from niso_geom.shared_data import mesh_path

    yield "torus 16×16, 9-point", TorusGrid(16, 16, stencil="9pt")
    yield "sphere Driscoll–Healy 32×32", SphereGrid.driscoll_healy(16)
    yield "sphere equiangular 48×96", SphereGrid.equiangular(48, 96)
    yield "sphere HEALPix nside 8", SphereGrid.healpix(8)
    yield "icosphere level 4", TriMesh.icosphere(4)
    yield "spot (shared data)", TriMesh.load(mesh_path("spot", data_root))


def cmd_tour(args: argparse.Namespace) -> int:
    from niso_geom import plotting
    from niso_geom.cli.domain import reference_spectrum

    plotting.require_plot_extra("niso tour")  # before any work: a plain install stops here, in one line
    if args.k < 1:
        raise UsageError(f"-k {args.k}: the number of eigenpairs must be ≥ 1")
    check_output_folder(args.out)
    rows, report = [], {}
    for label, dom in _tour(args.data_root):
        t0 = time.perf_counter()
        eb = dom.eigenbasis(args.k, **({"cache": False} if dom.kind == "mesh" else {}))
        secs = time.perf_counter() - t0
        ref, ref_name = reference_spectrum(dom, args.k)
        if ref is not None:
            nz = ref > 0
            err = float(np.max(np.abs(eb.evals[nz] - ref[nz]) / ref[nz]))
        else:
            err = float("nan")
        slug = label.split(" (")[0].replace(" ", "_").replace("×", "x").replace(",", "").replace("–", "-")
        plotting.save(plotting.plot_eigenfunctions(dom, eb.evecs, eb.evals, n=12, title=label),
                      args.out / f"{slug}.png")
        rows.append([label, dom.n, f"{secs:.2f}", ", ".join(f"{v:.3f}" for v in eb.evals[1:5]),
                     "-" if ref is None else ", ".join(f"{v:.3f}" for v in ref[1:5]),
                     "-" if ref is None else f"{err:.2e}"])
        report[slug] = {"domain": dom.describe(), "seconds": secs, "evals": eb.evals, "reference": ref,
                        "reference_kind": ref_name, "max_rel_error": err}
    print(format_table(rows, ["domain", "N", "seconds", "λ1..4 numeric", "λ1..4 analytic", f"max rel. err (k={args.k})"]))
    write_json(args.out / "tour.json", report)
    print(f"figures and tour.json in {args.out}")
    return 0
