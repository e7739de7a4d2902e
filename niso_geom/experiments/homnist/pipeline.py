"""One homNIST method with one seed: pre-training, head features, classifier head, evaluation.

1. **Pre-training** on padded MNIST training digits: batches of homography views
   (:class:`~.data.HomographyViews`) and the NIso objective of
   :class:`~niso_geom.niso.autoencoder.NIsoAutoencoder`, or the plain autoencoder for ``ae``.
2. **Head features** of labelled training digits through the frozen encoder (and frozen
   operator), cached in memory; clean digits unless the method's spec says ``head_augment``.
3. **Classifier head** (:func:`~.models.build_head`) trained on the cached features.
4. **Evaluation** on the homNIST test set and on the same digits unwarped: accuracy and its
   standard error across test digits (each digit's accuracy over its 32 warps is one sample).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from niso_geom.data.homnist import HomographyPairSampler, warp_images
from niso_geom.experiments.common import Classifier, TensorBatches, finished_result, standard_error
from niso_geom.experiments.homnist.config import HomNISTConfig
from niso_geom.experiments.homnist.data import (
    HomNISTData,
    HomographyViews,
    per_digit_correct,
    to_dual,
    unit_to_dual,
)
from niso_geom.experiments.homnist.methods import method_spec
from niso_geom.experiments.homnist.models import (
    Autoencoder,
    build_autoencoder,
    build_head,
    head_input,
)
from niso_geom.runio import write_json
from niso_geom.train import pretrain, resolve_device

__all__ = ["digit_standard_error", "evaluate", "head_features", "run_method"]


def head_features(model: Autoencoder, images_u8: torch.Tensor, kind: str, batch: int, *,
                  homographies: HomographyPairSampler | None = None, progress: bool = False,
                  desc: str = "features", train_kernel: bool = False) -> torch.Tensor:
    """Head inputs for uint8 images (N, 40, 40): NIso coefficients (N, K, C) (with
    ``train_kernel``: latents (N, h·w, C)) or AE grid latents (N, C, h, w), on the CPU. With
    ``homographies``, every image is first warped by a fresh random homography."""
    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.no_grad():
        for s in tqdm(range(0, len(images_u8), batch), desc=desc, unit="batch", leave=False, disable=not progress):
            x = to_dual(images_u8[s:s + batch])
            if homographies is not None:
                x = warp_images(x, homographies.sample(len(x)), -1.0)
            out.append(head_input(model, x.to(device), kind, train_kernel).cpu())
    return torch.cat(out)


@torch.no_grad()
def evaluate(model: Autoencoder, head: nn.Module, images: np.ndarray | torch.Tensor, labels: torch.Tensor,
             kind: str, batch: int, *, progress: bool, desc: str, train_kernel: bool = False) -> np.ndarray:
    """Which images head(features(images)) classifies correctly: (N,) bool; images (N, 40, 40)
    float in [0, 1] or uint8, labels (N,)."""
    device = next(model.parameters()).device
    head.eval()
    correct = []
    for s in tqdm(range(0, len(labels), batch), desc=desc, unit="batch", leave=False, disable=not progress):
        chunk = images[s:s + batch]
        chunk = torch.from_numpy(np.ascontiguousarray(chunk)) if isinstance(chunk, np.ndarray) else chunk
        x = to_dual(chunk) if chunk.dtype == torch.uint8 else unit_to_dual(chunk)
        pred = head(head_input(model, x.to(device), kind, train_kernel)).argmax(-1).cpu()
        correct.append((pred == labels[s:s + batch]).numpy())
    return np.concatenate(correct) if correct else np.zeros(0, dtype=bool)


def digit_standard_error(per_digit: np.ndarray, per: int) -> float | None:
    """Standard error of an accuracy across test digits: the sample standard deviation of the
    digits' accuracies (``per_digit`` correct out of ``per`` each) over sqrt(digits); None for
    fewer than two digits."""
    return standard_error(np.asarray(per_digit, dtype=np.float64) / per)


def run_method(cfg: HomNISTConfig, method: str, seed: int, out_dir: str | os.PathLike, data: HomNISTData, *,
               device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
               pretrain_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Pre-train, train the head and evaluate one method with one seed; returns its record.

    ``pretrain_dir`` (default ``out_dir/pretrain``) holds the pre-training checkpoints; methods
    that share a pre-training (``ae_aug_labels`` uses ``ae_aug``'s) pass the same folder, and
    the second one resumes the finished run. The record is also written to
    ``out_dir/result.json``; with ``resume``, a finished record with the same config digest is
    returned as is.
    """
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and (rec := finished_result(result_path, cfg.digest())) is not None:
        return rec
    spec = method_spec(cfg, method)
    dev = resolve_device(device)
    digits, labels = data.train
    n_pre = len(digits) if cfg.pretrain_digits is None else min(cfg.pretrain_digits, len(digits))

    # 1. pre-training
    torch.manual_seed(seed)
    model = build_autoencoder(cfg, spec.kind, spec.alpha or 0.0, spec.beta or 0.0)
    source = HomographyViews(digits[:n_pre], spec.batch, spec.views, seed=seed, scale=cfg.homography_scale,
                             same_transform=cfg.triplet_same_transform)
    pre = pretrain(model, source, cfg.steps, lr=cfg.lr, warmup=cfg.warmup, end_lr=cfg.end_lr, accum=cfg.accum,
                   decay_steps=cfg.decay_steps, amp=cfg.amp, channels_last=cfg.channels_last, compile=cfg.compile,
                   device=dev, out_dir=Path(pretrain_dir) if pretrain_dir else out / "pretrain",
                   resume=resume, progress=progress, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                   desc=f"{method} s{seed} pretrain", extra={"method": spec.pretrain_of, "seed": seed})

    # 2. head features (frozen encoder and operator; with head_train_kernel the latents), cached in memory
    train_kernel = spec.kind == "niso" and cfg.head_train_kernel
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    n_head = len(digits) if cfg.head_digits is None else min(cfg.head_digits, len(digits))
    pick = torch.from_numpy(np.sort(rng.permutation(len(digits))[:n_head]))
    labelled, head_labels = digits[pick], labels[pick]
    if spec.head_augment:  # labelled digits under random homographies (pre-training's sampler)
        aug = HomographyPairSampler(cfg.homography_scale, method="gaussian", background=-1.0,
                                    rng=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,))))
        feats = torch.cat([head_features(model, labelled, spec.kind, cfg.eval_batch, homographies=aug,
                                         progress=progress, desc=f"{method} s{seed} augmented {v + 1}/{cfg.aug_views}",
                                         train_kernel=train_kernel)
                           for v in range(cfg.aug_views)])
        feat_labels = head_labels.repeat(cfg.aug_views)
    else:  # clean labelled digits only, as the paper's classifiers
        feats = head_features(model, labelled, spec.kind, cfg.eval_batch, progress=progress,
                              desc=f"{method} s{seed} features", train_kernel=train_kernel)
        feat_labels = head_labels
    t_features = time.perf_counter() - t0

    # 3. classifier head
    torch.manual_seed(seed + 1)
    head = build_head(cfg, spec.kind, model.latent_shape, operator=getattr(model, "operator", None))
    clf = Classifier(head)
    head_end_lr = cfg.head_lr * 0.05 if cfg.head_end_lr is None else cfg.head_end_lr
    head_res = pretrain(clf, TensorBatches(feats, feat_labels, batch=cfg.head_batch, seed=seed), cfg.head_steps,
                        lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=head_end_lr,
                        decay_steps=cfg.head_decay_steps, amp="off", device=dev,
                        out_dir=out / "head", resume=resume, progress=progress,
                        checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                        desc=f"{method} s{seed} head", extra={"method": method, "seed": seed})

    # 4. evaluation on held-out digits
    t0 = time.perf_counter()
    model.eval()
    test, (clean_images, clean_labels) = data.test, data.clean_test
    correct = evaluate(model, head, test.images, torch.as_tensor(test.labels), spec.kind, cfg.eval_batch,
                       progress=progress, desc=f"{method} s{seed} homNIST", train_kernel=train_kernel)
    clean_correct = evaluate(model, head, clean_images, clean_labels, spec.kind, cfg.eval_batch,
                             progress=progress, desc=f"{method} s{seed} clean", train_kernel=train_kernel)
    t_eval = time.perf_counter() - t0
    digits = data.test_digits
    per = len(test.labels) // max(len(digits), 1)
    by_digit = per_digit_correct(correct, np.asarray(test.digit_index), digits)
    rec = {
        "method": method,
        "seed": seed,
        "accuracy": float(correct.mean()) if len(correct) else 0.0,
        "accuracy_se_digits": digit_standard_error(by_digit, per),
        "clean_accuracy": float(clean_correct.mean()) if len(clean_correct) else 0.0,
        "clean_accuracy_se_digits": digit_standard_error(clean_correct.astype(np.int64), 1),
        "num_test": len(test.labels),
        "num_clean_test": len(clean_labels),
        "num_test_digits": len(digits),
        "warps_per_digit": per,
        "wall_seconds": pre.wall_seconds + t_features + head_res.wall_seconds + t_eval,
        "timings": {"pretrain": pre.wall_seconds, "features": t_features, "head": head_res.wall_seconds,
                    "eval": t_eval},
        "pretrain_final": pre.final,
        "head_final": head_res.final,
        "spec": spec.to_dict(),
        "config_digest": cfg.digest(),
        "per_digit_correct": by_digit.tolist(),
        "clean_per_digit_correct": clean_correct.astype(np.int64).tolist(),
    }
    write_json(result_path, rec)
    return rec
