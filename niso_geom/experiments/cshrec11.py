"""Conformal SHREC'11 shape classification: NIso against baselines (the paper's Table 2).

Data (:func:`~niso_geom.data.cshrec11.load_cshrec11`): heat kernel signatures (16 channels) of
the SHREC'11 meshes pulled back to an equiangular sphere grid through a conformal map, each
mesh under V = 1 + T views (view 0 = the map itself, views 1..T = random Möbius transforms of
it); per seed k the split with split seed k (10 train / 4 test meshes per class), normalized
with its train statistics. Every model sees random views of **train** meshes only; every
accuracy is over **every view of every held-out test mesh** (the official code's pre-training
"evaluation" reads training batches, ``niso-reference.md`` §7 items 2 and 10).

Methods (one seed each; :data:`METHODS`):

``niso``
    NIso pre-training on pairs of views of the same train mesh (:class:`ViewPairs`, §3.4):
    sphere-padded :class:`~niso_geom.niso.models.GridEncoder` to a coarser sphere grid,
    learned operator (Φ, Λ, M) with K eigenpairs, decoder; recon + α·equiv + β·mult with
    α = 0.5, β = 0.01. Then the paper's O(K)-invariant :class:`~niso_geom.equivariant.OrthNet`
    on the coefficients Φᵀ M E(x), trained on labelled random views **with the encoder and the
    operator fine-tuned** (a smaller learning rate for them, ``finetune_lr_scale``).
``niso_frozen``
    The same pre-training; the head trained on frozen coefficients (encoder and operator
    frozen, which also avoids the official classifier's drift of Φ and M, §7 item 8).
``ae_aug``
    :mod:`baselines.ae_aug`: the same encoder/decoder as a plain autoencoder on the same view
    pairs (augmentation), a standard CNN head on its frozen latents.
``cnn_aug``
    :mod:`baselines.cnn_aug`: the encoder architecture + the same CNN head, trained from scratch
    on labelled random views.
``sh_power``
    :mod:`baselines.sh_power`: per-channel SH power spectrum per degree → MLP.
``e3nn_sh``
    :mod:`baselines.e3nn_sh`: an e3nn SO(3)-invariant network on the SH coefficients.

Every classifier gets the same budget: ``head_steps`` updates of ``head_batch`` labelled views
(random views as the paper, or with ``head_views="original"`` the untransformed view 0 only, so
that the classifiers never see a labelled Möbius view and invariance must come from the
representation, as in homNIST).

Diagnostics of the pre-trained NIso model (in each record): the paper's equivariance error
(its Table 4) ``‖τ ẑ − Tẑ‖ / ‖Tẑ‖`` on pairs of views of test meshes (beside the same ratio
without the map, τ = I), the correlation of the learned mass M with sin θ of the latent grid,
and the learned eigenbasis against the real SH of the latent grid (:func:`spectral.compare`).

A run folder holds ``config.json``, ``metrics.jsonl`` (a line per finished method/seed),
``<method>/seed<k>/{pretrain,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``,
``results.json`` (``{"num_classes": n, "methods": {method: {"accuracy_mean", "accuracy_se",
"seeds", "wall_seconds"}}}``, fractions), ``results.md`` (the paper's Table 2 beside ours),
``confusion.png`` and ``mass_map.png``. Interrupted runs resume: finished method/seeds are
skipped, training continues from its last checkpoint. Under ``torchrun`` every training loop
and every feature pass is data-parallel (:mod:`niso_geom.niso.distributed`); rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN, build_autoencoder, grid_latents
from niso_geom.baselines.cnn_aug import SphereCNN
from niso_geom.baselines.e3nn_sh import E3nnSHClassifier
from niso_geom.baselines.sh_power import SHPowerMLP, SHTransform, power_spectrum
from niso_geom.equivariant import OrthNet
from niso_geom.experiments.common import (
    Classifier,
    config_digest,
    make_config,
    markdown_table,
    pct,
    write_json,
)
from niso_geom.experiments.common import aggregate as _aggregate
from niso_geom.experiments.multiview import (
    LabelledViews,
    ViewPairs,
    ViewTable,
    confusion_matrix,
    map_views,
    predict_views,
)
from niso_geom.niso.autoencoder import (
    LatentScaleNorm,
    NIsoAutoencoder,
    PlainAutoencoder,
    encode_coefficients,
)
from niso_geom.niso.isometry import iso_solve_coeffs
from niso_geom.niso.models import GridDecoder, GridEncoder, latent_sphere_coords
from niso_geom.niso.operator import LearnedOperator
from niso_geom.train import distributed, pretrain, resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "EXTRA_METHODS",
    "METHODS",
    "METHOD_LABELS",
    "PAPER_RESULTS",
    "PRESETS",
    "CShrec11Config",
    "NIsoClassifier",
    "aggregate",
    "build_niso",
    "equivariance_error",
    "load_data",
    "mass_map",
    "preset",
    "run",
    "run_method",
]

NUM_CHANNELS = 16
METHODS: tuple[str, ...] = ("niso", "niso_frozen", "ae_aug", "cnn_aug", "sh_power", "e3nn_sh")
EXTRA_METHODS: tuple[str, ...] = ()
METHOD_LABELS: dict[str, str] = {
    "niso": "NIso (fine-tuned)",
    "niso_frozen": "NIso (frozen encoder)",
    "ae_aug": "AE + aug.",
    "cnn_aug": "CNN + aug. (from scratch)",
    "sh_power": "SH power spectrum + MLP",
    "e3nn_sh": "e3nn on SH coefficients",
    "mobius_conv": "Möbius conv.",
    "nft": "NFT",
}
#: The paper's Table 2 (conformal SHREC'11 test accuracy, %): (mean, standard error or None).
PAPER_RESULTS: dict[str, tuple[float, float | None]] = {
    "niso": (90.26, 1.27),
    "mobius_conv": (86.5, None),
    "nft": (83.24, None),
    "ae_aug": (69.36, None),
}


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CShrec11Config:
    """Everything that defines a conformal SHREC'11 run (saved as ``config.json``).

    Data: grid ``res`` (H, W) with both poles, ``transforms`` Möbius views per mesh, built
    with ``data_seed``; ``classes`` = comma-separated class names, or a number n for the first
    n classes in sorted order (None: all 25); ``max_per_class`` = only the first n meshes of
    each class (smoke tests; None: all).
    """

    preset: str = "custom"
    # data
    res: tuple[int, ...] = (48, 96)
    transforms: int = 30
    data_seed: int = 0
    classes: str | None = None
    max_per_class: int | None = None
    build_jobs: int = 1
    # autoencoder: (H, W) x 16 -> (H, W) / 2^(levels) x latent_dim, K eigenpairs
    enc_channels: tuple[int, ...] = (16, 32, 64)
    enc_depth: tuple[int, ...] = (1, 1, 1)
    dec_channels: tuple[int, ...] = (64, 32, 16)
    dec_depth: tuple[int, ...] = (1, 1, 1)
    lift: int = 16
    latent_dim: int = 64
    k: int = 64
    eigenvalue_param: str = "cumsum"
    spectral_dropout: bool = False
    latent_norm: bool = False
    # pre-training (niso-reference §3.4)
    steps: int = 2000
    batch: int = 8
    accum: int = 1
    lr: float = 1e-3
    warmup: int = 100
    end_lr: float = 5e-5
    alpha: float = 0.5
    beta: float = 0.01
    p_original: float = 0.2
    # classifiers (§3.5); every method gets head_steps x head_batch labelled views
    head_features: int = 64
    head_layers: int = 4
    head_inter: int = 64
    head_readout: int | None = 1024  # None: the paper's 4 * F(F+1)/2
    head_steps: int = 2000
    head_batch: int = 16
    head_lr: float = 1e-3
    head_warmup: int = 100
    head_views: str = "all"  # "all": a random view per mesh (the paper); "original": view 0 only
    finetune_lr_scale: float = 0.2
    finetune_operator: bool = True
    baseline_width: int = 64
    sh_lmax: int = 16
    sh_hidden: int = 256
    e3nn_lmax: int = 8
    e3nn_mul: int = 16
    e3nn_lmax_hidden: int = 4
    e3nn_layers: int = 2
    # evaluation and bookkeeping
    equiv_pairs: int = 256
    eval_batch: int = 62
    checkpoint_every: int = 500
    log_every: int = 50
    amp: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every field that changes results (not the preset name or bookkeeping)."""
        return config_digest(self, ("preset", "checkpoint_every", "log_every", "eval_batch", "build_jobs"))

    @property
    def levels(self) -> int:
        return len(self.enc_channels) - 1


