"""Generate the documentation's figures into docs/figures/ (PNG) from real computations and runs.

    python docs/make_figures.py                       # the figures computed here (a few minutes, 1 thread)
    python docs/make_figures.py --runs runs/demo/torus runs/demo/sphere   # plus learned-operator figures

Computed here, from the library and the shared data (``--data-root`` or ``$NISO_GEOM_DATA``):

* ``eigenfunctions-{torus,sphere,mesh}.png``: numeric eigenfunctions of the discrete Laplacian
  (top row, rotated within each eigenspace onto the reference basis) against the analytic ones:
  Fourier modes (torus), real spherical harmonics (sphere grid, and an icosphere's vertices);
* ``conformal-spot.png``: the spot mesh coloured by one heat-kernel-signature channel, and the same
  function on its conformal map to the sphere;
* ``mobius-severity.png``: that function pulled back to an equiangular grid through Möbius boosts
  of growing strength (the cSHREC'11 views use strengths up to 0.2);
* ``homnist-samples.png``: MNIST test digits and homNIST warps of them.

From each ``--runs`` folder of ``niso spectra`` (a finished run: report.json and its figures):
``learned-<name>-eigenfunctions.png`` and ``learned-<name>-tau.png`` (τ and its blocks) are copied,
with ``learned-<name>.json`` recording the run's configuration and headline metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from niso_geom import SphereGrid, TorusGrid, TriMesh, plotting
from niso_geom.data.cshrec11 import hks_times
from niso_geom.data.homnist import build_homnist
from niso_geom.geometry.conformal import spherical_conformal_map
from niso_geom.geometry.descriptors import heat_kernel_signature
from niso_geom.geometry.mobius import mobius_boost
from niso_geom.geometry.pullback import pullback_matrix
from niso_geom.harmonics.sphere import real_sph_harm, sh_eigenvalues
from niso_geom.runio import write_json
from niso_geom.shared_data import mesh_path
from niso_geom.spectral.eigenbasis import Eigenbasis
from niso_geom.threads import set_threads

OUT = Path(__file__).resolve().parent / "figures"


def _aligned(numeric, reference, mass: np.ndarray) -> np.ndarray:
    """The numeric eigenvectors rotated, within each eigenspace of the reference, onto the reference
    basis (orthogonal Procrustes in the mass inner product). A degenerate eigenspace has no preferred
    basis, so this is how the two can be compared picture by picture."""
    ev, out = np.asarray(reference.evals), np.array(numeric.evecs[:, : len(reference.evals)], dtype=float)
    start = 0
    while start < len(ev):
        stop = start + 1
        while stop < len(ev) and np.isclose(ev[stop], ev[start], rtol=1e-6, atol=1e-9):
            stop += 1
        N, A = out[:, start:stop], reference.evecs[:, start:stop]
        U, _, Vt = np.linalg.svd(N.T @ (mass[:, None] * A))
        out[:, start:stop] = N @ (U @ Vt)
        start = stop
    return out


def _pairs(domain, numeric, reference, n: int, title: str, labels=("numeric", "analytic")):
    """Two rows of n eigenfunctions: numeric (aligned to the reference's eigenspaces) above, reference below."""
    plt = plotting.pyplot()
    proj = plotting.axis_projection(domain)
    rows = [(_aligned(numeric, reference, domain.mass), numeric.evals), (reference.evecs, reference.evals)]
    fig = plt.figure(figsize=(1.9 * n, 4.2))
    for row, ((vecs, vals), label) in enumerate(zip(rows, labels)):
        for i in range(n):
            ax = fig.add_subplot(2, n, row * n + i + 1, projection=proj)
            plotting.plot_field(domain, vecs[:, i], ax=ax, title=f"{label} φ{i}  λ={vals[i]:.3g}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def eigenfunction_figures() -> None:
    t = TorusGrid(16, 16, stencil="9pt")
    plotting.save(_pairs(t, t.eigenbasis(9), t.analytic_eigenbasis(9), 6,
                         "torus 16×16, 9-point stencil: numeric eigenvectors vs Fourier modes"),
                  OUT / "eigenfunctions-torus.png")
    g = SphereGrid.driscoll_healy(16)
    plotting.save(_pairs(g, g.eigenbasis(9), g.analytic_eigenbasis(9), 6,
                         "sphere, Driscoll–Healy 32×32: finite-volume Laplacian vs real spherical harmonics"),
                  OUT / "eigenfunctions-sphere.png")
    m = TriMesh.icosphere(3)
    Y = real_sph_harm(2, m.vertices)  # the icosphere is a sphere: its vertices sample the harmonics
    Y /= np.sqrt((m.mass[:, None] * Y * Y).sum(axis=0))
    harmonics = Eigenbasis(sh_eigenvalues(2), Y, m.mass, {"method": "analytic at the vertices"})
    plotting.save(_pairs(m, m.eigenbasis(9, cache=False), harmonics, 6,
                         "icosphere level 3 (642 vertices): cotan eigenfunctions vs spherical harmonics",
                         labels=("cotan", "SH")),
                  OUT / "eigenfunctions-mesh.png")


def conformal_figures(data_root) -> None:
    plt = plotting.pyplot()
    spot = TriMesh.load(mesh_path("spot", data_root))
    S, report = spherical_conformal_map(spot.vertices, spot.faces, name="spot")
    hks = heat_kernel_signature(spot.eigenbasis(128), hks_times(), normalize="area")
    f = np.log(hks[:, 4])
    sphere = TriMesh(S, spot.faces, name="spot on the sphere")
    fig = plt.figure(figsize=(7, 3.4))
    for i, (dom, title) in enumerate([(spot, "spot: log HKS, t ≈ 0.03"),
                                      (sphere, f"its conformal map (flipped faces: {report.n_flipped})")]):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        plotting.plot_field(dom, f, ax=ax, title=title, cmap="viridis", symmetric=False)
    fig.tight_layout()
    plotting.save(fig, OUT / "conformal-spot.png")

    grid = SphereGrid.equiangular(64, 128)
    strengths = (0.0, 0.1, 0.2, 0.4)
    fig, axes = plt.subplots(1, len(strengths), figsize=(3.2 * len(strengths), 2.0))
    direction = np.array([0.0, 0.6, 0.8])
    lo, hi = float(f.min()), float(f.max())
    for ax, s in zip(axes, strengths):
        A = mobius_boost(s * direction) if s else None
        x = pullback_matrix(S, spot.faces, grid.points, mobius=A) @ f
        ax.imshow(x.reshape(grid.shape), cmap="viridis", vmin=lo, vmax=hi, extent=(0, 360, 180, 0))
        ax.set_title(f"boost {s:g}" + (" (the map)" if not s else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Möbius views of spot's HKS on a 64×128 equiangular grid, by strength", fontsize=10)
    fig.tight_layout()
    plotting.save(fig, OUT / "mobius-severity.png")


def homnist_figure(data_root, cache_dir: Path) -> None:
    plt = plotting.pyplot()
    ds = build_homnist(cache_dir, seed=0, subset=4, progress=False, data_root=data_root, threads=1)
    warps = 7
    fig, axes = plt.subplots(4, warps, figsize=(1.3 * warps, 1.3 * 4 + 0.4))
    for d in range(4):
        for w in range(warps):
            k = d * 32 + w
            axes[d, w].imshow(ds.images[k], cmap="gray_r", vmin=0, vmax=1)
            axes[d, w].set_axis_off()
        axes[d, 0].set_title(f"label {ds.labels[d * 32]}", fontsize=8, loc="left")
    fig.suptitle("homNIST: MNIST test digits (40×40), each under 32 random homographies (7 shown)", fontsize=9)
    fig.tight_layout()
    plotting.save(fig, OUT / "homnist-samples.png")


def run_figures(run: Path) -> None:
    report = json.loads((run / "report.json").read_text())
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    name = run.name
    for src, dst in (("eigenfunctions.png", "eigenfunctions"), ("tau.png", "tau")):
        if (run / src).is_file():
            shutil.copyfile(run / src, OUT / f"learned-{name}-{dst}.png")
    headline = {k: report[k] for k in ("purity_mean", "tau_block_energy", "commutator") if k in report}
    write_json(OUT / f"learned-{name}.json", {"run": str(run), "config": config, "metrics": headline})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="finished `niso spectra` run folders")
    p.add_argument("--data-root", default=None, help="shared data root (default $NISO_GEOM_DATA, ...)")
    p.add_argument("--cache-dir", type=Path, default=Path(".niso_cache"), help="cache for the homNIST subset")
    args = p.parse_args(argv)
    plotting.require_plot_extra("docs/make_figures.py")
    set_threads(1)
    OUT.mkdir(exist_ok=True)
    eigenfunction_figures()
    conformal_figures(args.data_root)
    homnist_figure(args.data_root, args.cache_dir)
    for run in args.runs:
        run_figures(run)
    print(f"figures in {OUT}: " + ", ".join(sorted(p.name for p in OUT.glob("*.png"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
