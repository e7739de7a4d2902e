"""Pose from τ: a synthetic, CPU-sized version of the paper's relative camera pose experiment (Table 3).

The paper (``niso-reference.md`` §3.6–3.7) pre-trains NIso on pairs of CO3D frames, freezes it,
and regresses the relative camera pose between two frames from their isometric map τ alone
(flatten τ → skip-MLP → 9 numbers → SE(3)). CO3D is several TB; here the frames are spherical
signals seen before and after a known rotation (``docs/pose.md`` has the rationale):

* **Domain**: a cell-centred equiangular grid (16×16 at the cpu preset, harmonics exact to degree 7).
* **Pairs** (:class:`~niso_geom.data.pose_pairs.PosePairs`): C-channel signals of degree ≤ L and
  their exact rotations ``Tx = x(Rᵀ·)``; ``signals="fields"`` (isotropic random fields) or
  ``"cap"`` ("camera" images on a spherical cap around the optical axis); ``rotations="haar"``
  (all of SO(3)) or ``"camera"`` (angle ≤ ``max_angle`` about a random axis). Training pairs are
  drawn online from per-seed streams; every method is evaluated on the same fixed held-out set
  (``eval_seed``; for caps, images from a bank disjoint from the training bank).
* **Target**: R (the rotation between the frames); loss the paper's ``orientation_loss`` (L1
  between rotation matrices) or the chordal one; metric the geodesic angle in degrees.

Methods:

* ``niso`` — a NIso operator (Φ, Λ, M) learned on unlabelled pairs of the same distribution with
  the identity encoder (as the ``spectra`` experiment: L1 reconstruction through the masked SO(K)
  map, β·multiplicity, spectral dropout), then frozen; τ = the masked Procrustes map of a pair;
  a :class:`~niso_geom.niso.pose.PoseHead` (flatten τ → skip-MLP → 9D → SO(3)) regresses R
  (``tau_mask=False``: the head sees the unmasked map in the learned basis instead, a variant).
* ``no_operator`` — the ablation: the same τ solve and head, but in a fixed random orthonormal
  basis Φ (N×K, uniform mass 4π/N, drawn once per seed) and without the eigenvalue mask:
  τ = argmax_{SO(K)} tr(τᵀ Φᵀ M Tx xᵀ M Φ).
* ``raw_pair`` — the baseline: the raw pair (x, Tx) stacked as 2C channels into a CNN with
  sphere padding (:class:`~niso_geom.niso.models.GridEncoder`) and the same skip-MLP pose head
  (``raw_arch="mlp"``: the pose head on the flattened pair).

References computed in closed form (no training): ``identity`` (predict R̂ = I; for Haar
rotations the chance level, median 132.3°, mean 126.5°) and ``sh_oracle`` (the degree-1
Procrustes on the true spherical-harmonic coefficients,
:func:`~niso_geom.niso.pose.rotation_from_coefficients`; ≈ 0° for exact pairs).

A run folder holds ``config.json``, ``metrics.jsonl`` (one record per finished method/seed),
``<method>/seed<k>/{operator,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``
and ``predictions.npz``, ``results.json`` (``{"methods": {m: {median_deg_mean, median_deg_se,
mean_deg_mean, mean_deg_se, seeds, wall_seconds}}, "references": ...}``), ``results.md`` and
``errors.png``. Interrupted runs resume: finished method/seeds are skipped and unfinished
training continues from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from niso_geom.data.pose_pairs import CapBank, PosePairs
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.common import config_digest, make_config, markdown_table, write_json
from niso_geom.niso.isometry import iso_solve
from niso_geom.niso.losses import niso_pair_loss
from niso_geom.niso.models import GridEncoder, from_flat
from niso_geom.niso.operator import LearnedOperator, OperatorState
from niso_geom.niso.pose import (
    PoseHead,
    chordal_loss,
    geodesic_deg,
    haar_mean_deg,
    haar_median_deg,
    orientation_loss,
    rotation_from_coefficients,
)
from niso_geom.train import pretrain, resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "PRESETS",
    "PoseConfig",
    "PairBatches",
    "OperatorPairs",
    "PoseRegressor",
    "aggregate",
    "build_pairs",
    "preset",
    "run",
    "run_method",
]

METHODS: tuple[str, ...] = ("niso", "no_operator", "raw_pair")
METHOD_LABELS: dict[str, str] = {
    "niso": "NIso (τ from the learned operator)",
    "no_operator": "no operator (τ in a fixed random basis, no mask)",
    "raw_pair": "raw pair (x, Tx) → CNN or MLP",
    "identity": "identity prediction (reference)",
    "sh_oracle": "analytic SH degree-1 Procrustes (reference)",
}


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoseConfig:
    """Everything that defines a pose run (saved in ``config.json``)."""

    preset: str = "custom"
    # domain and pairs
    nlat: int = 16  # cell-centred equiangular grid nlat × nlon
    nlon: int = 16
    signals: str = "fields"  # fields | cap
    lmax: int = 7  # band limit of the signals (≤ the grid's)
    alpha: float = 1.0  # fields: per-degree power ∝ (l+1)^-alpha
    channels: int = 32
    cap_radius: float = 60.0  # cap: angular radius (degrees) of the camera's view
    cap_res: int = 32  # cap: image side in pixels
    cap_alpha: float = 1.5  # cap: image amplitude spectrum ∝ |f|^-alpha
    cap_bank: int = 4096  # cap: training images (the evaluation bank has its own)
    data_seed: int = 0  # seeds the cap image banks
    rotations: str = "haar"  # haar | camera
    max_angle: float = 45.0  # camera: largest rotation angle (degrees)
    # NIso operator (identity encoder)
    k: int = 64
    eigenvalue_param: str = "cumsum"
    beta: float = 0.25
    dropout: bool = True
    op_rotations: str = "task"  # task (the pose pairs' rotations) | haar
    tau_mask: bool = True  # niso: the head sees the masked τ (as the paper); False: the unmasked Procrustes map
    op_steps: int = 2000
    op_batch: int = 8
    op_lr: float = 1e-3
    op_warmup: int = 100
    # pose heads (same for every method)
    head_features: int = 256
    head_layers: int = 4
    rep: str = "9d"  # 9d (SVD) | 6d (Gram-Schmidt)
    loss: str = "l1"  # l1 (the paper's orientation loss) | chordal
    head_steps: int = 2000
    head_batch: int = 32
    head_lr: float = 1e-3
    head_warmup: int = 100
    # raw-pair baseline
    raw_arch: str = "cnn"  # cnn | mlp
    raw_channels: tuple[int, ...] = (32, 64)
    raw_depth: tuple[int, ...] = (1, 1)
    raw_out: int = 16
    # evaluation and bookkeeping
    eval_pairs: int = 2000
    eval_seed: int = 12345
    eval_batch: int = 250
    checkpoint_every: int = 500
    log_every: int = 50

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every field that changes results (not the preset name or bookkeeping)."""
        return config_digest(self, ("preset", "checkpoint_every", "log_every", "eval_batch"))