PRESETS: dict[str, CShrec11Config] = {
    # seconds; tests and smoke runs: 3 classes x 4 meshes (2 train / 2 test), 16x32, 4 transforms
    # (three classes whose conformal maps build fastest, about 7 s for the 12 meshes)
    "tiny": CShrec11Config(
        preset="tiny", res=(16, 32), transforms=4, classes="bird1,hand,laptop", max_per_class=4,
        enc_channels=(8, 16, 16), dec_channels=(16, 16, 8), lift=8, latent_dim=16, k=16,
        steps=60, batch=4, lr=2e-3, warmup=5, head_features=16, head_layers=2, head_inter=16, head_readout=64,
        head_steps=100, head_batch=8, head_lr=3e-3, head_warmup=10, baseline_width=8, sh_lmax=6, sh_hidden=32,
        e3nn_lmax=4, e3nn_mul=4, e3nn_lmax_hidden=2, e3nn_layers=1, equiv_pairs=16, eval_batch=40,
        checkpoint_every=50, log_every=10,
    ),
    # 2 CPU cores (one thread), one seed of every method within an hour (niso-reference §6.3 item 4)
    "cpu": CShrec11Config(preset="cpu"),
    # the paper's sizes (niso-reference §2.1, §3.4-3.5), for a GPU
    "paper": CShrec11Config(
        preset="paper", res=(96, 192), enc_channels=(32, 64, 128, 256), enc_depth=(2, 2, 2, 2),
        dec_channels=(256, 128, 64, 32), dec_depth=(2, 2, 2, 2), lift=48, latent_dim=64, k=64,
        steps=50_000, batch=16, lr=5e-4, warmup=2000, end_lr=5e-5, head_features=128, head_layers=4,
        head_inter=64, head_readout=None, head_steps=10_000, head_batch=16, head_lr=5e-4, head_warmup=2000,
        baseline_width=128, sh_lmax=32, sh_hidden=512, e3nn_lmax=12, e3nn_mul=32, e3nn_lmax_hidden=6,
        equiv_pairs=1024, eval_batch=124, checkpoint_every=5000, log_every=100,
    ),
}


