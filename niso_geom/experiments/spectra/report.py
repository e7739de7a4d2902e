"""The report of a spectra run: learned-vs-analytic metrics on held-out pairs, Markdown, figures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niso_geom import plotting
from niso_geom.experiments.spectra.config import SpectraConfig
from niso_geom.experiments.spectra.problem import Problem
from niso_geom.niso.isometry import iso_solve
from niso_geom.niso.operator import LearnedOperator, dense_operator
from niso_geom.runio import write_json, write_text
from niso_geom.spectral.compare import assign_eigenspaces, compare, wigner_match

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_KEYS", "evaluate", "make_figures", "write_report"]


def evaluate(op: LearnedOperator, problem: Problem, cfg: SpectraConfig) -> dict[str, Any]:
    """Learned-vs-analytic metrics on held-out pairs (a seed stream disjoint from training)."""
    op.eval()
    with torch.no_grad():
        state = op()
        rng = np.random.default_rng([cfg.seed, 10**9])
        x, tx, t = problem.sampler.sample(cfg.eval_pairs, rng)
        xt, txt = torch.from_numpy(x).float(), torch.from_numpy(tx).float()
        tau = iso_solve(state, xt, txt, mask_width=cfg.extras.mask_width)
        tau_free = iso_solve(state, xt, txt, mask=False)  # the best rotation of the learned basis
    phi, lam, mass = (a.double().numpy() for a in (state.phi, state.evals, state.mass))
    sphere = None
    if problem.sphere is not None:
        sphere = {**problem.sphere, "rotations": t}
    rep = compare(phi, lam, mass, problem.truth, spaces=problem.spaces, taus=tau.double().numpy(),
                  generators=problem.generators, sphere=sphere, reference_mass=problem.reference_mass)
    if sphere is not None:
        a = assign_eigenspaces(phi, problem.truth, problem.spaces)
        per_l = wigner_match(phi, a, sphere["degrees"], sphere["harmonics"], problem.truth.mass,
                             tau_free.double().numpy(), t)
        rep["wigner_error_unmasked_per_degree"] = per_l
        rep["wigner_error_unmasked"] = float(np.mean(list(per_l.values())))
    rep["domain"] = problem.domain.describe()
    rep["learned_evals"] = lam.tolist()
    rep["config"] = cfg.to_dict()
    if cfg.domain == "sphere":
        colat = problem.domain.colat
        rep["mass_sin_correlation"] = float(np.corrcoef(mass, np.sin(colat))[0, 1])
    return rep


SUMMARY_KEYS = ["purity_mean", "eigenvalue_spearman", "eigenvalue_scale_fit_error", "tau_block_energy",
                "tau_block_energy_random", "commutator", "mass_correlation", "mass_correlation_visible", "mass_cv",
                "multiplicity_match", "wigner_error", "wigner_error_unmasked", "wall_seconds", "steps_per_second"]


def write_report(out: Path, op: LearnedOperator, problem: Problem, cfg: SpectraConfig, report: dict[str, Any]) -> None:
    write_json(out / "report.json", report)
    figures = {}
    try:
        figures = make_figures(out, op, problem, cfg, report)
    except ImportError as exc:  # matplotlib missing
        log.warning("figures skipped: %s", exc)
    lines = [f"# Spectra run: {cfg.domain} ({cfg.preset} preset)", "",
             (f"Domain: `{problem.domain!r}`, N = {problem.domain.n}, K = {cfg.k}, signals: {cfg.signals}, "
              f"{cfg.steps} steps."), "", "| metric | value |", "|---|---|"]
    for k in SUMMARY_KEYS:
        if k in report and report[k] is not None:
            v = report[k]
            lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += ["", f"Learned vectors per analytic eigenspace: {report['multiplicity']}",
              f"Analytic multiplicities:                 {report['analytic_multiplicity']}", ""]
    for name, fn in figures.items():
        lines += [f"## {name}", "", f"![{name}]({fn})", ""]
    write_text(out / "report.md", "\n".join(lines))


def make_figures(out: Path, op: LearnedOperator, problem: Problem, cfg: SpectraConfig, report: dict[str, Any]) -> dict[str, str]:
    plt = plotting.pyplot()
    with torch.no_grad():
        state = op()
    phi, lam, mass = (a.double().numpy() for a in (state.phi, state.evals, state.mass))
    dom, truth = problem.domain, problem.truth
    assign = np.asarray(report["assignment"])
    figs: dict[str, str] = {}

    n = min(12, cfg.k)
    mesh = dom.kind == "mesh"
    fig = plt.figure(figsize=(2.0 * n / 2, 2.0 * 4))
    for i in range(n):
        for row, (vec, lab) in enumerate([(truth.evecs[:, i], f"analytic {i}"), (phi[:, i], f"learned {i}")]):
            ax = fig.add_subplot(4, n // 2 if n > 1 else 1, (2 * (i // (n // 2)) + row) * (n // 2) + i % (n // 2) + 1,
                                 projection="3d" if mesh else None)
            plotting.plot_field(dom, vec, ax=ax, title=lab)
    fig.suptitle("learned vs analytic eigenfunctions (first 12)")
    plotting.save(fig, out / "eigenfunctions.png")
    figs["Learned vs analytic eigenfunctions"] = "eigenfunctions.png"

    O = dense_operator(state, "laplacian").double().numpy()
    L = (dom.stiffness.toarray() / dom.mass[:, None]) if dom.n <= 4096 and np.all(dom.mass > 0) else None
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, A, title in ((axes[0], O, "learned operator Φ Λ Φᵀ M"), (axes[1], L, "ground-truth Laplacian M⁻¹S")):
        if A is None:
            ax.set_axis_off()
            continue
        s = 2.5 * np.std(A)
        ax.imshow(np.clip((A - A.mean()) / s, -1, 1), cmap="RdBu_r", interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    plotting.save(fig, out / "operator.png")
    figs["Learned operator vs Laplacian"] = "operator.png"

    rng = np.random.default_rng([cfg.seed, 10**9 + 1])
    x, tx, _ = problem.sampler.sample(1, rng)
    with torch.no_grad():
        tau = iso_solve(state, torch.from_numpy(x).float(), torch.from_numpy(tx).float(),
                        mask_width=cfg.extras.mask_width)[0].double().numpy()
    order = np.lexsort((lam, assign))
    taup = tau[np.ix_(order, order)]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    v = np.abs(taup).max()
    ax.imshow(taup, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
    bounds = np.flatnonzero(np.diff(assign[order])) + 0.5
    for b in bounds:
        ax.axhline(b, color="k", lw=0.4)
        ax.axvline(b, color="k", lw=0.4)
    ax.set_title(f"τ (one held-out pair), grouped by analytic eigenspace\nblock energy "
                 f"{report.get('tau_block_energy', float('nan')):.3f} (random {report.get('tau_block_energy_random', float('nan')):.3f})",
                 fontsize=9)
    fig.tight_layout()
    plotting.save(fig, out / "tau.png")
    figs["τ with eigenspace blocks"] = "tau.png"

    space_evals = np.array([truth.evals[s].mean() for s in problem.spaces])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(space_evals[assign], lam * report["eigenvalue_scale"], s=8, c=np.asarray(report["purity"]),
               cmap="viridis", vmin=0, vmax=1)
    lim = [0, space_evals[assign].max() * 1.05]
    ax.plot(lim, lim, "k--", lw=0.6)
    ax.set_xlabel("analytic eigenvalue of the assigned eigenspace")
    ax.set_ylabel(f"learned λ × {report['eigenvalue_scale']:.3g} (best scale)")
    ax.set_title(f"Spearman {report['eigenvalue_spearman']:.3f}; colour = purity", fontsize=9)
    fig.tight_layout()
    plotting.save(fig, out / "eigenvalues.png")
    figs["Learned vs analytic eigenvalues"] = "eigenvalues.png"

    fig = plt.figure(figsize=(9, 3.6))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d" if mesh else None)
    plotting.plot_field(dom, mass, ax=ax1, title="learned mass M", cmap="viridis", symmetric=False)
    ax2 = fig.add_subplot(1, 2, 2, projection="3d" if mesh else None)
    ref = problem.reference_mass if problem.reference_mass is not None else truth.mass
    plotting.plot_field(dom, ref, ax=ax2, title="ground-truth mass (quadrature / area)", cmap="viridis",
                        symmetric=False)
    fig.tight_layout()
    plotting.save(fig, out / "mass.png")
    figs["Learned mass"] = "mass.png"
    return figs