PRESETS: dict[str, PoseConfig] = {
    # seconds; tests and smoke runs (8×8 grid, degree ≤ 3, K = 16)
    "tiny": PoseConfig(preset="tiny", nlat=8, nlon=8, lmax=3, k=16, channels=8, op_steps=60, op_batch=8, op_lr=5e-3,
                       op_warmup=10, head_features=32, head_layers=2, head_steps=150, head_batch=32, head_lr=3e-3,
                       head_warmup=10, raw_channels=(8, 16), raw_out=8, eval_pairs=200, eval_batch=100,
                       checkpoint_every=50, log_every=25),
    # 2 CPU cores: every method, one seed, in about 10-15 minutes
    "cpu": PoseConfig(preset="cpu"),
    # the camera scenario at cpu sizes: 60° caps, rotations ≤ 45°; a weak multiplicity loss (the paper's
    # pose β is 0.025): the spread it puts between the learned eigenvalues makes the mask damp the
    # off-diagonal entries of τ where a small rotation shows (median error, seed 0: β 0.25 -> 1.01°,
    # 0.025 -> 0.66°, 0.0025 -> 0.49°, 5e-4 -> 0.38°, 0 -> 0.37°; no operator 0.45°; docs/pose.md)
    "camera": PoseConfig(preset="camera", signals="cap", rotations="camera", max_angle=45.0, beta=5e-4),
    # bigger, for a GPU: 32×32 grid, degree ≤ 10, K = 121, the paper's head width and depth (F = 512, L = 6)
    "paper": PoseConfig(preset="paper", nlat=32, nlon=32, lmax=10, k=121, channels=128, op_steps=50_000,
                        op_batch=16, op_lr=5e-4, op_warmup=2000, head_features=512, head_layers=6,
                        head_steps=20_000, head_batch=64, head_lr=5e-4, head_warmup=2000, raw_channels=(64, 128, 256),
                        raw_depth=(2, 2, 2), raw_out=64, eval_pairs=10_000, eval_batch=500,
                        checkpoint_every=5000, log_every=100),
}