def preset(name: str = "cpu", **overrides: Any) -> CShrec11Config:
    """A preset config with ``overrides`` (strings are parsed by field type; unknown keys raise)."""
    cfg = make_config(PRESETS, name, overrides)
    if len(cfg.res) != 2:
        raise ValueError(f"res must be (H, W), got {cfg.res}")
    if cfg.head_views not in ("all", "original"):
        raise ValueError(f"head_views must be 'all' or 'original', got {cfg.head_views!r}")
    return cfg


def method_spec(cfg: CShrec11Config, method: str) -> dict[str, Any]:
    """What distinguishes ``method``: its kind and which pre-training it uses (None: none)."""
    kinds = {"niso": "niso_finetune", "niso_frozen": "niso_frozen", "ae_aug": "ae", "cnn_aug": "cnn",
             "sh_power": "sh_power", "e3nn_sh": "e3nn"}
    if method not in kinds:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS + EXTRA_METHODS)}")
    pre = {"niso": "niso", "niso_frozen": "niso", "ae_aug": "ae_aug"}.get(method)
    return {"kind": kinds[method], "pretrain_of": pre}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def class_subset(spec: str | None, data_root: str | os.PathLike | None = None) -> list[str] | None:
    """The classes of ``spec``: None (all), a number n (the first n in sorted order) or names "a,b"."""
    if spec is None:
        return None
    from niso_geom.data.cshrec11 import list_source
    from niso_geom.shared_data import data_file

    entries, _ = list_source(data_file("shrec_16.tar.gz", data_root))
    names = sorted({e.cls for e in entries})
    text = str(spec).strip()
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= len(names):
            raise ValueError(f"classes must be in 1..{len(names)}, got {n}")
        return names[:n]
    chosen = sorted({c.strip() for c in text.split(",") if c.strip()})
    unknown = [c for c in chosen if c not in names]
    if unknown or not chosen:
        raise ValueError(f"unknown classes {unknown or text!r}; known: {', '.join(names)}")
    return chosen


def load_data(cfg: CShrec11Config, data_root: str | os.PathLike | None = None, *, progress: bool = True,
              cache_dir: str | os.PathLike | None = None):
    """The dataset of ``cfg`` (split 0), built into the cache first when missing.

    Under DDP, rank 0 builds while the others wait, then they open the finished folder.
    """
    from niso_geom.data.cshrec11 import load_cshrec11

    kw = dict(res=tuple(cfg.res), transforms=cfg.transforms, seed=cfg.data_seed, split_seed=0,
              classes=class_subset(cfg.classes, data_root), data_root=data_root, jobs=cfg.build_jobs,
              progress=progress, _max_per_class=cfg.max_per_class)
    ctx = distributed.context()
    if not ctx.is_main:
        distributed.barrier()
        return load_cshrec11(cache_dir, build=False, **kw)
    ds = load_cshrec11(cache_dir, build=True, **kw)
    distributed.barrier()
    return ds


def image_table(ds: Any, ids: np.ndarray, *, progress: bool = False, chunk: int = 8) -> ViewTable:
    """All views of meshes ``ids`` (normalized, stored as float16): (n, V, 16, H, W)."""
    from tqdm.auto import tqdm

    parts = []
    for s in tqdm(range(0, len(ids), chunk), desc="load views", unit="chunk", leave=False, disable=not progress):
        parts.append(torch.from_numpy(ds.views(ids[s:s + chunk]).astype(np.float16)))
    return ViewTable(ids, torch.cat(parts))


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def build_niso(cfg: CShrec11Config) -> NIsoAutoencoder:
    """Sphere-padded encoder/decoder on the poles grid, latent = a coarser sphere grid, operator with K eigenpairs."""
    enc: nn.Module = GridEncoder(NUM_CHANNELS, cfg.enc_channels, cfg.enc_depth, cfg.latent_dim, "sphere",
                                 lift=cfg.lift, sphere_grid="poles")
    dec = GridDecoder(cfg.latent_dim, cfg.dec_channels, cfg.dec_depth, NUM_CHANNELS, "sphere", sphere_grid="poles")
    h, w = enc.latent_shape(*cfg.res)
    if cfg.latent_norm:
        enc = nn.Sequential(enc, LatentScaleNorm())
    op = LearnedOperator(h * w, cfg.k, eigenvalue_param=cfg.eigenvalue_param, spectral_dropout=cfg.spectral_dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=cfg.alpha, beta=cfg.beta, latent_shape=(h, w))


