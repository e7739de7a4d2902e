"""Held-out evaluation: a head's predictions, error summaries and the closed-form references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from niso_geom.data.pose_pairs import PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.pose.config import PoseConfig
from niso_geom.experiments.pose.data import Features, eval_chunks
from niso_geom.niso.pose import (
    geodesic_deg,
    haar_mean_deg,
    haar_median_deg,
    rotation_from_coefficients,
)
from niso_geom.runio import atomic_write

__all__ = ["error_summary", "predict", "references", "save_predictions"]


@torch.no_grad()
def predict(model: nn.Module, features: Features, cfg: PoseConfig, pairs: PosePairs,
            device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true rotations (E, 3, 3) on the held-out set."""
    model.eval()
    preds, truth = [], []
    for x, tx, R in eval_chunks(cfg, pairs):
        preds.append(model(features(x.to(device), tx.to(device))).double().cpu())
        truth.append(R)
    return torch.cat(preds).numpy(), torch.cat(truth).numpy()


def error_summary(errors: np.ndarray) -> dict[str, float]:
    """Median, mean, 90th percentile (degrees) and share below 15° of geodesic errors (E,)."""
    return {"median_deg": float(np.median(errors)), "mean_deg": float(np.mean(errors)),
            "p90_deg": float(np.percentile(errors, 90)), "below_15_deg": float(np.mean(errors < 15.0))}


def save_predictions(path: Path, pred: np.ndarray, true: np.ndarray, errors: np.ndarray) -> None:
    """``predictions.npz`` (atomic): float32 rotations ``pred``/``true`` (E, 3, 3), float64 ``errors`` (E,)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, pred=pred.astype(np.float32), true=true.astype(np.float32), errors=errors)


def references(cfg: PoseConfig, grid: SphereGrid, eval_pairs: PosePairs) -> dict[str, Any]:
    """Closed-form reference errors on the held-out set: identity prediction and the SH oracle
    (degree-1 Procrustes on the true SH coefficients), plus the analytic Haar chance level."""
    Y = torch.from_numpy(grid.harmonics(cfg.lmax) * grid.mass[:, None])  # quadrature analysis, exact to lmax
    ident, oracle = [], []
    for x, tx, R in eval_chunks(cfg, eval_pairs):
        eye = torch.eye(3, dtype=torch.float64).expand_as(R)
        ident.append(geodesic_deg(eye, R))
        a, b = Y.mT @ x.double(), Y.mT @ tx.double()
        oracle.append(geodesic_deg(rotation_from_coefficients(a, b), R))
    out = {"identity": error_summary(torch.cat(ident).numpy()),
           "sh_oracle": error_summary(torch.cat(oracle).numpy())}
    if cfg.rotations == "haar":
        out["haar_chance"] = {"median_deg": haar_median_deg(), "mean_deg": haar_mean_deg()}
    return out
