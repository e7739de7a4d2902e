"""The homNIST methods: what each one pre-trains and what its classifier sees.

Every method is a function registered in :data:`METHODS` that returns its :class:`MethodSpec`;
the pipeline (:func:`~.pipeline.run_method`) only reads specs, so a new method is a new
registered function here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from niso_geom.experiments.homnist.config import HomNISTConfig
from niso_geom.experiments.registry import MethodRegistry

__all__ = ["KINDS", "METHODS", "MethodSpec", "method_spec", "niso_methods"]

#: Model kinds: ``"niso"`` (NIso autoencoder, O(K)-invariant head on spectral coefficients) and
#: ``"ae"`` (plain autoencoder, CNN head on grid latents).
KINDS: tuple[str, ...] = ("niso", "ae")

METHODS = MethodRegistry("homnist")


@dataclass(frozen=True)
class MethodSpec:
    """What distinguishes a method (saved as ``spec`` in its ``result.json``).

    kind : ``"niso"`` or ``"ae"``.
    alpha, beta : equivariance and multiplicity weights of the NIso objective (None for ``"ae"``).
    views : views per pre-training sample (2: pairs, 3: triplets).
    batch : pre-training samples per step.
    head_augment : whether the head's labelled digits are homography-augmented.
    pretrain_of : the method whose pre-training this one uses (its own name, or a shared one).
    """

    kind: str
    alpha: float | None
    beta: float | None
    views: int
    batch: int
    head_augment: bool
    pretrain_of: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _niso(cfg: HomNISTConfig, name: str, **changes: Any) -> MethodSpec:
    spec = MethodSpec(kind="niso", alpha=cfg.alpha, beta=cfg.beta, views=2, batch=cfg.batch,
                      head_augment=False, pretrain_of=name)
    return dataclasses.replace(spec, **changes)


@METHODS.register("niso", "NIso pairs (x, T x) with the config's α and β; O(K)-invariant head on clean digits")
def niso(cfg: HomNISTConfig) -> MethodSpec:
    return _niso(cfg, "niso")


@METHODS.register("niso_triplets", "NIso triplets (x, T1 x, T2 T1 x): the maps of consecutive warps must compose")
def niso_triplets(cfg: HomNISTConfig) -> MethodSpec:
    return _niso(cfg, "niso_triplets", views=3, batch=cfg.triplet_batch or cfg.batch)


@METHODS.register("niso_no_equiv", "NIso without the equivariance loss (α = 0)")
def niso_no_equiv(cfg: HomNISTConfig) -> MethodSpec:
    return _niso(cfg, "niso_no_equiv", alpha=0.0)


@METHODS.register("niso_no_mult", "NIso without the multiplicity loss (β = 0)")
def niso_no_mult(cfg: HomNISTConfig) -> MethodSpec:
    return _niso(cfg, "niso_no_mult", beta=0.0)


def _ae(cfg: HomNISTConfig, head_augment: bool) -> MethodSpec:
    return MethodSpec(kind="ae", alpha=None, beta=None, views=2, batch=cfg.batch, head_augment=head_augment,
                      pretrain_of="ae_aug")


@METHODS.register("ae_aug", "the same encoder/decoder as a plain autoencoder on the same homography pairs; "
                            "CNN head on clean digits")
def ae_aug(cfg: HomNISTConfig) -> MethodSpec:
    return _ae(cfg, head_augment=False)


@METHODS.register("ae_aug_labels", "not in the paper: ae_aug's autoencoder with its CNN head trained on "
                                   "homography-augmented labelled digits", default=False)
def ae_aug_labels(cfg: HomNISTConfig) -> MethodSpec:
    return _ae(cfg, head_augment=True)


def method_spec(cfg: HomNISTConfig, method: str) -> MethodSpec:
    """The :class:`MethodSpec` of ``method`` under ``cfg`` (an unknown name raises
    :class:`~niso_geom.experiments.registry.UnknownMethodError`, a ValueError, listing the known ones)."""
    return METHODS[method](cfg)


def niso_methods(cfg: HomNISTConfig | None = None) -> tuple[str, ...]:
    """The registered methods with a learned operator (kind ``"niso"``), in registration order."""
    cfg = HomNISTConfig() if cfg is None else cfg
    return tuple(m for m in METHODS.choices() if method_spec(cfg, m).kind == "niso")