def build_ae(cfg: CShrec11Config) -> PlainAutoencoder:
    return build_autoencoder(NUM_CHANNELS, tuple(cfg.res), cfg.enc_channels, cfg.enc_depth, cfg.latent_dim,
                             cfg.dec_channels, cfg.dec_depth, lift=cfg.lift, latent_norm=cfg.latent_norm)


def build_orthnet(cfg: CShrec11Config, num_classes: int) -> OrthNet:
    return OrthNet(cfg.head_features, cfg.head_layers, num_classes, in_channels=cfg.latent_dim,
                   inter_features=cfg.head_inter, readout_hidden=cfg.head_readout)


class NIsoClassifier(nn.Module):
    """OrthNet on Φᵀ M E(x) with the encoder (and optionally the operator) trainable.

    ``step_loss((x, y))``: cross-entropy of ``head(model.coefficients(x))``; the decoder is
    dropped. ``param_groups(lr_scale)``: the head at the base rate, the backbone scaled.
    """

    def __init__(self, model: NIsoAutoencoder, head: nn.Module, *, train_operator: bool = True) -> None:
        super().__init__()
        model.decoder = nn.Identity()
        self.model, self.head = model, head
        self.model.operator.requires_grad_(train_operator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.coefficients(x))

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, labels = batch
        logits = self(x)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "acc": (logits.argmax(-1) == labels).float().mean().detach()}

    def param_groups(self, lr_scale: float) -> list[dict[str, Any]]:
        backbone = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": list(self.head.parameters())}, {"params": backbone, "lr_scale": float(lr_scale)}]


# --------------------------------------------------------------------------------------------
# diagnostics of the learned operator
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def equivariance_error(model: NIsoAutoencoder, table: ViewTable, ids: np.ndarray, pairs: int, *, seed: int = 0,
                       batch: int = 16, p_original: float = 0.2) -> dict[str, float]:
    """The paper's equivariance error on pairs of views of the meshes ``ids`` (held-out test meshes).

    For each pair (x, Tx): ẑ = Φᵀ M E(x), Tẑ = Φᵀ M E(Tx), τ the masked Procrustes map, and
    ``‖τ ẑ − Tẑ‖_F / ‖Tẑ‖_F``; also the same ratio for τ = I (no map) as a reference.
    Returns means and standard errors over pairs.
    """
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    src = ViewPairs(table, ids, batch, seed=seed, p_original=p_original)
    state = model.state().detach()
    errs, ident = [], []
    try:
        for _ in range(math.ceil(pairs / batch)):
            x, tx = (t.to(device) for t in src())
            c0, c1 = model.coefficients(x, state), model.coefficients(tx, state)
            tau = iso_solve_coeffs(c0, c1, state.evals if model.mask else None, method=model.method, eps=model.eps)
            den = c1.flatten(1).norm(dim=1).clamp_min(1e-12)
            errs.append(((tau @ c0 - c1).flatten(1).norm(dim=1) / den).cpu())
            ident.append(((c0 - c1).flatten(1).norm(dim=1) / den).cpu())
    finally:
        model.train(was)
    e, i = torch.cat(errs)[:pairs].double().numpy(), torch.cat(ident)[:pairs].double().numpy()
    se = (lambda a: float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None)
    return {"equiv_error": float(e.mean()), "equiv_error_se": se(e), "identity_error": float(i.mean()),
            "identity_error_se": se(i), "pairs": int(len(e))}


def mass_map(model: NIsoAutoencoder, cfg: CShrec11Config) -> dict[str, Any]:
    """The learned mass M on the latent grid beside sin θ of its rows (correlations, and the maps)."""
    from niso_geom.spectral.compare import mass_correlation

    state = model.state().detach().to("cpu", torch.float64)
    h, w = model.latent_shape
    theta, phi = latent_sphere_coords(tuple(cfg.res), cfg.levels, "poles")
    M = state.mass.numpy().reshape(h, w)
    sin = np.broadcast_to(np.sin(theta)[:, None], (h, w))
    return {"mass": M, "sin_theta": np.array(sin), "theta": theta, "phi": phi,
            "mass_sin_correlation": mass_correlation(M.ravel(), sin.ravel()),
            "mass_sin_row_correlation": mass_correlation(M.mean(1), np.sin(theta)),
            "mass_cv": float(M.std() / M.mean())}


