"""How equivariant is a trained homNIST encoder on the test homographies, and does it matter?

For the clean test digit x and each of its homNIST warps Tx, with coefficients ẑ = Φᵀ M E(·)
(K, C) of a finished NIso run, the relative residual ``‖ẑ(Tx) − τ ẑ(x)‖² / ‖ẑ(Tx)‖²`` is
measured for τ the masked map the NIso loss uses and for the best rotation in SO(K) (what the
O(K)-invariant head is blind to), per spectral mode and overall, against a chance level (x
paired with the warps of another digit); then the head's homNIST accuracy is split by quartile
of the residual. ``niso homnist equivariance RUN_DIR`` prints it and writes
``equivariance.json`` beside the method's ``result.json``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from niso_geom.data.homnist import build_homnist
from niso_geom.errors import RunDirError
from niso_geom.experiments.common import Classifier
from niso_geom.experiments.homnist.config import load_run_config
from niso_geom.experiments.homnist.data import (
    load_test_digits,
    test_digit_indices,
    to_dual,
    unit_to_dual,
)
from niso_geom.experiments.homnist.methods import method_spec
from niso_geom.experiments.homnist.models import KernelHead, build_autoencoder, build_head
from niso_geom.niso.autoencoder import encode_coefficients
from niso_geom.niso.isometry import iso_solve_coeffs
from niso_geom.runio import write_json
from niso_geom.train import latest_checkpoint, load_checkpoint

__all__ = ["equivariance_report", "pair_residuals"]


def pair_residuals(src: torch.Tensor, dst: torch.Tensor, evals: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative residuals of ``dst ≈ τ src`` with τ in SO(K) solved per pair.

    Parameters
    ----------
    src, dst : Tensor (B, K, C) coefficients.
    evals : Tensor (K,) for the masked map of the NIso loss, None for the best rotation.

    Returns
    -------
    total : (B,) ``‖dst − τ src‖² / ‖dst‖²``; per_mode : (B, K) the same ratio row by row.
    """
    tau = iso_solve_coeffs(src, dst, evals)
    res = (dst - tau @ src).square()
    power = dst.square()
    tiny = torch.finfo(dst.dtype).tiny
    return res.sum((1, 2)) / power.sum((1, 2)).clamp_min(tiny), res.sum(2) / power.sum(2).clamp_min(tiny)


def _latest(folder: Path) -> Path:
    last = latest_checkpoint(folder)
    if last is None:
        raise RunDirError(f"no checkpoint in {folder}; has this method finished?")
    return last


def equivariance_report(run_dir: str | os.PathLike, method: str = "niso", seed: int = 0, digits: int = 100, *,
                        data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Residuals and accuracy by residual quartile for one finished NIso method/seed (see module doc).

    ``digits`` of the run's clean test digits (the first of its sorted test digit indices, and
    their 32 warps each) are used. With ``head_train_kernel`` the operator is the one the head
    trained (its checkpoint holds it). Returns a JSON-ready dict,
    also written to ``run_dir/<method>/seed<seed>/equivariance.json``.
    """
    run = Path(run_dir)
    cfg = load_run_config(run)
    spec = method_spec(cfg, method)
    if spec.kind != "niso":
        raise ValueError(f"{method!r} has no learned operator; choose a NIso method")
    if digits < 2:
        raise ValueError(f"digits must be >= 2 (the chance level pairs different digits), got {digits}")
    base = run / method / f"seed{seed}"
    model = build_autoencoder(cfg, "niso", spec.alpha, spec.beta)
    load_checkpoint(_latest(run / spec.pretrain_of / f"seed{seed}" / "pretrain" / "checkpoints"), model,
                    restore_rng=False, map_location="cpu")
    clf = Classifier(build_head(cfg, "niso", model.latent_shape, operator=model.operator))
    load_checkpoint(_latest(base / "head" / "checkpoints"), clf, restore_rng=False, map_location="cpu")
    model.eval()
    clf.eval()
    # the head on coefficients (a KernelHead's inner head sees Φᵀ M E(x) with the operator it trained)
    head = clf.head.head if isinstance(clf.head, KernelHead) else clf.head

    ids = test_digit_indices(cfg.test_digits, cfg.homnist_seed, cfg.test_pick)[:digits]
    n = len(ids)
    test = build_homnist(seed=cfg.homnist_seed, indices=ids, progress=False, data_root=data_root)
    clean_u8, clean_labels = load_test_digits(None, data_root, indices=ids)
    per = len(test.labels) // n
    with torch.no_grad():
        zc = encode_coefficients(model, to_dual(clean_u8), batch_size=cfg.eval_batch)
        zw = encode_coefficients(model, unit_to_dual(torch.from_numpy(test.images)), batch_size=cfg.eval_batch)
        src = zc.repeat_interleave(per, 0)
        evals = model.state().evals
        masked, masked_modes = pair_residuals(src, zw, evals)
        free, free_modes = pair_residuals(src, zw, None)
        chance, _ = pair_residuals(zc.roll(1, 0).repeat_interleave(per, 0), zw, None)
        correct = (head(zw).argmax(-1) == torch.as_tensor(test.labels)).double()
        clean_acc = float((head(zc).argmax(-1) == clean_labels).double().mean())
    edges = np.quantile(free.numpy(), [0.0, 0.25, 0.5, 0.75, 1.0])
    quartiles = []
    for q, (lo, hi) in enumerate(itertools.pairwise(edges)):
        sel = (free >= lo) & ((free < hi) if q < 3 else (free <= hi))
        quartiles.append({"residual_from": float(lo), "residual_to": float(hi), "images": int(sel.sum()),
                          "accuracy": float(correct[sel].mean()) if sel.any() else None})
    report = {
        "method": method, "seed": seed, "digits": n, "images": len(zw),
        "residual_masked_mean": float(masked.mean()),
        "residual_free_mean": float(free.mean()),
        "residual_free_median": float(free.median()),
        "residual_chance_mean": float(chance.mean()),
        "residual_free_over_chance": float(free.mean() / chance.mean().clamp_min(torch.finfo(chance.dtype).tiny)),
        "residual_masked_per_mode": masked_modes.mean(0).tolist(),
        "residual_free_per_mode": free_modes.mean(0).tolist(),
        "energy_share_per_mode": (zc.square().sum(2) / zc.square().sum((1, 2)).unsqueeze(1)).mean(0).tolist(),
        "learned_evals": evals.tolist(),
        "accuracy": float(correct.mean()), "clean_accuracy": clean_acc,
        "accuracy_by_residual_quartile": quartiles,
    }
    write_json(base / "equivariance.json", report)
    return report
