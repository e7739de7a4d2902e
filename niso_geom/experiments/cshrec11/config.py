"""The conformal SHREC'11 config: one frozen dataclass, checked in one place, and its presets.

Why each preset has its sizes: ``docs/cshrec11.md`` (section "Presets").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from niso_geom.experiments.common import coerce_field, config_digest, make_config
from niso_geom.geometry.mobius_severity import check_severity

from .errors import ConfigError

__all__ = ["PRESETS", "CShrec11Config", "preset"]

#: Fields that must be at least 1.
_AT_LEAST_ONE = ("transforms", "build_jobs", "lift", "latent_dim", "k", "batch", "accum", "head_features",
                 "head_layers", "head_inter", "head_steps", "head_batch", "baseline_width", "sh_lmax", "sh_hidden",
                 "e3nn_lmax", "e3nn_mul", "e3nn_layers", "equiv_pairs", "eval_batch", "checkpoint_every",
                 "log_every")
#: Fields that must be at least 0.
_NON_NEGATIVE = ("steps", "warmup", "end_lr", "alpha", "beta", "head_warmup", "finetune_lr_scale", "e3nn_lmax_hidden",
                 "data_seed")
#: Fields that must be positive numbers.
_POSITIVE = ("lr", "head_lr")
HEAD_VIEWS = ("all", "original")


@dataclass(frozen=True)
class CShrec11Config:
    """Everything that defines a conformal SHREC'11 run (saved as ``config.json``).

    Data: grid ``res`` (H, W) with both poles, ``transforms`` Möbius views per mesh, built
    with ``data_seed``; ``classes`` = comma-separated class names, or a number n for the first
    n classes in sorted order (None: all 25); ``max_per_class`` = only the first n meshes of
    each class (smoke tests; None: all). Every field is checked on construction
    (:class:`~.errors.ConfigError` naming the field and its value).
    """

    preset: str = "custom"
    # data
    res: tuple[int, ...] = (48, 96)
    transforms: int = 30
    mobius: str = "paper"  # how the dataset's views are drawn: paper | boost | rotation (docs/cshrec11.md)
    severity: float | None = None  # paper: |c| of the 3-D inversion (None: 1.2); boost: the largest |c| (None: 0.2)
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
    # pre-training (docs/algorithm.md §3.4)
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~.errors.ConfigError` naming the first field with a value that cannot run."""
        if len(self.res) != 2 or min(self.res) < 1:
            raise ConfigError(f"res must be (H, W) with H, W >= 1, got {self.res}")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.p_original <= 1.0:
            raise ConfigError(f"p_original must be in [0, 1], got {self.p_original!r}")
        try:
            check_severity(self.mobius, self.severity)
        except ValueError as exc:
            raise ConfigError(f"mobius={self.mobius!r}, severity={self.severity!r}: {exc}") from exc
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ConfigError(f"max_per_class must be >= 1 or None, got {self.max_per_class!r}")
        if self.head_readout is not None and self.head_readout < 1:
            raise ConfigError(f"head_readout must be >= 1 or None, got {self.head_readout!r}")
        if self.head_views not in HEAD_VIEWS:
            raise ConfigError(f"head_views must be 'all' or 'original', got {self.head_views!r}")
        for chans, depth in (("enc_channels", "enc_depth"), ("dec_channels", "dec_depth")):
            if len(getattr(self, chans)) != len(getattr(self, depth)):
                raise ConfigError(f"{chans} {getattr(self, chans)} and {depth} {getattr(self, depth)} "
                                  "must have the same length (one entry per level)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every field that changes results (not the preset name or bookkeeping)."""
        return config_digest(self, ("preset", "checkpoint_every", "log_every", "eval_batch", "build_jobs"))

    @property
    def levels(self) -> int:
        """Number of 2x downsamplings from the image grid to the latent grid."""
        return len(self.enc_channels) - 1


PRESETS: dict[str, CShrec11Config] = {
    # smoke tests: 3 classes x 4 meshes, 16x32, 4 transforms; seconds
    "tiny": CShrec11Config(
        preset="tiny", res=(16, 32), transforms=4, classes="bird1,hand,laptop", max_per_class=4,
        enc_channels=(8, 16, 16), dec_channels=(16, 16, 8), lift=8, latent_dim=16, k=16,
        steps=60, batch=4, lr=2e-3, warmup=5, head_features=16, head_layers=2, head_inter=16, head_readout=64,
        head_steps=100, head_batch=8, head_lr=3e-3, head_warmup=10, baseline_width=8, sh_lmax=6, sh_hidden=32,
        e3nn_lmax=4, e3nn_mul=4, e3nn_lmax_hidden=2, e3nn_layers=1, equiv_pairs=16, eval_batch=40,
        checkpoint_every=50, log_every=10,
    ),
    # one seed of every method in about an hour on 2 CPU cores
    "cpu": CShrec11Config(preset="cpu"),
    # the paper's sizes, for a GPU
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
    """A preset config with ``overrides`` (strings are parsed by field type).

    Raises :class:`~.errors.ConfigError` for an unknown preset or key, a value that does not
    parse, or a value :meth:`CShrec11Config.validate` rejects.
    """
    fields = {f.name: f for f in dataclasses.fields(CShrec11Config)}
    for key, value in overrides.items():
        if key in fields:  # unknown keys: make_config lists the known ones
            try:
                coerce_field(fields[key], value)
            except ValueError as exc:
                raise ConfigError(f"{key}={value!r}: {exc}") from exc
    try:
        return make_config(PRESETS, name, overrides)
    except ConfigError:
        raise
    except ValueError as exc:  # unknown preset/key, or a string that does not parse as the field's type
        raise ConfigError(str(exc)) from exc
