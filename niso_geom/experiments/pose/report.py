"""The pose experiment's report: the summary table, ``results.md`` and ``errors.png``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom import plotting
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.common import markdown_table
from niso_geom.experiments.pose.config import PoseConfig
from niso_geom.experiments.pose.methods import METHODS
from niso_geom.niso.pose import geodesic_deg
from niso_geom.runio import write_text

log = logging.getLogger(__name__)

__all__ = ["METHOD_LABELS", "SUMMARY_HEADERS", "make_figure", "summary_rows", "write_markdown"]

#: table labels of the methods (their registry help) and of the closed-form references
METHOD_LABELS: dict[str, str] = {
    **{name: METHODS[name].help for name in METHODS},
    "identity": "identity prediction (reference)",
    "sh_oracle": "analytic SH degree-1 Procrustes (reference)",
    "haar_chance": "Haar-random guess (chance)",
}

SUMMARY_HEADERS = ["method", "median error °", "mean error °", "seeds", "wall s"]


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" + (f" ± {se:.2f}" if se is not None else "")


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows for the terminal and Markdown tables: methods, then the closed-form references."""
    rows = []
    for m, r in results["methods"].items():
        rows.append([METHOD_LABELS.get(m, m), _fmt(r["median_deg_mean"], r["median_deg_se"]),
                     _fmt(r["mean_deg_mean"], r["mean_deg_se"]), str(len(r["seeds"])), f"{r['wall_seconds']:.0f}"])
    for name, r in results.get("references", {}).items():
        rows.append([METHOD_LABELS.get(name, name), f"{r['median_deg']:.2f}", f"{r['mean_deg']:.2f}", "—", "—"])
    return rows


def describe(cfg: PoseConfig, grid: SphereGrid) -> str:
    """One sentence: the grid, the signals, the rotations, K and the held-out set."""
    sig = ("isotropic random fields" if cfg.signals == "fields"
           else f"camera images on a {cfg.cap_radius:g}° cap")
    rot = ("Haar-random rotations" if cfg.rotations == "haar"
           else f"rotations of ≤ {cfg.max_angle:g}° about random axes")
    return (f"{cfg.nlat}×{cfg.nlon} cell-centred grid (N = {grid.n}), {cfg.channels}-channel {sig} of degree ≤ "
            f"{cfg.lmax}, {rot}; K = {cfg.k}; {cfg.eval_pairs} held-out pairs")


def write_markdown(path: Path, cfg: PoseConfig, grid: SphereGrid, results: dict[str, Any],
                   records: Sequence[dict[str, Any]], info: dict[str, Any], figure: str | None) -> None:
    """``results.md``: the summary table, one row per method/seed, and the figure.

    ``info`` holds ``device``, ``torch``, ``threads`` and ``total_wall_seconds``.
    """
    text = ["# Pose from τ: results", "",
            (f"Preset `{cfg.preset}`: {describe(cfg, grid)}. Device {info.get('device')}, torch "
             f"{info.get('torch')}, {info.get('threads')} threads."), "",
            ("Geodesic error between the predicted and the true rotation on the held-out pairs (degrees; "
             "mean ± standard error over seeds of each seed's median / mean)."), "",
            markdown_table(summary_rows(results), SUMMARY_HEADERS)]
    per_run = []
    for r in records:
        t = r["timings"]
        extra = f"{r['operator_purity']:.3f}" if "operator_purity" in r else "—"
        per_run.append([r["method"], str(r["seed"]), f"{r['median_deg']:.2f}", f"{r['mean_deg']:.2f}",
                        f"{r['p90_deg']:.1f}", f"{100 * r['below_15_deg']:.1f}", f"{r['parameters']:,}", extra,
                        f"{t['operator']:.0f}", f"{t['head']:.0f}", f"{t['eval']:.0f}"])
    text += ["", "Per run (purity: the learned eigenvectors' mean energy in one SH degree):", "",
             markdown_table(per_run, ["method", "seed", "median °", "mean °", "90th pct °", "< 15° %", "head params",
                                      "operator purity", "operator s", "head s", "eval s"]),
             "", f"Total wall time: {info.get('total_wall_seconds', 0):.0f} s.", ""]
    if figure:
        text += [f"![errors]({figure})", ""]
    write_text(path, "\n".join(text))


def _rotation_angle(R: np.ndarray) -> np.ndarray:
    """The rotation angle (degrees) of each R (E, 3, 3)."""
    R = R.astype(np.float64)
    return geodesic_deg(np.broadcast_to(np.eye(3), R.shape).copy(), R)


def make_figure(out: Path, methods: Sequence[str], seed: int) -> str | None:
    """``errors.png``: error histograms (left) and predicted vs true rotation angle (right), one seed.

    Returns the file name, or None when matplotlib is missing.
    """
    try:
        plt = plotting.pyplot()
    except ImportError as exc:  # pragma: no cover - matplotlib missing
        log.warning("figure skipped: %s", exc)
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.geomspace(0.1, 180.0, 49)  # log-spaced: errors span three decades
    for m in methods:
        f = out / m / f"seed{seed}" / "predictions.npz"
        if not f.is_file():
            continue
        d = np.load(f)
        ax1.hist(np.clip(d["errors"], 0.1, 180.0), bins=bins, histtype="step", lw=1.5,
                 label=f"{m} (median {np.median(d['errors']):.1f}°)")
        k = min(len(d["true"]), 600)
        ax2.scatter(_rotation_angle(d["true"][:k]), _rotation_angle(d["pred"][:k]), s=4, alpha=0.5, label=m)
    ax1.set_xscale("log")
    ax1.set_xlabel("geodesic error (degrees, log scale; < 0.1° shown at 0.1°)")
    ax1.set_ylabel("held-out pairs")
    ax1.set_title(f"error histogram (seed {seed})")
    ax1.legend(fontsize=8)
    ax2.plot([0, 180], [0, 180], "k--", lw=0.6)
    ax2.set_xlabel("true rotation angle (degrees)")
    ax2.set_ylabel("predicted rotation angle (degrees)")
    ax2.set_title("rotation angle: predicted vs true")
    ax2.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    plotting.save(fig, out / "errors.png")
    return "errors.png"
