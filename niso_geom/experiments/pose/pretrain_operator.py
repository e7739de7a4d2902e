"""The ``niso`` method's first stage: learn the operator (Φ, Λ, M) on unlabelled pairs, then freeze it.

The recipe is the ``spectra`` experiment's with the identity encoder (``docs/algorithm.md`` §1.6,
§1.7): L1 reconstruction through the masked SO(K) map, β·multiplicity, spectral dropout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from niso_geom.data.pose_pairs import PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.pose.config import PoseConfig
from niso_geom.experiments.pose.data import PairBatches
from niso_geom.experiments.pose.models import OperatorPairs
from niso_geom.harmonics.sphere import lmax_for, num_harmonics
from niso_geom.niso.operator import LearnedOperator, OperatorState
from niso_geom.spectral.compare import assign_eigenspaces
from niso_geom.train import pretrain

__all__ = ["operator_diagnostics", "train_operator"]


def operator_diagnostics(state: OperatorState, grid: SphereGrid, cfg: PoseConfig) -> dict[str, Any]:
    """Purity and per-degree counts of the learned eigenvectors against the real SH of the grid."""
    lt = min(grid.bandlimit, lmax_for(cfg.k) + 1)  # one degree beyond K's, where the grid resolves it
    truth = grid.analytic_eigenbasis(num_harmonics(lt))
    spaces = truth.eigenspaces()
    a = assign_eigenspaces(state.phi.detach().cpu().double().numpy(), truth, spaces)
    return {"operator_purity": float(np.mean(a.purity)), "operator_counts": a.counts(len(spaces)).tolist(),
            "operator_degrees": lt}


def train_operator(cfg: PoseConfig, seed: int, grid: SphereGrid, pairs: PosePairs, out: Path, *,
                   device: torch.device, progress: bool, resume: bool) -> tuple[OperatorState, dict[str, Any]]:
    """Train (or resume) the operator of ``seed`` in ``out``; returns its frozen state on ``device``
    and ``{"operator_seconds", "operator_final", "operator_purity", "operator_counts", "operator_degrees"}``."""
    gen = torch.Generator().manual_seed(int(seed))
    op = LearnedOperator(grid.n, cfg.k, eigenvalue_param=cfg.eigenvalue_param, generator=gen)
    model = OperatorPairs(op, cfg.beta, cfg.dropout)
    source = PairBatches(pairs, cfg.op_batch, seed=seed, stream=0,
                         rotations=None if cfg.op_rotations == "task" else cfg.op_rotations)
    torch.manual_seed(seed)
    res = pretrain(model, source, cfg.op_steps, lr=cfg.op_lr, warmup=cfg.op_warmup, end_lr=cfg.op_lr * 0.05,
                   amp="off", device=device, out_dir=out, resume=resume, progress=progress,
                   checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=f"niso s{seed} operator",
                   extra={"seed": seed, "stage": "operator"})
    op.eval()
    with torch.no_grad():
        state = op().detach()
    info = {"operator_seconds": res.wall_seconds, "operator_final": res.final,
            **operator_diagnostics(state, grid, cfg)}
    return state.to(device), info
