"""The conformal SHREC'11 methods, each registered in :data:`METHODS` (no if/elif over names).

A method is a :class:`ClassifierMethod`: which pre-training it reuses (a key of
:data:`PRETRAININGS`, or None) and a ``setup`` that turns the pre-trained model into a
classifier and the view table it trains and is tested on (:class:`HeadSetup`). The run itself
(pre-training, the shared classifier stage, evaluation, the record) is
:func:`~.runner.run_method`.

``niso``
    NIso pre-training on pairs of views of the same train mesh (``docs/algorithm.md`` §3.4),
    then the paper's O(K)-invariant OrthNet on Φᵀ M E(x), the encoder and the operator
    fine-tuned at ``finetune_lr_scale`` times the head's rate (§3.5).
``niso_frozen``
    The same pre-training; the head on frozen, cached coefficients (no drift of Φ and M,
    §7 item 8).
``ae_aug``
    The same encoder/decoder as a plain autoencoder on the same view pairs, a standard CNN
    head on its frozen latents (:mod:`niso_geom.baselines.ae_aug`).
``cnn_aug``
    The encoder architecture + the same CNN head, from scratch on labelled random views.
``sh_power``
    Per-channel SH power spectrum per degree → MLP (:mod:`niso_geom.baselines.sh_power`).
``e3nn_sh``
    An e3nn SO(3)-invariant network on the SH coefficients (:mod:`niso_geom.baselines.e3nn_sh`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from niso_geom.baselines.ae_aug import LatentCNN, grid_latents
from niso_geom.baselines.cnn_aug import SphereCNN
from niso_geom.baselines.e3nn_sh import E3nnSHClassifier
from niso_geom.baselines.sh_power import SHPowerMLP, power_spectrum
from niso_geom.experiments.common import Classifier
from niso_geom.experiments.registry import MethodRegistry
from niso_geom.harmonics.sphere import num_harmonics
from niso_geom.niso.autoencoder import encode_coefficients
from niso_geom.runio import atomic_write
from niso_geom.train import distributed

from .config import CShrec11Config
from .data import NUM_CHANNELS, SeedData
from .diagnostics import equivariance_error, mass_map, spectral_summary
from .models import NIsoClassifier, build_ae, build_niso, build_orthnet
from .views import ViewTable, map_views

__all__ = ["METHODS", "PRETRAININGS", "ClassifierMethod", "HeadSetup", "MethodContext", "Pretraining",
           "method_info", "method_spec"]

METHODS = MethodRegistry("cshrec11")


@dataclass
class MethodContext:
    """What a method's setup sees: the config, the seed, its data, the device, progress bars."""

    cfg: CShrec11Config
    seed: int
    data: SeedData
    device: torch.device
    progress: bool

    @property
    def eval_kw(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~.views.map_views` for feature and evaluation passes."""
        return {"batch": self.cfg.eval_batch, "device": self.device, "progress": self.progress}


@dataclass
class HeadSetup:
    """A method's classifier stage: the classifier, the view table it trains and is tested on,
    optional optimizer parameter groups, and optional diagnostics taken after evaluation."""

    classifier: nn.Module
    table: ViewTable
    param_groups: list[dict[str, Any]] | None = None
    after_eval: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Pretraining:
    """A pre-training a method can reuse: its model builder, the name stored in its checkpoints,
    and diagnostics of the pre-trained model (None: none)."""

    tag: str
    build: Callable[[CShrec11Config], nn.Module]
    diagnose: Callable[[nn.Module, MethodContext, Path], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ClassifierMethod:
    """A registered method: ``kind`` (recorded), table ``label``, the pre-training it reuses
    (a key of :data:`PRETRAININGS`, or None) and ``setup(ctx, pretrained_model_or_None)``."""

    kind: str
    label: str
    pretraining: str | None
    setup: Callable[[MethodContext, nn.Module | None], HeadSetup]

    def spec(self) -> dict[str, Any]:
        """``{"kind", "pretrain_of"}`` as stored in each ``result.json``."""
        return {"kind": self.kind, "pretrain_of": self.pretraining}


def method_info(name: str) -> ClassifierMethod:
    """The :class:`ClassifierMethod` of ``name`` (an error listing the known names otherwise)."""
    return METHODS[name].fn


def method_spec(name: str) -> dict[str, Any]:
    """What distinguishes method ``name``: its kind and which pre-training it uses (None: none)."""
    return method_info(name).spec()


def _method(name: str, label: str, help: str, *, kind: str, pretraining: str | None = None
            ) -> Callable[[Callable[[MethodContext, Any], HeadSetup]], Callable[[MethodContext, Any], HeadSetup]]:
    """Register ``setup`` as method ``name`` in :data:`METHODS`."""

    def deco(setup: Callable[[MethodContext, Any], HeadSetup]) -> Callable[[MethodContext, Any], HeadSetup]:
        METHODS.register(name, help)(ClassifierMethod(kind, label, pretraining, setup))
        return setup

    return deco


# --------------------------------------------------------------------------------------------
# pre-trainings
# --------------------------------------------------------------------------------------------


def niso_diagnostics(model: nn.Module, ctx: MethodContext, out: Path) -> dict[str, Any]:
    """Equivariance error on test pairs, mass vs sin θ, SH purity; writes ``out/mass_map.npz`` (rank 0)."""
    cfg, data = ctx.cfg, ctx.data
    mm = mass_map(model, cfg)
    diag = {
        **equivariance_error(model, data.images, data.test, cfg.equiv_pairs, seed=ctx.seed + 7,
                             p_original=cfg.p_original, transforms=data.transforms),
        **{k: v for k, v in mm.items() if k.startswith("mass_")},
        "spectral": spectral_summary(model, cfg),
    }
    if distributed.context().is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "mass_map.npz", "wb") as f:
            np.savez(f, mass=mm["mass"], sin_theta=mm["sin_theta"], theta=mm["theta"])
    return diag


#: Pre-trainings by the name of the method that owns their folder (``<name>/seed<k>/pretrain``).
PRETRAININGS: dict[str, Pretraining] = {
    "niso": Pretraining("niso", build_niso, niso_diagnostics),
    "ae_aug": Pretraining("ae", build_ae),
}


# --------------------------------------------------------------------------------------------
# methods (registration order = the default order of a run and of the tables)
# --------------------------------------------------------------------------------------------


@_method("niso", "NIso (fine-tuned)", "NIso pre-training, OrthNet on its coefficients, encoder and operator fine-tuned",
         kind="niso_finetune", pretraining="niso")
def _niso_finetuned(ctx: MethodContext, model: Any) -> HeadSetup:
    cfg, data = ctx.cfg, ctx.data
    clf = NIsoClassifier(model, build_orthnet(cfg, data.num_classes), train_operator=cfg.finetune_operator)

    def finetuned() -> dict[str, Any]:  # does fine-tuning keep the latent equivariant?
        return {"finetuned": equivariance_error(clf.model, data.images, data.test, cfg.equiv_pairs,
                                                seed=ctx.seed + 7, p_original=cfg.p_original,
                                                transforms=data.transforms)}

    return HeadSetup(clf, data.images, clf.param_groups(cfg.finetune_lr_scale), finetuned)


@_method("niso_frozen", "NIso (frozen encoder)", "NIso pre-training, OrthNet on its frozen (cached) coefficients",
         kind="niso_frozen", pretraining="niso")
def _niso_frozen(ctx: MethodContext, model: Any) -> HeadSetup:
    table = map_views(lambda x: encode_coefficients(model, x), ctx.data.images, desc="coefficients", **ctx.eval_kw)
    return HeadSetup(Classifier(build_orthnet(ctx.cfg, ctx.data.num_classes)), table)


@_method("ae_aug", "AE + aug.", "plain autoencoder on the same view pairs, CNN head on its frozen latents",
         kind="ae", pretraining="ae_aug")
def _ae_aug(ctx: MethodContext, model: Any) -> HeadSetup:
    cfg = ctx.cfg
    table = map_views(lambda x: grid_latents(model, x), ctx.data.images, desc="latents", **ctx.eval_kw)
    head = LatentCNN(cfg.latent_dim, model.latent_shape, cfg.baseline_width, ctx.data.num_classes)
    return HeadSetup(Classifier(head), table)


@_method("cnn_aug", "CNN + aug. (from scratch)", "encoder architecture + CNN head, from scratch on labelled views",
         kind="cnn")
def _cnn_aug(ctx: MethodContext, model: None) -> HeadSetup:
    cfg = ctx.cfg
    net = SphereCNN(NUM_CHANNELS, tuple(cfg.res), cfg.enc_channels, cfg.enc_depth, cfg.latent_dim,
                    ctx.data.num_classes, lift=cfg.lift, width=cfg.baseline_width)
    return HeadSetup(Classifier(net), ctx.data.images)


def _sh_coefficients(ctx: MethodContext) -> ViewTable:
    """SH coefficients of every view, up to the larger of the two SH baselines' degrees (shared, cached)."""
    cfg = ctx.cfg
    return ctx.data.sh_coefficients(max(cfg.sh_lmax, cfg.e3nn_lmax), cfg.eval_batch, ctx.device, ctx.progress)


@_method("sh_power", "SH power spectrum + MLP", "per-channel SH power spectrum per degree -> MLP", kind="sh_power")
def _sh_power(ctx: MethodContext, model: None) -> HeadSetup:
    cfg = ctx.cfg
    table = map_views(lambda c: power_spectrum(c, cfg.sh_lmax), _sh_coefficients(ctx), batch=4096, device=ctx.device)
    mlp = SHPowerMLP(NUM_CHANNELS, cfg.sh_lmax, ctx.data.num_classes, hidden=cfg.sh_hidden)
    mlp.fit_standardizer(table.all_views(ctx.data.train).flatten(0, 1))
    return HeadSetup(Classifier(mlp), table)


@_method("e3nn_sh", "e3nn on SH coefficients", "e3nn SO(3)-invariant network on the SH coefficients", kind="e3nn")
def _e3nn_sh(ctx: MethodContext, model: None) -> HeadSetup:
    cfg = ctx.cfg
    coeffs = _sh_coefficients(ctx)
    table = ViewTable(coeffs.index, coeffs.data[:, :, :num_harmonics(cfg.e3nn_lmax)])
    net = E3nnSHClassifier(NUM_CHANNELS, cfg.e3nn_lmax, ctx.data.num_classes, mul=cfg.e3nn_mul,
                           lmax_hidden=cfg.e3nn_lmax_hidden, layers=cfg.e3nn_layers)
    net.fit_scale(table.all_views(ctx.data.train).flatten(0, 1))
    return HeadSetup(Classifier(net), table)
