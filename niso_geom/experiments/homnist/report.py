"""homNIST tables: the summary rows (ours beside the paper's Table 1) and ``results.md``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from niso_geom.experiments.common import markdown_table, pct
from niso_geom.experiments.homnist.config import HomNISTConfig
from niso_geom.runio import write_text

__all__ = ["METHOD_LABELS", "PAPER_RESULTS", "SUMMARY_HEADERS", "summary_rows", "write_markdown"]

#: Display names, also of the paper's methods we do not run (homConv, LieDecomp).
METHOD_LABELS: dict[str, str] = {
    "niso": "NIso",
    "niso_triplets": "NIso w/ triplets",
    "niso_no_equiv": "NIso w/o equivariance loss",
    "niso_no_mult": "NIso w/o multiplicity loss",
    "ae_aug": "AE + aug.",
    "ae_aug_labels": "AE + aug. (augmented labelled digits)",
    "homconv": "homConv",
    "liedecomp": "LieDecomp",
}
#: The paper's Table 1 (homNIST test accuracy, %): (mean, standard error or None).
PAPER_RESULTS: dict[str, tuple[float, float | None]] = {
    "niso": (92.52, 0.91),
    "niso_triplets": (97.38, None),
    "niso_no_equiv": (77.30, None),
    "niso_no_mult": (45.27, None),
    "ae_aug": (80.96, None),
    "homconv": (95.71, None),
    "liedecomp": (98.30, None),
}
SUMMARY_HEADERS = ["method", "homNIST acc. % (ours)", "s.e. digits", "clean acc. %", "paper %", "seeds", "wall s"]


def _se(value: float | None) -> str:
    return "—" if value is None else f"± {100 * value:.2f}"


def _with_se(acc: float, se: float | None) -> str:
    return f"{100 * acc:.2f}" + ("" if se is None else f" ± {100 * se:.2f}")


def summary_rows(results: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows (method, ours ± s.e. over seeds, ± s.e. over test digits, clean ± s.e. over digits,
    paper, seeds, wall) for the terminal and Markdown tables: the methods of ``results``, then the
    paper's methods that were not run."""
    rows = []
    names = list(results["methods"]) + [m for m in PAPER_RESULTS if m not in results["methods"]]
    for m in names:
        r = results["methods"].get(m)
        clean = [x["clean_accuracy"] for x in records if x["method"] == m]
        paper = PAPER_RESULTS.get(m)
        rows.append([
            METHOD_LABELS.get(m, m),
            pct(r["accuracy_mean"], r["accuracy_se"]) if r else "not run",
            _se(r.get("accuracy_se_digits")) if r else "—",
            _with_se(float(np.mean(clean)), r.get("clean_accuracy_se_digits")) if r and clean else "—",
            (f"{paper[0]:.2f}" + (f" ± {paper[1]:.2f}" if paper[1] is not None else "")) if paper else "—",
            str(len(r["seeds"])) if r else "—",
            f"{r['wall_seconds']:.0f}" if r else "—",
        ])
    return rows


def write_markdown(path: str | os.PathLike, cfg: HomNISTConfig, results: dict[str, Any],
                   records: Sequence[dict[str, Any]], info: dict[str, Any]) -> None:
    """``results.md``: the summary table, then one row per (method, seed) with its timings."""
    n_test = records[0]["num_test"] if records else 0
    per_run = [[METHOD_LABELS.get(r["method"], r["method"]), str(r["seed"]),
                _with_se(r["accuracy"], r.get("accuracy_se_digits")),
                _with_se(r["clean_accuracy"], r.get("clean_accuracy_se_digits")), f"{r['timings']['pretrain']:.0f}",
                f"{r['timings']['features'] + r['timings']['head']:.0f}", f"{r['timings']['eval']:.0f}"]
               for r in records]
    text = [
        "# homNIST results",
        "",
        (f"Preset `{cfg.preset}`; homNIST test images: {n_test} "
        f"({'all 10,000' if cfg.test_digits is None else cfg.test_digits} MNIST test digits"
        f"{'' if cfg.test_digits is None else (', a random subset' if cfg.test_pick == 'random' else ', the first ones')}"
        f" × 32 homographies, homNIST seed {cfg.homnist_seed}); device {info.get('device')}, "
        f"torch {info.get('torch')}, {info.get('threads')} threads."),
        "",
        ("Accuracy on the homography-warped test digits (mean ± standard error over seeds; \"s.e. digits\": "
        "standard error across test digits, each digit's accuracy over its 32 warps one sample, of the "
        "seed-mean accuracy — how much another draw of test digits could move the number). Every method "
        "sees homographies only in its unlabelled pre-training; its classifier is trained on clean labelled "
        "digits (except `ae_aug_labels`, trained on homography-augmented labelled digits). "
        "\"clean\" is the same classifier on the unwarped test digits. Paper numbers: Table 1 of "
        "Mitchel et al. (NeurIPS 2024), full-size models and test set."),
        "",
        markdown_table(summary_rows(results, records), SUMMARY_HEADERS),
        "",
        "Per run:",
        "",
        markdown_table(per_run, ["method", "seed", "homNIST %", "clean %", "pretrain s", "head s", "eval s"]),
        "",
        f"Total wall time: {info.get('total_wall_seconds', 0):.0f} s.",
        "",
    ]
    write_text(path, "\n".join(text))