def spectral_summary(model: NIsoAutoencoder, cfg: CShrec11Config) -> dict[str, Any]:
    """The learned eigenbasis against the real SH sampled on the latent grid (:func:`spectral.compare`).

    The reference basis uses the latent grid's sin θ cell weights as its mass (a midpoint rule,
    so SH orthonormality is approximate): purity, per-degree multiplicities, eigenvalue rank
    correlation with l(l+1). The conformal views are Möbius transforms, not rotations, so this
    is a diagnostic, not a target.
    """
    from niso_geom.harmonics.sphere import (
        lmax_for,
        num_harmonics,
        real_sph_harm_angles,
        sh_eigenvalues,
    )
    from niso_geom.spectral.compare import compare
    from niso_geom.spectral.eigenbasis import Eigenbasis

    state = model.state().detach().to("cpu", torch.float64)
    theta, phi = latent_sphere_coords(tuple(cfg.res), cfg.levels, "poles")
    T, P = np.meshgrid(theta, phi, indexing="ij")
    L = lmax_for(state.k)
    Y = real_sph_harm_angles(L, T.ravel(), P.ravel())
    w = np.sin(T.ravel())
    w = w * (4 * np.pi / w.sum())
    gt = Eigenbasis(sh_eigenvalues(L), Y[:, :num_harmonics(L)], w)
    rep = compare(state.phi.numpy(), state.evals.numpy(), state.mass.numpy(), gt, reference_mass=w)
    keys = ("purity_mean", "multiplicity", "analytic_multiplicity", "eigenvalue_spearman", "mass_correlation")
    return {k: rep[k] for k in keys}


# --------------------------------------------------------------------------------------------
# one method, one seed
# --------------------------------------------------------------------------------------------


@dataclass
class SeedData:
    """The data of one seed (split): dataset, train/test mesh ids, labels, the image table, and
    lazily computed SH coefficients shared by the SH baselines."""

    ds: Any
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    images: ViewTable
    num_classes: int
    _sh: ViewTable | None = None

    def sh_coefficients(self, lmax: int, batch: int, device: torch.device, progress: bool) -> ViewTable:
        """Real SH coefficients (n, V, (lmax+1)², 16) of every view, cached for the largest lmax asked."""
        from niso_geom.harmonics.sphere import num_harmonics

        have = None if self._sh is None else int(round(math.sqrt(self._sh.item_shape[0]))) - 1
        if have is None or have < lmax:
            sht = SHTransform(self.ds.grid, lmax).to(device)
            self._sh = map_views(sht, self.images, batch=batch, device=device, progress=progress, desc="SH transform")
            have = lmax
        return ViewTable(self._sh.index, self._sh.data[:, :, :num_harmonics(lmax)])


def seed_data(ds: Any, seed: int, *, progress: bool = False) -> SeedData:
    """Split ``seed`` of the dataset (its own normalization) with the views of its train and test meshes."""
    dk = ds if int(seed) == int(ds.split_seed) else ds.with_split(int(seed))
    ids = np.concatenate([dk.train_index, dk.test_index])
    return SeedData(dk, np.asarray(dk.train_index), np.asarray(dk.test_index), np.asarray(dk.labels),
                    image_table(dk, ids, progress=progress), len(dk.class_names))


def _train_head(cfg: CShrec11Config, model: nn.Module, source: Any, out: Path, *, device: torch.device,
                progress: bool, resume: bool, desc: str, extra: dict[str, Any],
                param_groups: list[dict[str, Any]] | None = None):
    """The classifier stage every method shares: ``head_steps`` x ``head_batch`` labelled views."""
    return pretrain(model, source, cfg.head_steps, lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=cfg.head_lr * 0.05,
                    amp="off", device=device, out_dir=out / "head", resume=resume, progress=progress,
                    checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=desc, extra=extra,
                    param_groups=param_groups)


def _pretrain(cfg: CShrec11Config, kind: str, data: SeedData, seed: int, folder: Path, *, device: torch.device,
              progress: bool, resume: bool, desc: str):
    torch.manual_seed(seed)
    model: nn.Module = build_niso(cfg) if kind == "niso" else build_ae(cfg)
    source = ViewPairs(data.images, data.train, cfg.batch, seed=seed, p_original=cfg.p_original)
    res = pretrain(model, source, cfg.steps, lr=cfg.lr, warmup=cfg.warmup, end_lr=cfg.end_lr, accum=cfg.accum,
                   amp=cfg.amp, device=device, out_dir=folder, resume=resume, progress=progress,
                   checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=desc,
                   extra={"method": kind, "seed": seed})
    model.eval()
    return model, res