def preset(name: str = "cpu", **overrides: Any) -> PoseConfig:
    """A preset config with ``overrides`` (strings are parsed by field type; unknown keys raise)."""
    cfg = make_config(PRESETS, name, overrides)
    validate(cfg)
    return cfg


def validate(cfg: PoseConfig) -> None:
    """Raise ValueError for inconsistent settings (named field and value)."""
    grid = build_grid(cfg)
    if cfg.lmax > grid.bandlimit:
        raise ValueError(f"lmax={cfg.lmax} exceeds the {cfg.nlat}x{cfg.nlon} grid's band limit {grid.bandlimit}")
    if cfg.lmax < 1:
        raise ValueError(f"lmax must be >= 1 (the pose lives in degree 1), got {cfg.lmax}")
    if not 4 <= cfg.k <= grid.n:
        raise ValueError(f"k must be in [4, {grid.n}], got {cfg.k}")
    for name, value, allowed in (("signals", cfg.signals, ("fields", "cap")),
                                 ("rotations", cfg.rotations, ("haar", "camera")),
                                 ("op_rotations", cfg.op_rotations, ("task", "haar")),
                                 ("rep", cfg.rep, ("9d", "6d")), ("loss", cfg.loss, ("l1", "chordal")),
                                 ("raw_arch", cfg.raw_arch, ("cnn", "mlp")),
                                 ("eigenvalue_param", cfg.eigenvalue_param, ("cumsum", "square"))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if cfg.channels < 3:
        raise ValueError(f"channels must be >= 3 (a rotation needs three independent degree-1 vectors), "
                         f"got {cfg.channels}")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def build_grid(cfg: PoseConfig) -> SphereGrid:
    """The cell-centred equiangular grid (sphere padding mode ``"cell"`` matches it)."""
    return SphereGrid.equiangular(cfg.nlat, cfg.nlon, poles=False)


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

    def __init__(self, pairs: PosePairs, batch: int, *, seed: int, stream: int,
                 features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
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


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


class OperatorPairs(nn.Module):
    """The operator-only NIso objective (identity encoder) in :func:`pretrain`'s ``step_loss`` protocol.

    ``step_loss((x, Tx))`` = :func:`~niso_geom.niso.losses.niso_pair_loss` with β·multiplicity and,
    when ``dropout``, each pair's reconstruction truncated to its lowest i ~ U{1..K} eigenpairs.
    """

    def __init__(self, operator: LearnedOperator, beta: float, dropout: bool) -> None:
        super().__init__()
        self.operator, self.beta, self.dropout = operator, float(beta), bool(dropout)

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, tx = batch[0], batch[1]
        state = self.operator()
        keep = torch.randint(1, state.k + 1, (x.shape[0],)) if self.dropout and state.k > 1 else None
        return niso_pair_loss(state, x, tx, beta=self.beta, keep=keep)


class PoseRegressor(nn.Module):
    """A network ``features -> R (B, 3, 3)`` with the ``step_loss`` protocol (loss ``"l1"`` or ``"chordal"``)."""

    def __init__(self, net: nn.Module, loss: str = "l1") -> None:
        super().__init__()
        if loss not in ("l1", "chordal"):
            raise ValueError(f"loss must be 'l1' or 'chordal', got {loss!r}")
        self.net, self.loss = net, loss

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        features, R = batch
        pred = self.net(features)
        loss = orientation_loss(R, pred) if self.loss == "l1" else chordal_loss(R, pred)
        return {"loss": loss, "median_deg": geodesic_deg(pred.detach(), R).median()}


class RawPairCNN(nn.Module):
    """The raw-pair baseline: (B, 2C, H, W) → GridEncoder (sphere padding) → PoseHead."""

    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        self.encoder = GridEncoder(2 * cfg.channels, cfg.raw_channels, cfg.raw_depth, cfg.raw_out, mode="sphere",
                                   lift=cfg.raw_channels[0], sphere_grid="cell")
        h, w = self.encoder.latent_shape(cfg.nlat, cfg.nlon)
        self.head = PoseHead((cfg.raw_out, h, w), cfg.head_features, cfg.head_layers, cfg.rep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def random_basis(n: int, k: int, seed: int) -> OperatorState:
    """The ablation's fixed basis: Φ (N, K) with orthonormal columns in the uniform mass 4π/N, Λ = 0."""
    gen = torch.Generator().manual_seed(int(seed))
    q = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64)).Q
    mass = torch.full((n,), 4.0 * math.pi / n, dtype=torch.float64)
    return OperatorState(phi=(q / mass.sqrt().unsqueeze(-1)).float(), evals=torch.zeros(k), mass=mass.float())


def raw_features(cfg: PoseConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x, Tx) (B, N, C) → (B, 2C, H, W) grid images (cnn) or (B, N, 2C) (mlp)."""
    if cfg.raw_arch == "mlp":
        return lambda x, tx: torch.cat([x, tx], dim=-1)
    return lambda x, tx: from_flat(torch.cat([x, tx], dim=-1), cfg.nlat, cfg.nlon)


# --------------------------------------------------------------------------------------------
# one method, one seed
# --------------------------------------------------------------------------------------------


def _operator_diagnostics(state: OperatorState, grid: SphereGrid, cfg: PoseConfig) -> dict[str, Any]:
    """Purity and per-degree counts of the learned eigenvectors against the real SH of the grid."""
    from niso_geom.harmonics.sphere import lmax_for, num_harmonics
    from niso_geom.spectral.compare import assign_eigenspaces

    lt = min(grid.bandlimit, lmax_for(cfg.k) + 1)  # one degree beyond K's, where the grid resolves it
    truth = grid.analytic_eigenbasis(num_harmonics(lt))
    spaces = truth.eigenspaces()
    a = assign_eigenspaces(state.phi.detach().cpu().double().numpy(), truth, spaces)
    return {"operator_purity": float(np.mean(a.purity)), "operator_counts": a.counts(len(spaces)).tolist(),
            "operator_degrees": lt}


def _train_operator(cfg: PoseConfig, seed: int, grid: SphereGrid, pairs: PosePairs, out: Path, *,
                    device: torch.device, progress: bool, resume: bool) -> tuple[OperatorState, dict[str, Any]]:
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
            **_operator_diagnostics(state, grid, cfg)}
    return state.to(device), info


@torch.no_grad()
def _predict(model: nn.Module, features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cfg: PoseConfig,
             pairs: PosePairs, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true rotations (E, 3, 3) on the held-out set."""
    model.eval()
    preds, truth = [], []
    for x, tx, R in eval_chunks(cfg, pairs):
        preds.append(model(features(x.to(device), tx.to(device))).double().cpu())
        truth.append(R)
    return torch.cat(preds).numpy(), torch.cat(truth).numpy()


def _error_summary(errors: np.ndarray) -> dict[str, float]:
    return {"median_deg": float(np.median(errors)), "mean_deg": float(np.mean(errors)),
            "p90_deg": float(np.percentile(errors, 90)), "below_15_deg": float(np.mean(errors < 15.0))}


def run_method(cfg: PoseConfig, method: str, seed: int, out_dir: str | os.PathLike, *, grid: SphereGrid,
               train_pairs: PosePairs, eval_pairs: PosePairs, device: str | torch.device = "cpu",
               progress: bool = True, resume: bool = True) -> dict[str, Any]:
    """Train and evaluate one method with one seed; returns its record (also ``out_dir/result.json``).

    With ``resume``, a finished record with the same config digest is returned (marked
    ``"resumed": True``, which is not saved), and unfinished training continues from its checkpoints.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    out = Path(out_dir)
    result_path = out / "result.json"
    if resume and result_path.is_file():
        rec = json.loads(result_path.read_text())
        if rec.get("config_digest") == cfg.digest():
            return {**rec, "resumed": True}
    dev = resolve_device(device)
    info: dict[str, Any] = {}
    t0 = time.perf_counter()

    # 1. the features the head sees
    if method == "niso":
        state, info = _train_operator(cfg, seed, grid, train_pairs, out / "operator", device=dev, progress=progress,
                                      resume=resume)

        def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
            return iso_solve(state, x.to(dev), tx.to(dev), mask=cfg.tau_mask)
    elif method == "no_operator":
        basis = random_basis(grid.n, cfg.k, seed).to(dev)

        def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
            return iso_solve(basis, x.to(dev), tx.to(dev), mask=False)
    else:
        to_input = raw_features(cfg)

        def features(x: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
            return to_input(x.to(dev), tx.to(dev))
    t_features = time.perf_counter() - t0 - info.get("operator_seconds", 0.0)

    # 2. the pose head
    torch.manual_seed(seed + 1)
    if method == "raw_pair":
        net: nn.Module = RawPairCNN(cfg) if cfg.raw_arch == "cnn" else PoseHead((grid.n, 2 * cfg.channels),
                                                                                 cfg.head_features, cfg.head_layers,
                                                                                 cfg.rep)
    else:
        net = PoseHead((cfg.k, cfg.k), cfg.head_features, cfg.head_layers, cfg.rep)
    model = PoseRegressor(net, cfg.loss)
    head = pretrain(model, PairBatches(train_pairs, cfg.head_batch, seed=seed, stream=1, features=features),
                    cfg.head_steps, lr=cfg.head_lr, warmup=cfg.head_warmup, end_lr=cfg.head_lr * 0.05, amp="off",
                    device=dev, out_dir=out / "head", resume=resume, progress=progress,
                    checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, desc=f"{method} s{seed} head",
                    extra={"method": method, "seed": seed})

    # 3. held-out evaluation
    t1 = time.perf_counter()
    pred, true = _predict(model, features, cfg, eval_pairs, dev)
    errors = np.asarray(geodesic_deg(pred, true))
    t_eval = time.perf_counter() - t1
    _save_predictions(out / "predictions.npz", pred, true, errors)
    rec = {
        "method": method,
        "seed": int(seed),
        **_error_summary(errors),
        "num_eval": int(len(errors)),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "wall_seconds": info.get("operator_seconds", 0.0) + max(t_features, 0.0) + head.wall_seconds + t_eval,
        "timings": {"operator": info.get("operator_seconds", 0.0), "head": head.wall_seconds, "eval": t_eval},
        "head_final": head.final,
        **{k: v for k, v in info.items() if k != "operator_seconds"},
        "config_digest": cfg.digest(),
    }
    write_json(result_path, rec)
    return rec


def _save_predictions(path: Path, pred: np.ndarray, true: np.ndarray, errors: np.ndarray) -> None:
    """Atomic ``np.savez`` of the held-out predictions (float32 rotations, float64 errors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, pred=pred.astype(np.float32), true=true.astype(np.float32), errors=errors)
    os.replace(tmp, path)


def references(cfg: PoseConfig, grid: SphereGrid, eval_pairs: PosePairs) -> dict[str, Any]:
    """Closed-form reference errors on the held-out set: identity prediction and the SH oracle."""
    Y = torch.from_numpy(grid.harmonics(cfg.lmax) * grid.mass[:, None])  # quadrature analysis, exact to lmax
    ident, oracle = [], []
    for x, tx, R in eval_chunks(cfg, eval_pairs):
        eye = torch.eye(3, dtype=torch.float64).expand_as(R)
        ident.append(geodesic_deg(eye, R))
        a, b = Y.mT @ x.double(), Y.mT @ tx.double()
        oracle.append(geodesic_deg(rotation_from_coefficients(a, b), R))
    out = {"identity": _error_summary(torch.cat(ident).numpy()),
           "sh_oracle": _error_summary(torch.cat(oracle).numpy())}
    if cfg.rotations == "haar":
        out["haar_chance"] = {"median_deg": haar_median_deg(), "mean_deg": haar_mean_deg()}
    return out


# --------------------------------------------------------------------------------------------
# several methods and seeds
# --------------------------------------------------------------------------------------------


def aggregate(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """``{"methods": {m: {median_deg_mean, median_deg_se, mean_deg_mean, mean_deg_se, seeds, wall_seconds}}}``.

    Errors are geodesic angles in degrees on the held-out pairs; ``*_se`` is the standard error of
    the mean over seeds (sample std / sqrt(n); null for one seed); ``wall_seconds`` the total.
    """
    out: dict[str, Any] = {"methods": {}}
    for m in methods:
        rs = sorted((r for r in records if r["method"] == m), key=lambda r: r["seed"])
        if not rs:
            continue
        entry: dict[str, Any] = {}
        for key in ("median_deg", "mean_deg"):
            v = np.array([r[key] for r in rs], dtype=np.float64)
            entry[f"{key}_mean"] = float(v.mean())
            entry[f"{key}_se"] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
        entry["seeds"] = [int(r["seed"]) for r in rs]
        entry["wall_seconds"] = float(sum(r["wall_seconds"] for r in rs))
        out["methods"][m] = entry
    return out


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None]]:
    """The issue's checks: NIso's median error below the raw-pair baseline and below the ablation."""
    med = {k: v["median_deg_mean"] for k, v in results["methods"].items()}
    checks: list[tuple[str, bool | None]] = []
    for other, label in (("raw_pair", "NIso median < raw pair"), ("no_operator", "NIso median < no operator")):
        checks.append((label, med["niso"] < med[other] if "niso" in med and other in med else None))
    return checks


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" + (f" ± {se:.2f}" if se is not None else "")


