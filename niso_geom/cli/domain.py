"""``niso domain info|spectrum``: sizes, topology, and numeric vs analytic spectra."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from niso_geom import plotting
from niso_geom.cli._common import (
    add_domain_args,
    build_domain,
    check_output_folder,
    format_table,
    write_json,
)
from niso_geom.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("domain", help="inspect a domain: sizes, genus, spectrum vs analytic")
    dsub = p.add_subparsers(dest="domain_command", metavar="{info,spectrum}")
    dsub.required = True
    info = dsub.add_parser("info", help="sizes, total mass, topology (genus for meshes)")
    add_domain_args(info)
    info.set_defaults(func=cmd_info)
    spec = dsub.add_parser("spectrum", help="first eigenvalues, numeric vs analytic, with a PNG of eigenfunctions")
    add_domain_args(spec)
    spec.add_argument("-k", type=int, default=36, help="number of eigenpairs (default 36)")
    spec.add_argument("--method", default="auto", choices=["auto", "dense", "shift-invert", "lobpcg"])
    spec.add_argument("--out", type=Path, default=None, help="folder for spectrum.json and eigenfunctions.png")
    spec.add_argument("--no-cache", action="store_true", help="do not use the on-disk eigenbasis cache")
    spec.set_defaults(func=cmd_spectrum)


def cmd_info(args: argparse.Namespace) -> int:
    dom = build_domain(args)
    d = dom.describe()
    print(format_table([[k, v] for k, v in d.items()], ["property", "value"]))
    return 0


def reference_spectrum(dom, k: int) -> tuple[np.ndarray | None, str]:
    """Analytic eigenvalues to hold the numeric ones against, and what they are."""
    if dom.kind == "torus":
        return dom.analytic_eigenbasis(k).evals, "exact stencil Fourier modes"
    if dom.kind == "sphere":
        from niso_geom.harmonics.sphere import lmax_for, sh_eigenvalues

        return sh_eigenvalues(lmax_for(k))[:k], "l(l+1) of the continuous sphere"
    if dom.kind == "mesh" and dom.name.startswith("icosphere"):
        from niso_geom.harmonics.sphere import lmax_for, sh_eigenvalues

        return sh_eigenvalues(lmax_for(k))[:k] * 4 * np.pi / dom.area, "l(l+1)·4π/area of the unit sphere"
    return None, "none (no closed form for this mesh)"


def cmd_spectrum(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UsageError(f"-k {args.k}: the number of eigenpairs must be ≥ 1")
    if args.out is not None:
        plotting.require_plot_extra("niso domain spectrum --out")  # before any work, in one line
        check_output_folder(args.out)
    dom = build_domain(args, task="spectrum", k=args.k)
    k = min(args.k, dom.n)
    if k < args.k:
        print(f"-k {args.k} is more than the domain's {dom.n} points: computing {k}")
    t0 = time.perf_counter()
    kw = {"method": args.method}
    if dom.kind == "mesh":
        kw["cache"] = False if args.no_cache else None
    eb = dom.eigenbasis(k, **kw)
    seconds = time.perf_counter() - t0
    ref, ref_name = reference_spectrum(dom, k)
    rows = []
    for i in range(k):
        row = [i, eb.evals[i]]
        if ref is not None:
            rel = abs(eb.evals[i] - ref[i]) / abs(ref[i]) if ref[i] != 0 else abs(eb.evals[i])
            row += [ref[i], rel]
        rows.append(row)
    headers = ["i", "numeric"] + (["analytic", "rel. error"] if ref is not None else [])
    print(f"{dom!r}: N = {dom.n}, {k} eigenpairs in {seconds:.3f} s ({eb.info.get('method')})")
    print(f"reference: {ref_name}")
    print(format_table(rows, headers))
    print(f"Φᵀ M Φ − I: {eb.orthonormality_error():.2e}   residual ‖SΦ − MΦΛ‖/‖S‖: {eb.residual(dom.stiffness):.2e}")
    if args.out is not None:

        report = {"domain": dom.describe(), "k": k, "seconds": seconds, "method": eb.info.get("method"),
                  "evals": eb.evals, "reference": ref, "reference_kind": ref_name,
                  "orthonormality_error": eb.orthonormality_error(), "residual": eb.residual(dom.stiffness)}
        write_json(args.out / "spectrum.json", report)
        plotting.save(plotting.plot_eigenfunctions(dom, eb.evecs, eb.evals, n=12, title=repr(dom)),
                      args.out / "eigenfunctions.png")
        print(f"wrote {args.out / 'spectrum.json'} and {args.out / 'eigenfunctions.png'}")
    return 0
