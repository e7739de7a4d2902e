"""The report of a conformal SHREC'11 run: the summary table beside the paper's Table 2,
``results.md`` (with the NIso diagnostics, the results by view severity k and per-run timings),
``confusion.png``, ``mass_map.png`` and ``accuracy_by_k.png``."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom import plotting
from niso_geom.experiments.common import markdown_table, pct
from niso_geom.runio import write_text
from niso_geom.spectral.compare import mass_correlation

from .config import CShrec11Config
from .methods import METHODS, method_info
from .severity import by_k_rows, equiv_by_k_rows, plot_accuracy_by_k

log = logging.getLogger(__name__)

__all__ = ["METHOD_LABELS", "PAPER_RESULTS", "SUMMARY_HEADERS", "plot_confusions", "plot_mass_map", "summary_rows",
           "write_markdown", "write_report"]

#: The paper's Table 2 (conformal SHREC'11 test accuracy, %): (mean, standard error or None).
PAPER_RESULTS: dict[str, tuple[float, float | None]] = {
    "niso": (90.26, 1.27),
    "mobius_conv": (86.5, None),
    "nft": (83.24, None),
    "ae_aug": (69.36, None),
}
#: Table labels: every registered method's, and the paper's methods that are not re-run here.
METHOD_LABELS: dict[str, str] = {**{name: method_info(name).label for name in METHODS},
                                 "mobius_conv": "Möbius conv.", "nft": "NFT"}
SUMMARY_HEADERS = ["method", "test acc. % (ours)", "paper %", "seeds", "wall s"]


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows (method, ours, paper, seeds, wall) for the terminal and Markdown tables; the paper's
    methods that were not run follow as "not run"."""
    rows = []
    names = list(results["methods"]) + [m for m in PAPER_RESULTS if m not in results["methods"]]
    for m in names:
        r = results["methods"].get(m)
        paper = PAPER_RESULTS.get(m)
        rows.append([
            _label(m),
            pct(r["accuracy_mean"], r["accuracy_se"]) if r else "not run",
            (f"{paper[0]:.2f}" + (f" ± {paper[1]:.2f}" if paper[1] is not None else "")) if paper else "—",
            str(len(r["seeds"])) if r else "—",
            f"{r['wall_seconds']:.0f}" if r else "—",
        ])
    return rows


def _diag_rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        for stage in ("pretrained", "finetuned"):
            d = r.get("diagnostics", {}).get(stage)
            if not d or (stage == "pretrained" and r["method"] != "niso"):
                continue
            se = d.get("equiv_error_se")
            rows.append([_label(r["method"]), str(r["seed"]), stage,
                         f"{d['equiv_error']:.4f}" + (f" ± {se:.4f}" if se is not None else ""),
                         f"{d['identity_error']:.4f}",
                         f"{d['mass_sin_correlation']:.3f}" if d.get("mass_sin_correlation") is not None else "—",
                         f"{d['mass_sin_row_correlation']:.3f}" if d.get("mass_sin_row_correlation") is not None
                         else "—",
                         f"{d['spectral']['purity_mean']:.3f}" if "spectral" in d else "—"])
    return rows


def write_markdown(path: Path, cfg: CShrec11Config, results: dict[str, Any], records: Sequence[dict[str, Any]],
                   info: dict[str, Any]) -> None:
    """``results.md``: our table beside the paper's Table 2, diagnostics, per-run timings."""
    n_test = records[0]["num_test_meshes"] if records else 0
    n_pred = records[0]["num_test_predictions"] if records else 0
    n_train = records[0]["num_train_meshes"] if records else 0
    views = "random views" if cfg.head_views == "all" else "the untransformed view 0 only"
    ddp = f", {info.get('world_size')} DDP ranks" if info.get("world_size", 1) > 1 else ""
    intro = (f"Preset `{cfg.preset}`: {results['num_classes']} classes, {n_train} train / {n_test} test meshes "
             f"(split seed = seed), {cfg.res[0]}×{cfg.res[1]} grid, {1 + cfg.transforms} views per mesh; "
             f"classifiers trained on {views} of the train meshes; accuracy over all {n_pred} test views (every "
             f"view of every held-out test mesh), mean ± standard error over seeds. Device {info.get('device')}, "
             f"torch {info.get('torch')}, {info.get('threads')} threads{ddp}.")
    paper = ("Paper numbers: Table 2 of Mitchel et al. (NeurIPS 2024), full-size models (96×192 grid, 50k "
             "pre-training steps); Möbius conv. and NFT are not re-run here.")
    text = ["# Conformal SHREC'11 results", "", intro, "", paper, "",
            markdown_table(summary_rows(results), SUMMARY_HEADERS)]
    diag = _diag_rows(records)
    if diag:
        legend = ("NIso latent diagnostics on pairs of views of test meshes: the paper's equivariance error "
                  "‖τẑ − Tẑ‖/‖Tẑ‖ (Table 4), the same without the map (τ = I), the correlation of the learned "
                  "mass with sin θ of the latent grid (all cells; ring means), and the mean SH-degree purity of "
                  "the learned eigenvectors:")
        text += ["", legend, "", markdown_table(diag, ["method", "seed", "model", "equiv. error", "τ = I",
                                                       "mass~sin θ", "ring means~sin θ", "SH purity"])]
    by_k = results.get("by_k")
    if by_k:
        text += ["", ("By view severity k (the largest linear scale factor of the view's Möbius map; view 0 "
                 "has k = 1): test accuracy % per bin, mean ± s.e. over seeds (— : no test view in the bin):"), "",
                 markdown_table(by_k_rows(by_k, _label), ["method", *by_k["bins"]])]
        eq = equiv_by_k_rows(by_k)
        if eq:
            text += ["", ("Equivariance error of the pre-trained NIso model per bin of the pair's k (k of the map "
                     "between the two views), mean ± s.e. over seeds (pairs, all seeds):"), "",
                     markdown_table(eq, ["model", *by_k["bins"]])]
    per_run = [[_label(r["method"]), str(r["seed"]), f"{100 * r['accuracy']:.2f}",
                f"{r['timings'].get('pretrain', 0):.0f}", f"{r['timings']['features'] + r['timings']['head']:.0f}",
                f"{r['timings']['eval']:.0f}"] for r in records]
    totals = (f"Total wall time {info.get('total_wall_seconds', 0):.0f} s, process CPU time "
              f"{info.get('total_cpu_seconds', 0):.0f} s.")
    figures = ("Figures: `confusion.png` (row-normalized confusion matrices, summed over seeds), "
               "`mass_map.png` (the learned mass beside sin θ)"
               + (", `accuracy_by_k.png` (accuracy per bin of k)." if by_k else "."))
    text += ["", "Per run (seconds):", "",
             markdown_table(per_run, ["method", "seed", "test %", "pretrain", "features + head", "eval"]),
             "", totals, "", figures, ""]
    write_text(path, "\n".join(text))