SUMMARY_HEADERS = ["method", "median error °", "mean error °", "seeds", "wall s"]


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows for the terminal and Markdown tables: methods, then the closed-form references."""
    rows = []
    for m, r in results["methods"].items():
        rows.append([METHOD_LABELS.get(m, m), _fmt(r["median_deg_mean"], r["median_deg_se"]),
                     _fmt(r["mean_deg_mean"], r["mean_deg_se"]), str(len(r["seeds"])), f"{r['wall_seconds']:.0f}"])
    for name, r in results.get("references", {}).items():
        label = "Haar-random guess (chance)" if name == "haar_chance" else METHOD_LABELS.get(name, name)
        rows.append([label, f"{r['median_deg']:.2f}", f"{r['mean_deg']:.2f}", "—", "—"])
    return rows


def _describe(cfg: PoseConfig, grid: SphereGrid) -> str:
    sig = ("isotropic random fields" if cfg.signals == "fields"
           else f"camera images on a {cfg.cap_radius:g}° cap")
    rot = ("Haar-random rotations" if cfg.rotations == "haar"
           else f"rotations of ≤ {cfg.max_angle:g}° about random axes")
    return (f"{cfg.nlat}×{cfg.nlon} cell-centred grid (N = {grid.n}), {cfg.channels}-channel {sig} of degree ≤ "
            f"{cfg.lmax}, {rot}; K = {cfg.k}; {cfg.eval_pairs} held-out pairs")


def write_markdown(path: Path, cfg: PoseConfig, results: dict[str, Any], records: Sequence[dict[str, Any]],
                   info: dict[str, Any], figure: str | None) -> None:
    table = markdown_table
    text = ["# Pose from τ: results", "",
            f"Preset `{cfg.preset}`: {_describe(cfg, info['grid'])}. Device {info.get('device')}, torch "
            f"{info.get('torch')}, {info.get('threads')} threads.", "",
            "Geodesic error between the predicted and the true rotation on the held-out pairs (degrees; "
            "mean ± standard error over seeds of each seed's median / mean).", "",
            table(summary_rows(results), SUMMARY_HEADERS), "", "Checks (issue targets):", ""]
    for label, ok in targets(results):
        text.append(f"- {label}: {'n/a' if ok is None else ('yes' if ok else 'NO')}")
    per_run = []
    for r in records:
        t = r["timings"]
        extra = f"{r['operator_purity']:.3f}" if "operator_purity" in r else "—"
        per_run.append([r["method"], str(r["seed"]), f"{r['median_deg']:.2f}", f"{r['mean_deg']:.2f}",
                        f"{r['p90_deg']:.1f}", f"{100 * r['below_15_deg']:.1f}", f"{r['parameters']:,}", extra,
                        f"{t['operator']:.0f}", f"{t['head']:.0f}", f"{t['eval']:.0f}"])
    text += ["", "Per run (purity: the learned eigenvectors' mean energy in one SH degree):", "",
             table(per_run, ["method", "seed", "median °", "mean °", "90th pct °", "< 15° %", "head params",
                             "operator purity", "operator s", "head s", "eval s"]),
             "", f"Total wall time: {info.get('total_wall_seconds', 0):.0f} s.", ""]
    if figure:
        text += [f"![errors]({figure})", ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    os.replace(tmp, path)


def make_figure(out: Path, methods: Sequence[str], seed: int) -> str | None:
    """``errors.png``: error histograms (left) and predicted vs true rotation angle (right), one seed."""
    from niso_geom import plotting

    try:
        plt = plotting._plt()
    except ImportError as exc:  # pragma: no cover - matplotlib missing
        log.warning("figure skipped: %s", exc)
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.geomspace(0.1, 180.0, 49)  # log-spaced: errors span three decades

    def angle(R: np.ndarray) -> np.ndarray:  # rotation angle of each R (E, 3, 3)
        R = R.astype(np.float64)
        return geodesic_deg(np.broadcast_to(np.eye(3), R.shape).copy(), R)

    for m in methods:
        f = out / m / f"seed{seed}" / "predictions.npz"
        if not f.is_file():
            continue
        d = np.load(f)
        ax1.hist(np.clip(d["errors"], 0.1, 180.0), bins=bins, histtype="step", lw=1.5,
                 label=f"{m} (median {np.median(d['errors']):.1f}°)")
        k = min(len(d["true"]), 600)
        ax2.scatter(angle(d["true"][:k]), angle(d["pred"][:k]), s=4, alpha=0.5, label=m)
    ax1.set_xscale("log")
    ax1.set_xlabel("geodesic error (degrees, log scale; < 0.1° shown at 0.1°)")
    ax1.set_ylabel("held-out pairs")
    ax1.set_title(f"error histogram (seed {seed})")
    ax1.legend(fontsize=8)
    ax2.plot([0, 180], [0, 180], "k--", lw=0.6)
    ax2.set_xlabel("true rotation angle (degrees)")
    ax2.set_ylabel("predicted rotation angle (degrees)")
    ax2.set_title("rotation angle: predicted vs true")
    ax2.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    plotting.save(fig, out / "errors.png")
    return "errors.png"


def run(cfg: PoseConfig, out_dir: str | os.PathLike, *, methods: Sequence[str] = METHODS, seeds: Sequence[int] = (0,),
        device: str | torch.device = "cpu", progress: bool = True, resume: bool = True,
        on_record: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every method for every seed; write the run folder; return (results, per-run records)."""
    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {list(METHODS)}")
    validate(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    info: dict[str, Any] = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
                            "python": platform.python_version(), "methods": methods, "seeds": list(seeds)}
    write_json(out / "config.json", {"config": cfg.to_dict(), "config_digest": cfg.digest(), **info})
    t0 = time.perf_counter()
    grid = build_grid(cfg)
    train_pairs, eval_pairs = build_pairs(cfg, grid, "train"), build_pairs(cfg, grid, "eval")

    records = []
    for seed in seeds:
        for m in methods:
            rec = run_method(cfg, m, int(seed), out / m / f"seed{int(seed)}", grid=grid, train_pairs=train_pairs,
                             eval_pairs=eval_pairs, device=dev, progress=progress, resume=resume)
            records.append(rec)
            if not rec.get("resumed"):  # one line per finished method/seed, not per invocation
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if on_record is not None:
                on_record(rec)
    results = aggregate(records, methods)
    results["references"] = references(cfg, grid, eval_pairs)
    results["eval_pairs"] = cfg.eval_pairs
    results["config_digest"] = cfg.digest()
    info["total_wall_seconds"] = time.perf_counter() - t0
    info["grid"] = grid
    figure = make_figure(out, methods, int(seeds[0])) if len(seeds) else None
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", cfg, results, records, info, figure)
    return results, records
