"""What one step of a spectra run trains on: the batch source, the loss and the tie-breaker hook.

The loss is the paper's identity-encoder objective (:func:`~niso_geom.niso.losses.niso_objective`:
reconstruction of each side of a pair from the other through τ, β·multiplicity, spectral
dropout); :class:`SpectraObjective` adds the tie-breakers of ``cfg.extras`` that act inside a
step (jittered mask, decorrelation, the refinement phase's β) and :class:`ClusterRotationHook`
the one that acts between steps. With ``extras`` at their defaults both reduce to the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from niso_geom.data.signals import SpherePairs
from niso_geom.experiments.spectra.config import SpectraConfig
from niso_geom.experiments.spectra.problem import Problem
from niso_geom.niso.extras import decorrelation_term, jittered_mask_evals, rotate_clusters
from niso_geom.niso.linalg import ProcrustesMethod
from niso_geom.niso.losses import niso_objective
from niso_geom.niso.operator import LearnedOperator
from niso_geom.train import Hook

__all__ = ["ClusterRotationHook", "SpectraBatches", "SpectraObjective", "signal_moment", "train_step"]


def _dropping(cfg: SpectraConfig, step: int) -> bool:
    """Whether update ``step`` uses spectral dropout."""
    return cfg.dropout and step >= cfg.extras.dropout_warmup and cfg.k > 1


def _draws_in_torch(sampler: Any) -> bool:
    """Whether training batches come from ``sampler.sample_torch`` (random fields; digits on the
    sphere are resampled by NumPy)."""
    return hasattr(sampler, "sample_torch") and not (isinstance(sampler, SpherePairs) and sampler.images is not None)


class SpectraBatches:
    """The batch of update ``step``: ``(x, Tx, keep, jitter)`` — signals and their transformed copies
    (B, N, C) drawn in torch (the sampler's ``sample_torch``, a few percent of a step) from a generator
    seeded by (seed, step), or by NumPy from the seed stream ``[seed, step]`` for samplers without it
    (so resuming needs only the step), the spectral
    dropout's truncation (B,) (``keep = K`` when dropout is off or not started) and the mask jitter
    (B, K) (zeros when off). ``step`` advances by one per call; ``state_dict`` saves it."""

    def __init__(self, problem: Problem, cfg: SpectraConfig) -> None:
        self.problem, self.cfg = problem, cfg
        self.step = 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, step = self.cfg, self.step
        self.step += 1
        sampler = self.problem.sampler
        if _draws_in_torch(sampler):
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_037 + step + 13)
            x, tx, _ = sampler.sample_torch(cfg.batch, gen)
        else:
            x, tx, _ = sampler.sample(cfg.batch, np.random.default_rng([cfg.seed, step]))
            x, tx = torch.from_numpy(x).float(), torch.from_numpy(tx).float()
        keep = torch.full((cfg.batch,), cfg.k, dtype=torch.long)
        if _dropping(cfg, step):
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            keep = torch.randint(1, cfg.k + 1, (cfg.batch,), generator=gen)
        jitter = torch.zeros(cfg.batch, cfg.k)
        sigma = cfg.extras.jitter_std(step, cfg.steps)
        if sigma > 0:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_033 + step + 7)
            jitter = sigma * torch.randn(cfg.batch, cfg.k, generator=gen)
        return x, tx, keep, jitter

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


class SpectraObjective(Hook):
    """``loss_fn(op, batch)`` of :func:`niso_geom.train.fit` for a spectra run (module docstring).

    As a hook it learns the step (for the refinement phase's β) and records the eigenvalues' rate.
    """

    def __init__(self, cfg: SpectraConfig, moment: torch.Tensor | None = None, *,
                 method: ProcrustesMethod = "polar") -> None:
        self.cfg, self.moment, self.method = cfg, moment, method
        self.step = 0
        self._evals_group: dict[str, Any] | None = None
        self._rate: float | None = None

    def on_fit_start(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._evals_group = next((g for g in optimizer.param_groups
                                  if any(p is getattr(model, "evals_raw", None) for p in g["params"])), None)

    def on_step_start(self, step: int) -> None:
        self.step = step
        self._rate = None if self._evals_group is None else self._evals_group["lr"]

    def on_step_end(self, step: int, record: dict[str, float]) -> None:
        if self._rate is not None:
            record["eigenvalue_lr"] = self._rate  # the rate of this update

    def __call__(self, op: LearnedOperator, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, tx, keep, jitter = batch
        cfg, extras = self.cfg, self.cfg.extras
        state = op()
        jittered = extras.jitter_std(self.step, cfg.steps) > 0
        out = niso_objective(state, [x, tx], beta=extras.beta(cfg.beta, self.step, cfg.steps),
                             keep=keep if _dropping(cfg, self.step) else None,
                             mask_evals=jittered_mask_evals(state.evals, jitter if jittered else None),
                             mask_width=extras.mask_width, method=self.method,
                             recon_dtype=None if cfg.recon_dtype == "float32" else getattr(torch, cfg.recon_dtype))
        terms = out.terms
        if extras.decorrelation > 0:
            decor = decorrelation_term(state, out.coeffs, mask_width=extras.mask_width, signal_moment=self.moment)
            terms["loss"] = terms["loss"] + extras.decorrelation * decor
            terms["decor"] = decor
        return terms


class ClusterRotationHook(Hook):
    """Every ``extras.cluster_pca_every`` updates (until ``cluster_pca_until`` of the run, not in the
    refinement phase) rotate the operator's eigenvalue clusters onto the signals' principal axes,
    with the optimizer's moments; records ``pca_clusters``."""

    def __init__(self, op: LearnedOperator, cfg: SpectraConfig, moment: torch.Tensor) -> None:
        self.op, self.cfg, self.moment = op, cfg, moment
        self.optimizer: torch.optim.Optimizer | None = None

    def on_fit_start(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def on_step_end(self, step: int, record: dict[str, float]) -> None:
        if self.cfg.extras.rotates_at(step, self.cfg.steps):
            record["pca_clusters"] = rotate_clusters(self.op, self.moment, self.cfg.extras, self.optimizer)


def signal_moment(problem: Problem, cfg: SpectraConfig, chunk: int = 64) -> torch.Tensor | None:
    """Second moments Σ = E[x xᵀ] (N, N) of the training signals and their transformed copies,
    from ``extras.moment_pairs`` pairs of a stream disjoint from training and evaluation (the same
    every time, so a resumed run uses the same Σ); None when nothing uses them."""
    if not cfg.extras.needs_moment():
        return None
    rng = np.random.default_rng([cfg.seed, 10**9 + 1])
    total, count = None, 0
    for start in range(0, cfg.extras.moment_pairs, chunk):
        x, tx, _ = problem.sampler.sample(min(chunk, cfg.extras.moment_pairs - start), rng)
        z = np.concatenate([x, tx]).transpose(1, 0, 2).reshape(x.shape[1], -1).astype(np.float64)  # (N, samples)
        total = z @ z.T if total is None else total + z @ z.T
        count += z.shape[1]
    return torch.from_numpy(total / count).float()


def train_step(op: LearnedOperator, problem: Problem, cfg: SpectraConfig, step: int,
               moment: torch.Tensor | None = None, method: ProcrustesMethod = "polar") -> dict[str, float]:
    """Forward and backward of update ``step`` outside the trainer (for benchmarks): the same
    batch and loss as :func:`niso_geom.train.fit` computes at that step; returns the terms."""
    batches = SpectraBatches(problem, cfg)
    batches.step = step
    objective = SpectraObjective(cfg, moment, method=method)
    objective.on_step_start(step)
    terms = objective(op, batches())
    terms["loss"].backward()
    return {k: float(v.detach()) for k, v in terms.items()}