def run_method(cfg: CShrec11Config, method: str, seed: int, out_dir: str | os.PathLike, data: SeedData, *,
               device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
               pretrain_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train and evaluate one method with one seed on ``data``; returns its record (also written
    to ``out_dir/result.json``; with ``resume`` a finished record of the same config is reused)."""
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and result_path.is_file():
        rec = json.loads(result_path.read_text())
        if rec.get("config_digest") == cfg.digest():
            return rec
    spec = method_spec(cfg, method)
    kind = spec["kind"]
    dev = distributed.rank_device(resolve_device(device))
    pre_dir = Path(pretrain_dir) if pretrain_dir is not None else out / "pretrain"
    labels = torch.as_tensor(data.labels)
    timings: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    extra = {"method": method, "seed": seed}
    ev = dict(batch=cfg.eval_batch, device=dev, progress=progress)

    pre_wall = 0.0
    if spec["pretrain_of"] is not None:
        model, pre = _pretrain(cfg, "niso" if kind.startswith("niso") else "ae", data, seed, pre_dir, device=dev,
                               progress=progress, resume=resume, desc=f"{spec['pretrain_of']} s{seed} pretrain")
        pre_wall = timings["pretrain"] = pre.wall_seconds
        diagnostics["pretrain_final"] = pre.final
        if kind.startswith("niso"):
            t0 = time.perf_counter()
            mm = mass_map(model, cfg)
            diagnostics["pretrained"] = {
                **equivariance_error(model, data.images, data.test, cfg.equiv_pairs, seed=seed + 7,
                                     p_original=cfg.p_original),
                **{k: v for k, v in mm.items() if k.startswith("mass_")},
                "spectral": spectral_summary(model, cfg),
            }
            if distributed.context().is_main:
                out.mkdir(parents=True, exist_ok=True)
                np.savez(out / "mass_map.npz", mass=mm["mass"], sin_theta=mm["sin_theta"], theta=mm["theta"])
            timings["diagnostics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    torch.manual_seed(seed + 1)
    if kind == "niso_frozen":  # frozen encoder and operator: cached coefficients
        table = map_views(lambda x: encode_coefficients(model, x), data.images, desc="coefficients", **ev)
        clf: nn.Module = Classifier(build_orthnet(cfg, data.num_classes))
    elif kind == "niso_finetune":
        clf = NIsoClassifier(model, build_orthnet(cfg, data.num_classes), train_operator=cfg.finetune_operator)
        table = data.images
    elif kind == "ae":
        table = map_views(lambda x: grid_latents(model, x), data.images, desc="latents", **ev)
        clf = Classifier(LatentCNN(cfg.latent_dim, model.latent_shape, cfg.baseline_width, data.num_classes))
    elif kind == "cnn":
        clf = Classifier(SphereCNN(NUM_CHANNELS, tuple(cfg.res), cfg.enc_channels, cfg.enc_depth, cfg.latent_dim,
                                   data.num_classes, lift=cfg.lift, width=cfg.baseline_width))
        table = data.images
    elif kind == "sh_power":
        coeffs = data.sh_coefficients(max(cfg.sh_lmax, cfg.e3nn_lmax), cfg.eval_batch, dev, progress)
        table = map_views(lambda c: power_spectrum(c, cfg.sh_lmax), coeffs, batch=4096, device=dev)
        mlp = SHPowerMLP(NUM_CHANNELS, cfg.sh_lmax, data.num_classes, hidden=cfg.sh_hidden)
        mlp.fit_standardizer(table.all_views(data.train).flatten(0, 1))
        clf = Classifier(mlp)
    elif kind == "e3nn":
        coeffs = data.sh_coefficients(max(cfg.sh_lmax, cfg.e3nn_lmax), cfg.eval_batch, dev, progress)
        from niso_geom.harmonics.sphere import num_harmonics

        table = ViewTable(coeffs.index, coeffs.data[:, :, :num_harmonics(cfg.e3nn_lmax)])
        net = E3nnSHClassifier(NUM_CHANNELS, cfg.e3nn_lmax, data.num_classes, mul=cfg.e3nn_mul,
                               lmax_hidden=cfg.e3nn_lmax_hidden, layers=cfg.e3nn_layers)
        net.fit_scale(table.all_views(data.train).flatten(0, 1))
        clf = Classifier(net)
    else:  # pragma: no cover - method_spec guards this
        raise AssertionError(kind)
    # the classifier trains on the train meshes' views of the same table it is tested on
    src = LabelledViews(table, data.train, labels, cfg.head_batch, seed=seed,
                        views=None if cfg.head_views == "all" else [0])
    timings["features"] = time.perf_counter() - t0

    groups = clf.param_groups(cfg.finetune_lr_scale) if isinstance(clf, NIsoClassifier) else None
    head_res = _train_head(cfg, clf, src, out, device=dev, progress=progress, resume=resume,
                           desc=f"{method} s{seed} head", extra=extra, param_groups=groups)
    timings["head"] = head_res.wall_seconds

    # evaluation: every view of every held-out test mesh
    t0 = time.perf_counter()
    clf.eval()
    pred = predict_views(clf, table, data.test, desc=f"{method} s{seed} test", **ev)
    true = data.labels[data.test]
    acc = float(np.mean(pred == true[:, None]))
    cm = confusion_matrix(pred, true, data.num_classes)
    if kind == "niso_finetune":  # does fine-tuning keep the latent equivariant?
        diagnostics["finetuned"] = equivariance_error(clf.model, data.images, data.test, cfg.equiv_pairs,
                                                      seed=seed + 7, p_original=cfg.p_original)
    timings["eval"] = time.perf_counter() - t0
    rec = {
        "method": method,
        "seed": seed,
        "accuracy": acc,
        "num_test_meshes": int(len(data.test)),
        "num_test_predictions": int(pred.size),
        "num_train_meshes": int(len(data.train)),
        "per_view_accuracy": np.mean(pred == true[:, None], axis=0).tolist(),
        "confusion": cm.tolist(),
        "wall_seconds": pre_wall + timings["features"] + timings["head"] + timings["eval"]
        + timings.get("diagnostics", 0.0),
        "timings": timings,
        "head_final": head_res.final,
        "diagnostics": diagnostics,
        "spec": spec,
        "config_digest": cfg.digest(),
    }
    if distributed.context().is_main:
        write_json(result_path, rec)
    return rec


# --------------------------------------------------------------------------------------------
# several methods and seeds
# --------------------------------------------------------------------------------------------


def aggregate(records: Sequence[dict[str, Any]], methods: Sequence[str], num_classes: int) -> dict[str, Any]:
    """``{"num_classes": n, "methods": {m: {accuracy_mean, accuracy_se, seeds, wall_seconds}}}``."""
    return _aggregate(records, methods, num_classes)


SUMMARY_HEADERS = ["method", "test acc. % (ours)", "paper %", "seeds", "wall s"]


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows (method, ours, paper, seeds, wall) for the terminal and Markdown tables."""
    rows = []
    names = list(results["methods"]) + [m for m in PAPER_RESULTS if m not in results["methods"]]
    for m in names:
        r = results["methods"].get(m)
        paper = PAPER_RESULTS.get(m)
        rows.append([
            METHOD_LABELS.get(m, m),
            pct(r["accuracy_mean"], r["accuracy_se"]) if r else "not run",
            (f"{paper[0]:.2f}" + (f" ± {paper[1]:.2f}" if paper[1] is not None else "")) if paper else "—",
            str(len(r["seeds"])) if r else "—",
            f"{r['wall_seconds']:.0f}" if r else "—",
        ])
    return rows


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None]]:
    """The issue's checks for the cpu preset (None where a method was not run)."""
    acc = {k: v["accuracy_mean"] for k, v in results["methods"].items()}
    niso = acc.get("niso")
    ae = acc.get("ae_aug")
    return [("NIso >= 80 %", None if niso is None else niso >= 0.80),
            ("NIso >= AE + aug. + 10 points", None if niso is None or ae is None else niso >= ae + 0.10)]


