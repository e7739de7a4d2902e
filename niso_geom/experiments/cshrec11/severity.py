"""Results of a conformal SHREC'11 run by view severity ``k`` (the largest linear scale factor of a
view's Möbius map, :func:`~niso_geom.geometry.mobius.mobius_max_scale`).

* :func:`view_transforms` — every view's SL(2, ℂ) matrix (view 0: the identity) of a dataset;
* :func:`accuracy_by_bin` — one run's accuracy per ``k`` bin (:data:`K_EDGES`);
* :func:`pair_scales` — ``k`` of the map between two views of a mesh (the equivariance error's bins);
* :func:`aggregate_by_k` — per method and bin, mean ± s.e. over seeds (``results.json["by_k"]``);
* :func:`by_k_rows`, :func:`equiv_by_k_rows`, :func:`plot_accuracy_by_k` — the report's tables and plot.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom import plotting
from niso_geom.experiments.common import standard_error
from niso_geom.geometry.mobius import mobius_inverse, mobius_max_scale

__all__ = ["K_EDGES", "accuracy_by_bin", "aggregate_by_k", "bin_labels", "bin_of", "by_k_rows", "equiv_by_k_rows",
           "pair_scales", "plot_accuracy_by_k", "view_transforms"]

#: Upper edges of the k bins: k ≤ 2, 2 < k ≤ 5, 5 < k ≤ 20, k > 20.
K_EDGES = (2.0, 5.0, 20.0)


def bin_labels(edges: Sequence[float] = K_EDGES) -> list[str]:
    """``["k ≤ 2", "2 < k ≤ 5", "5 < k ≤ 20", "k > 20"]`` for the default edges."""
    e = [f"{x:g}" for x in edges]
    return [f"k ≤ {e[0]}"] + [f"{a} < k ≤ {b}" for a, b in itertools.pairwise(e)] + [f"k > {e[-1]}"]


def bin_of(k: np.ndarray, edges: Sequence[float] = K_EDGES) -> np.ndarray:
    """Bin index (same shape as ``k``) of each ``k``: 0 for k ≤ edges[0], ..., len(edges) above the last."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(k, dtype=np.float64), side="left")


def view_transforms(ds: Any, ids: np.ndarray) -> np.ndarray | None:
    """(len(ids), V, 2, 2) complex: view 0 the identity, view v the stored ``mobius[v − 1]``.

    Reads ``ds.extras(i)["mobius"]`` (:meth:`~niso_geom.data.cshrec11.CShrec11.extras`); None for
    a dataset without ``extras`` (then no result is binned by k).
    """
    if not hasattr(ds, "extras"):
        return None
    out = np.zeros((len(ids), int(ds.num_views), 2, 2), dtype=np.complex128)
    out[:, :] = np.eye(2)
    for r, i in enumerate(np.asarray(ids, dtype=np.int64)):
        mats = np.asarray(ds.extras(int(i))["mobius"], dtype=np.complex128)
        if mats.shape != (ds.num_views - 1, 2, 2):
            raise ValueError(f"mesh {i}: {mats.shape[0]} stored transforms for {ds.num_views - 1} Möbius views")
        out[r, 1:] = mats
    return out


def accuracy_by_bin(hits: np.ndarray, k: np.ndarray, edges: Sequence[float] = K_EDGES) -> dict[str, dict[str, Any]]:
    """``{label: {"accuracy": fraction or None (no views), "predictions": n}}`` from (n, V) hits and k."""
    hits, b = np.asarray(hits, dtype=bool), bin_of(k, edges)
    if hits.shape != b.shape:
        raise ValueError(f"hits {hits.shape} and k {b.shape} must have the same shape")
    out = {}
    for j, label in enumerate(bin_labels(edges)):
        sel = hits[b == j]
        out[label] = {"accuracy": float(sel.mean()) if sel.size else None, "predictions": int(sel.size)}
    return out


