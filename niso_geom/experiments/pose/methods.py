"""The pose experiment's methods, one registered function each (``METHODS``).

A method turns a pair (x, Tx) into the input of a pose head and says which head reads it; the
head's training and the evaluation are the same for every method (:func:`~.run.run_method`).

* ``niso`` — τ of a NIso operator learned without labels, then frozen (masked SO(K) Procrustes,
  ``docs/algorithm.md`` §1.3); a :class:`~niso_geom.niso.pose.PoseHead` on the K × K map.
* ``no_operator`` — the ablation: the same τ solve, head and K in a fixed random orthonormal
  basis, without the eigenvalue mask.
* ``raw_pair`` — the baseline: the raw pair stacked as 2C channels into a CNN with sphere padding
  (``raw_arch="mlp"``: the pose head on the flattened pair).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from niso_geom.data.pose_pairs import PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.pose.config import PoseConfig
from niso_geom.experiments.pose.data import Features
from niso_geom.experiments.pose.models import RawPairCNN, random_basis, raw_features
from niso_geom.experiments.pose.pretrain_operator import train_operator
from niso_geom.experiments.registry import MethodRegistry
from niso_geom.niso.isometry import iso_solve
from niso_geom.niso.pose import PoseHead

__all__ = ["METHODS", "MethodContext", "MethodSetup"]

METHODS = MethodRegistry("pose")


@dataclass(frozen=True)
class MethodContext:
    """What a method may use: the config, the seed, the grid, the training pairs and its run folder."""

    cfg: PoseConfig
    seed: int
    grid: SphereGrid
    train_pairs: PosePairs
    out: Path
    device: torch.device
    progress: bool = True
    resume: bool = True


@dataclass
class MethodSetup:
    """A method ready for its head: ``features(x, Tx)`` (inputs on any device, output on the run's device),
    ``make_head()`` (called after the head's torch seed is set) and diagnostics for the record
    (``operator_seconds`` is taken out as the operator's time)."""

    features: Features
    make_head: Callable[[], nn.Module]
    info: dict[str, Any] = field(default_factory=dict)


def tau_head(cfg: PoseConfig) -> PoseHead:
    """The pose head on a K × K map τ."""
    return PoseHead((cfg.k, cfg.k), cfg.head_features, cfg.head_layers, cfg.rep)


@METHODS.register("niso", "NIso (τ from the learned operator)")
def niso_method(ctx: MethodContext) -> MethodSetup:
    cfg, dev = ctx.cfg, ctx.device
    state, info = train_operator(cfg, ctx.seed, ctx.grid, ctx.train_pairs, ctx.out / "operator", device=dev,
                                 progress=ctx.progress, resume=ctx.resume)

    def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
        return iso_solve(state, x.to(dev), tx.to(dev), mask=cfg.tau_mask)

    return MethodSetup(features, lambda: tau_head(cfg), info)


@METHODS.register("no_operator", "no operator (τ in a fixed random basis, no mask)")
def no_operator_method(ctx: MethodContext) -> MethodSetup:
    cfg, dev = ctx.cfg, ctx.device
    basis = random_basis(ctx.grid.n, cfg.k, ctx.seed).to(dev)

    def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
        return iso_solve(basis, x.to(dev), tx.to(dev), mask=False)

    return MethodSetup(features, lambda: tau_head(cfg))


#: the raw-pair baseline's network for each ``raw_arch``
RAW_PAIR_NETS: dict[str, Callable[[PoseConfig, SphereGrid], nn.Module]] = {
    "cnn": lambda cfg, grid: RawPairCNN(cfg),
    "mlp": lambda cfg, grid: PoseHead((grid.n, 2 * cfg.channels), cfg.head_features, cfg.head_layers, cfg.rep),
}


@METHODS.register("raw_pair", "raw pair (x, Tx) → CNN or MLP")
def raw_pair_method(ctx: MethodContext) -> MethodSetup:
    cfg, dev = ctx.cfg, ctx.device
    to_input = raw_features(cfg)

    def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
        return to_input(x.to(dev), tx.to(dev))

    return MethodSetup(features, lambda: RAW_PAIR_NETS[cfg.raw_arch](cfg, ctx.grid))
