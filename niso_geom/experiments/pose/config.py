"""The pose experiment's configuration: :class:`PoseConfig`, its presets and their validation.

Why each preset has the values it has is in ``docs/pose.md`` (section *Presets*).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments.common import config_digest, make_config
from niso_geom.experiments.pose.errors import PoseConfigError

__all__ = ["PRESETS", "PoseConfig", "build_grid", "preset", "validate"]

#: bookkeeping fields: they do not change results, so they stay out of the config digest
BOOKKEEPING_FIELDS: tuple[str, ...] = ("preset", "checkpoint_every", "log_every", "eval_batch")


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
        return config_digest(self, BOOKKEEPING_FIELDS)


PRESETS: dict[str, PoseConfig] = {
    # seconds: tests and smoke runs (8×8 grid, degree ≤ 3, K = 16)
    "tiny": PoseConfig(preset="tiny", nlat=8, nlon=8, lmax=3, k=16, channels=8, op_steps=60, op_batch=8, op_lr=5e-3,
                       op_warmup=10, head_features=32, head_layers=2, head_steps=150, head_batch=32, head_lr=3e-3,
                       head_warmup=10, raw_channels=(8, 16), raw_out=8, eval_pairs=200, eval_batch=100,
                       checkpoint_every=50, log_every=25),
    # 2 CPU cores: isotropic fields, Haar rotations; every method, one seed, in about 10-15 minutes
    "cpu": PoseConfig(preset="cpu"),
    # the camera scenario at cpu sizes: 60° caps, rotations ≤ 45°, a weak multiplicity loss (docs/pose.md)
    "camera": PoseConfig(preset="camera", signals="cap", rotations="camera", max_angle=45.0, beta=5e-4),
    # bigger, for a GPU: 32×32 grid, degree ≤ 10, K = 121, the paper's head (F = 512, 6 layers)
    "paper": PoseConfig(preset="paper", nlat=32, nlon=32, lmax=10, k=121, channels=128, op_steps=50_000,
                        op_batch=16, op_lr=5e-4, op_warmup=2000, head_features=512, head_layers=6,
                        head_steps=20_000, head_batch=64, head_lr=5e-4, head_warmup=2000, raw_channels=(64, 128, 256),
                        raw_depth=(2, 2, 2), raw_out=64, eval_pairs=10_000, eval_batch=500,
                        checkpoint_every=5000, log_every=100),
}

#: the allowed values of each categorical field
CHOICES: dict[str, tuple[str, ...]] = {
    "signals": ("fields", "cap"),
    "rotations": ("haar", "camera"),
    "op_rotations": ("task", "haar"),
    "rep": ("9d", "6d"),
    "loss": ("l1", "chordal"),
    "raw_arch": ("cnn", "mlp"),
    "eigenvalue_param": ("cumsum", "square"),
}


def preset(name: str = "cpu", **overrides: Any) -> PoseConfig:
    """A preset config with ``overrides`` (strings are parsed by field type).

    Raises
    ------
    PoseConfigError
        (a ValueError) for an unknown preset or key, an unparsable value or inconsistent fields.
    """
    try:
        cfg = make_config(PRESETS, name, overrides)
    except ValueError as exc:  # unknown preset/key, or a value that does not parse as its field's type
        raise PoseConfigError(f"pose config: {exc}") from exc
    validate(cfg)
    return cfg


def build_grid(cfg: PoseConfig) -> SphereGrid:
    """The cell-centred equiangular grid (sphere padding mode ``"cell"`` matches it)."""
    return SphereGrid.equiangular(cfg.nlat, cfg.nlon, poles=False)


def validate(cfg: PoseConfig) -> None:
    """Raise :class:`PoseConfigError` (a ValueError) for inconsistent settings, naming the field and value."""
    grid = build_grid(cfg)
    if cfg.lmax > grid.bandlimit:
        raise PoseConfigError(f"lmax={cfg.lmax} exceeds the {cfg.nlat}x{cfg.nlon} grid's band limit "
                              f"{grid.bandlimit}")
    if cfg.lmax < 1:
        raise PoseConfigError(f"lmax must be >= 1 (the pose lives in degree 1), got {cfg.lmax}")
    if not 4 <= cfg.k <= grid.n:
        raise PoseConfigError(f"k must be in [4, {grid.n}], got {cfg.k}")
    for name, allowed in CHOICES.items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise PoseConfigError(f"{name} must be one of {allowed}, got {value!r}")
    if cfg.channels < 3:
        raise PoseConfigError(f"channels must be >= 3 (a rotation needs three independent degree-1 vectors), "
                              f"got {cfg.channels}")