def pair_scales(mats: np.ndarray, rows: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """k of the map taking view ``first`` to view ``second`` of each row: ``M_second M_first⁻¹``, (B,)."""
    rel = mats[rows, second] @ mobius_inverse(mats[rows, first])
    return np.atleast_1d(mobius_max_scale(rel))


def _mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(a):
        return None, None
    return float(a.mean()), standard_error(a)


def aggregate_by_k(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any] | None:
    """Per method and k bin: mean ± s.e. over seeds of the bin's accuracy and the number of test
    predictions in the bin (all seeds together); per pre-training (``spec["pretrain_of"]``, once
    even when several methods share it) the equivariance error per bin of the pair's k, mean ± s.e.
    over seeds and the pairs of all seeds. None when no record has per-bin results."""
    binned = [r for r in records if r.get("by_k")]
    if not binned:
        return None
    labels = bin_labels()
    out: dict[str, Any] = {"edges": list(K_EDGES), "bins": labels, "methods": {}, "equiv_error": {}}
    for m in methods:
        rs = [r for r in binned if r["method"] == m]
        if not rs:
            continue
        out["methods"][m] = {}
        for label in labels:
            mean, se = _mean_se([r["by_k"][label]["accuracy"] for r in rs])
            out["methods"][m][label] = {"accuracy_mean": mean, "accuracy_se": se,
                                        "predictions": sum(int(r["by_k"][label]["predictions"]) for r in rs)}
        eq = [r["diagnostics"].get("pretrained", {}).get("equiv_error_by_k") for r in rs]
        pre = rs[0].get("spec", {}).get("pretrain_of") or m
        if any(eq) and pre not in out["equiv_error"]:
            out["equiv_error"][pre] = {label: dict(zip(("mean", "se"), _mean_se([e[label]["mean"] for e in eq if e])),
                                                 pairs=sum(e[label]["pairs"] for e in eq if e)) for label in labels}
    return out


def _pct(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def by_k_rows(by_k: dict[str, Any], label_of) -> list[list[str]]:
    """Markdown rows: method, then accuracy % (mean ± s.e.) per bin; a last row of test views (all seeds)."""
    rows = [[label_of(m)] + [_pct(b["accuracy_mean"], b["accuracy_se"]) for b in per.values()]
            for m, per in by_k["methods"].items()]
    first = next(iter(by_k["methods"].values()))
    rows.append(["test views (all seeds)"] + [str(first[label]["predictions"]) for label in by_k["bins"]])
    return rows


def equiv_by_k_rows(by_k: dict[str, Any]) -> list[list[str]]:
    """Markdown rows: pre-training, then the equivariance error (mean ± s.e. over seeds, pairs) per bin of the pair's k."""
    rows = []
    for pre, per in by_k.get("equiv_error", {}).items():
        cells = []
        for label in by_k["bins"]:
            e = per[label]
            cells.append("—" if e["mean"] is None else f"{e['mean']:.4f}" + (f" ± {e['se']:.4f}" if e["se"] else "")
                         + f" ({e['pairs']})")
        rows.append([f"pre-trained {pre}"] + cells)
    return rows


def plot_accuracy_by_k(path: Path, by_k: dict[str, Any], label_of) -> None:
    """Test accuracy against the k bin, one line per method (error bars: s.e. over seeds)."""
    plt = plotting.pyplot()
    labels = by_k["bins"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for m, per in by_k["methods"].items():
        y = np.array([np.nan if per[b]["accuracy_mean"] is None else 100 * per[b]["accuracy_mean"] for b in labels])
        err = np.array([0.0 if per[b]["accuracy_se"] is None else 100 * per[b]["accuracy_se"] for b in labels])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label_of(m))
    first = next(iter(by_k["methods"].values()))
    ax.set_xticks(x)
    ax.set_xticklabels([f"{b}\n({first[b]['predictions']} test views)" for b in labels], fontsize=8)
    ax.set_xlabel("view severity k (largest linear scale factor of its Möbius map)", fontsize=8)
    ax.set_ylabel("test accuracy %", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plotting.save(fig, path)
