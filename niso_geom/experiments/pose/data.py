"""The pose experiment's data: pair samplers, the fixed held-out set and resumable training batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from niso_geom.data.pose_pairs import CapBank, PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.pose.config import PoseConfig

__all__ = ["PairBatches", "build_pairs", "eval_chunks"]

#: ``features(x, Tx)``: float32 signals (B, N, C) -> a method's head input
Features = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_pairs(cfg: PoseConfig, grid: SphereGrid, split: str = "train") -> PosePairs:
    """The pair sampler of ``split`` ("train" or "eval"; they differ only in the cap image bank)."""
    bank = None
    if cfg.signals == "cap":
        size = cfg.cap_bank if split == "train" else max(256, cfg.cap_bank // 4)
        bank = CapBank(size, cfg.lmax, seed=cfg.data_seed * 2 + (split != "train"), radius_deg=cfg.cap_radius,
                       res=cfg.cap_res, alpha=cfg.cap_alpha)
    return PosePairs(grid.points, cfg.channels, cfg.lmax, kind=cfg.signals, alpha=cfg.alpha, rotations=cfg.rotations,
                     max_angle_deg=cfg.max_angle, bank=bank)


def eval_chunks(cfg: PoseConfig, pairs: PosePairs) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The fixed held-out set in chunks of ``eval_batch``: (x, Tx) float32 (B, N, C) and R float64 (B, 3, 3).

    Chunk i is drawn from ``SeedSequence(eval_seed, spawn_key=(i,))``: the same pairs for every
    method and seed, regenerated instead of held in memory.
    """
    for i, start in enumerate(range(0, cfg.eval_pairs, cfg.eval_batch)):
        n = min(cfg.eval_batch, cfg.eval_pairs - start)
        rng = np.random.default_rng(np.random.SeedSequence(cfg.eval_seed, spawn_key=(i,)))
        x, tx, R = pairs.sample(n, rng)
        yield torch.from_numpy(x).float(), torch.from_numpy(tx).float(), torch.from_numpy(R)


class PairBatches:
    """Resumable online batches from a :class:`PosePairs` sampler.

    ``features(x, Tx)`` maps float32 signals (B, N, C) to a method's head input; the call returns
    ``(features, R)`` with R float32 (B, 3, 3), or ``(x, Tx)`` when ``features`` is None (operator
    pre-training, labels unused). ``state_dict`` saves the RNG, so a resumed run sees the same data.
    """

    def __init__(self, pairs: PosePairs, batch: int, *, seed: int, stream: int, features: Features | None = None,
                 rotations: str | None = None) -> None:
        self.pairs, self.batch, self.features, self.rotations = pairs, int(batch), features, rotations
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(100 + stream,)))

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, tx, R = self.pairs.sample(self.batch, self.rng, self.rotations)
        xt, txt = torch.from_numpy(x).float(), torch.from_numpy(tx).float()
        if self.features is None:
            return xt, txt
        with torch.no_grad():
            return self.features(xt, txt), torch.from_numpy(R).float()

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