def plot_confusions(path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str],
                    class_names: Sequence[str]) -> None:
    """One row-normalized confusion matrix per method (summed over seeds) in one PNG."""
    plt = plotting.pyplot()
    methods = [m for m in methods if any(r["method"] == m for r in records)]
    if not methods:
        return
    cols = min(3, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    n = len(class_names)
    for ax, m in zip(axes.flat, methods):
        cm = sum(np.asarray(r["confusion"], dtype=np.float64) for r in records if r["method"] == m)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{_label(m)}: {100 * acc:.1f} %", fontsize=9)
        ticks = np.arange(n)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels(class_names, rotation=90, fontsize=5)
        ax.set_yticklabels(class_names, fontsize=5)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_axis_off()
    fig.tight_layout()
    plotting.save(fig, path)


def plot_mass_map(path: Path, mm: dict[str, np.ndarray], corr: float | None) -> None:
    """The learned mass on the latent grid beside sin θ, and their ring means (both scaled to mean 1)."""
    plt = plotting.pyplot()
    M, S, theta = mm["mass"], mm["sin_theta"], mm["theta"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, img, title in ((axes[0], M, "learned mass M"), (axes[1], S, "sin θ (latent grid)")):
        im = ax.imshow(img, extent=(0, 360, 180, 0), aspect="auto", cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("longitude °", fontsize=8)
        ax.set_ylabel("colatitude °", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    deg = np.degrees(theta)
    axes[2].plot(deg, M.mean(1) / M.mean(), "o-", label="ring mean of M")
    axes[2].plot(deg, np.sin(theta) / np.sin(theta).mean(), "k--", label="sin θ")
    axes[2].set_xlabel("colatitude °", fontsize=8)
    axes[2].legend(fontsize=8)
    axes[2].set_title("correlation (all cells) " + ("n/a" if corr is None else f"{corr:.3f}"), fontsize=9)
    fig.tight_layout()
    plotting.save(fig, path)


def write_report(out: Path, cfg: CShrec11Config, results: dict[str, Any], records: Sequence[dict[str, Any]],
                 info: dict[str, Any], *, methods: Sequence[str], seeds: Sequence[int],
                 class_names: Sequence[str]) -> None:
    """``results.md``, ``confusion.png`` and (when a NIso method ran) ``mass_map.png`` of the
    first seed's pre-trained model; without matplotlib, the tables only."""
    write_markdown(out / "results.md", cfg, results, records, info)
    try:
        plot_confusions(out / "confusion.png", records, methods, class_names)
        if results.get("by_k"):
            plot_accuracy_by_k(out / "accuracy_by_k.png", results["by_k"], _label)
        niso = [m for m in methods if method_info(m).pretraining == "niso"]  # they saved the mass map
        if niso:
            with np.load(out / niso[0] / f"seed{int(seeds[0])}" / "mass_map.npz") as z:
                mm = {k: z[k] for k in z.files}
            plot_mass_map(out / "mass_map.png", mm, mass_correlation(mm["mass"].ravel(), mm["sin_theta"].ravel()))
    except ImportError as exc:  # matplotlib missing: tables only
        log.warning("figures skipped: %s", exc)