def _diag_rows(records: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        for stage in ("pretrained", "finetuned"):
            d = r.get("diagnostics", {}).get(stage)
            if not d or (stage == "pretrained" and r["method"] != "niso"):
                continue
            se = d.get("equiv_error_se")
            rows.append([METHOD_LABELS.get(r["method"], r["method"]), str(r["seed"]), stage,
                         f"{d['equiv_error']:.4f}" + (f" ± {se:.4f}" if se is not None else ""),
                         f"{d['identity_error']:.4f}",
                         f"{d['mass_sin_correlation']:.3f}" if d.get("mass_sin_correlation") is not None else "—",
                         f"{d['mass_sin_row_correlation']:.3f}" if d.get("mass_sin_row_correlation") is not None
                         else "—",
                         f"{d['spectral']['purity_mean']:.3f}" if "spectral" in d else "—"])
    return rows


def write_markdown(path: Path, cfg: CShrec11Config, results: dict[str, Any], records: Sequence[dict[str, Any]],
                   info: dict[str, Any]) -> None:
    """``results.md``: our table beside the paper's Table 2, checks, diagnostics, per-run timings."""
    n_test = records[0]["num_test_meshes"] if records else 0
    n_pred = records[0]["num_test_predictions"] if records else 0
    n_train = records[0]["num_train_meshes"] if records else 0
    text = [
        "# Conformal SHREC'11 results",
        "",
        f"Preset `{cfg.preset}`: {results['num_classes']} classes, {n_train} train / {n_test} test meshes "
        f"(split seed = seed), {cfg.res[0]}×{cfg.res[1]} grid, {1 + cfg.transforms} views per mesh; classifiers "
        f"trained on {'random views' if cfg.head_views == 'all' else 'the untransformed view 0 only'} of the train meshes; "
        f"accuracy over all {n_pred} test views (every view of every held-out test mesh), mean ± standard "
        f"error over seeds. Device {info.get('device')}, torch {info.get('torch')}, {info.get('threads')} threads"
        f"{', ' + str(info.get('world_size')) + ' DDP ranks' if info.get('world_size', 1) > 1 else ''}.",
        "",
        "Paper numbers: Table 2 of Mitchel et al. (NeurIPS 2024), full-size models (96×192 grid, 50k "
        "pre-training steps); Möbius conv. and NFT are not re-run here.",
        "",
        markdown_table(summary_rows(results), SUMMARY_HEADERS),
        "",
        "Checks (issue targets for the cpu preset):",
        "",
    ]
    for label, ok in targets(results):
        text.append(f"- {label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}")
    diag = _diag_rows(records)
    if diag:
        text += ["", "NIso latent diagnostics on pairs of views of test meshes: the paper's equivariance error "
                 "‖τẑ − Tẑ‖/‖Tẑ‖ (Table 4), the same without the map (τ = I), the correlation of the learned "
                 "mass with sin θ of the latent grid (all cells; ring means), and the mean SH-degree purity of "
                 "the learned eigenvectors:", "",
                 markdown_table(diag, ["method", "seed", "model", "equiv. error", "τ = I", "mass~sin θ",
                                       "ring means~sin θ", "SH purity"])]
    text += ["", "Per run (seconds):", "",
             markdown_table([[METHOD_LABELS.get(r["method"], r["method"]), str(r["seed"]), f"{100 * r['accuracy']:.2f}",
                              f"{r['timings'].get('pretrain', 0):.0f}",
                              f"{r['timings']['features'] + r['timings']['head']:.0f}",
                              f"{r['timings']['eval']:.0f}"] for r in records],
                            ["method", "seed", "test %", "pretrain", "features + head", "eval"]),
             "",
             f"Total wall time {info.get('total_wall_seconds', 0):.0f} s, process CPU time "
             f"{info.get('total_cpu_seconds', 0):.0f} s.",
             "",
             "Figures: `confusion.png` (row-normalized confusion matrices, summed over seeds), "
             "`mass_map.png` (the learned mass beside sin θ).", ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    os.replace(tmp, path)


def plot_confusions(path: Path, records: Sequence[dict[str, Any]], methods: Sequence[str],
                    class_names: Sequence[str]) -> None:
    """One row-normalized confusion matrix per method (summed over seeds) in one PNG."""
    from niso_geom.plotting import _plt, save

    plt = _plt()
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
        ax.set_title(f"{METHOD_LABELS.get(m, m)}: {100 * acc:.1f} %", fontsize=9)
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
    save(fig, path)


def plot_mass_map(path: Path, mm: dict[str, np.ndarray], corr: float | None) -> None:
    """The learned mass on the latent grid beside sin θ, and their ring means (both scaled to mean 1)."""
    from niso_geom.plotting import _plt, save

    plt = _plt()
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
    save(fig, path)


def run(cfg: CShrec11Config, out_dir: str | os.PathLike, *, methods: Sequence[str] = METHODS,
        seeds: Sequence[int] = (0,), data_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
        device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method for every seed; write the run folder; return (results, per-run records)."""
    methods = list(dict.fromkeys(methods))
    for m in methods:
        method_spec(cfg, m)
    ctx = distributed.context()
    out = Path(out_dir)
    dev = distributed.rank_device(resolve_device(device))
    info = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "methods": methods, "seeds": list(seeds),
            "world_size": ctx.world_size}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0, c0 = time.perf_counter(), time.process_time()

    ds = load_data(cfg, data_root, progress=progress, cache_dir=cache_dir)
    records = []
    metrics_path = out / "metrics.jsonl"
    for seed in seeds:
        data = seed_data(ds, int(seed), progress=progress)
        for m in methods:
            spec = method_spec(cfg, m)
            pre = out / spec["pretrain_of"] / f"seed{int(seed)}" / "pretrain" if spec["pretrain_of"] else None
            rec = run_method(cfg, m, int(seed), out / m / f"seed{int(seed)}", data, device=dev, progress=progress,
                             resume=resume, pretrain_dir=pre)
            records.append(rec)
            if ctx.is_main:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps({k: v for k, v in rec.items() if k not in ("spec", "confusion")}) + "\n")
            if on_record is not None:
                on_record(rec)
        del data
    results = aggregate(records, methods, len(ds.class_names))
    info["total_wall_seconds"] = time.perf_counter() - t0
    info["total_cpu_seconds"] = time.process_time() - c0
    if ctx.is_main:
        write_json(out / "results.json", results)
        write_markdown(out / "results.md", cfg, results, records, info)
        try:
            plot_confusions(out / "confusion.png", records, methods, ds.class_names)
            niso = [m for m in ("niso", "niso_frozen") if m in methods]
            if niso:
                f = out / niso[0] / f"seed{int(seeds[0])}" / "mass_map.npz"
                with np.load(f) as z:
                    mm = {k: z[k] for k in z.files}
                from niso_geom.spectral.compare import mass_correlation

                plot_mass_map(out / "mass_map.png", mm, mass_correlation(mm["mass"].ravel(), mm["sin_theta"].ravel()))
        except ImportError as exc:  # matplotlib missing: tables only
            log.warning("figures skipped: %s", exc)
    return results, records
