"""The homNIST run configuration: :class:`HomNISTConfig`, its presets and :func:`preset`.

Why each preset has the values it has is in ``docs/homnist.md`` ("Presets"); the paper's
settings are in ``docs/algorithm.md`` §3.2–3.3.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from niso_geom.errors import NisoGeomError, RunDirError
from niso_geom.experiments.common import config_digest, make_config

__all__ = [
    "AMP_MODES",
    "EIGENVALUE_PARAMS",
    "HEAD_NORMS",
    "INITS",
    "OFFICIAL_HEAD",
    "PRESETS",
    "TEST_PICKS",
    "HomNISTConfig",
    "HomNISTConfigError",
    "load_run_config",
    "preset",
]

#: Normalizations of the classifier head's input (see :func:`~.heads.build_head`).
HEAD_NORMS: tuple[str, ...] = ("none", "sample", "channel")
#: Eigenvalue parametrizations of :class:`~niso_geom.niso.operator.LearnedOperator`.
EIGENVALUE_PARAMS: tuple[str, ...] = ("cumsum", "square")
#: Parameter initializations of the autoencoder: PyTorch's default, or the flax reference's
#: (``lecun_normal`` convolutions, zero biases; :func:`~niso_geom.niso.models.reference_init_`).
INITS: tuple[str, ...] = ("torch", "reference")
#: Which MNIST test digits form the homNIST evaluation set: a seeded random subset, or the first ones.
TEST_PICKS: tuple[str, ...] = ("random", "first")
#: ``amp`` values :func:`~niso_geom.niso.autoencoder.pretrain` accepts as strings.
AMP_MODES: tuple[str, ...] = ("auto", "off", "bf16", "bfloat16", "fp16", "float16")

# fields that must be integers >= 1, >= 0, or None / >= 1
_POSITIVE_INTS = ("lift", "latent_dim", "k", "steps", "batch", "accum", "head_features", "head_layers",
                  "head_inter", "baseline_width", "aug_views", "head_steps", "head_batch", "eval_batch",
                  "checkpoint_every", "log_every")
_NONNEGATIVE_INTS = ("homnist_seed", "warmup", "head_warmup")
_OPTIONAL_POSITIVE_INTS = ("pretrain_digits", "head_digits", "test_digits", "triplet_batch", "head_readout",
                           "decay_steps", "head_decay_steps")
_POSITIVE_FLOATS = ("lr", "head_lr")
_NONNEGATIVE_FLOATS = ("homography_scale", "end_lr", "alpha", "beta", "head_noise")
_OPTIONAL_NONNEGATIVE_FLOATS = ("head_end_lr",)
_LEVEL_TUPLES = ("enc_channels", "enc_depth", "dec_channels", "dec_depth")


class HomNISTConfigError(NisoGeomError, ValueError):
    """A homNIST config field has an invalid value (the message names the field and value)."""


@dataclass(frozen=True)
class HomNISTConfig:
    """Everything that defines a homNIST run (saved as ``config.json``); checked on creation.

    Data: ``pretrain_digits`` MNIST training digits (train+valid, 60,000; None = all) feed the
    pre-training pairs; ``head_digits`` of them (a seeded subset; None = all) train the
    classifier; ``test_digits`` MNIST test digits × 32 warps form the homNIST evaluation set
    (None = all 10,000), built with ``homnist_seed``: a random subset drawn with ``homnist_seed``
    (``test_pick="random"``) or the first ones (``"first"``, the earlier behaviour).

    Speed (same mathematics): ``channels_last`` memory for the autoencoder's convolutions,
    ``compile`` (``torch.compile`` of the training step), ``amp`` (autocast of the encoder and
    decoder). Classifier protocol of the official code (``docs/algorithm.md`` §3.3):
    ``head_train_kernel`` (Φ and M train with the head), ``head_decay_steps`` / ``head_end_lr``
    (its schedule), ``init="reference"``; :data:`OFFICIAL_HEAD` collects them.
    """

    preset: str = "custom"
    # data
    pretrain_digits: int | None = None
    head_digits: int | None = 20_000
    test_digits: int | None = 500
    test_pick: str = "random"  # random | first: which test digits (see TEST_PICKS)
    homnist_seed: int = 0
    homography_scale: float = 1.0
    # autoencoder: 40x40x1 -> 20x20xC, K eigenpairs
    enc_channels: tuple[int, ...] = (16, 32)
    enc_depth: tuple[int, ...] = (1, 1)
    dec_channels: tuple[int, ...] = (32, 16)
    dec_depth: tuple[int, ...] = (1, 1)
    lift: int = 16
    latent_dim: int = 32
    k: int = 32
    eigenvalue_param: str = "cumsum"
    latent_norm: bool = False  # append LatentScaleNorm to the encoder (every method, for a fair comparison)
    init: str = "torch"  # torch | reference (INITS)
    # pre-training (docs/algorithm.md §3.2)
    steps: int = 2000
    batch: int = 16
    triplet_batch: int | None = None  # None: same as batch
    triplet_same_transform: bool = False  # True: x, T x, T T x (NFT-style sequences)
    accum: int = 1
    lr: float = 1e-3
    warmup: int = 100
    end_lr: float = 5e-5
    decay_steps: int | None = None  # the cosine's horizon (None: steps; the official code's is 1e6)
    alpha: float = 0.5
    beta: float = 0.1
    spectral_dropout: bool = False
    # classifier heads
    head_norm: str = "none"  # none | sample | channel: RMS-normalize the head's input (see build_head)
    head_noise: float = 0.0  # training-time Gaussian noise on the head's input, relative to its RMS
    head_features: int = 64
    head_layers: int = 2
    head_inter: int = 64
    head_readout: int | None = 1024  # None: the paper's 4 * F(F+1)/2 = 8320
    baseline_width: int = 64
    aug_views: int = 2  # augmented copies per labelled digit for the ae_aug_labels head
    head_steps: int = 3000
    head_batch: int = 64
    head_lr: float = 1e-3
    head_warmup: int = 100
    head_end_lr: float | None = None  # None: 0.05 * head_lr
    head_decay_steps: int | None = None  # None: head_steps
    head_train_kernel: bool = False  # NIso heads: train Φ and M too, on cached latents (the official protocol)
    # speed (same mathematics up to float rounding; docs/homnist.md "A cheaper step")
    channels_last: bool = False
    compile: bool = False
    # bookkeeping
    eval_batch: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    amp: str = "auto"  # autocast on CUDA (bf16/fp16), off on CPU; "off" disables

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every field that changes results (not the preset name, nor how a step
        runs: ``channels_last`` and ``compile`` change float rounding only)."""
        return config_digest(self, ("preset", "checkpoint_every", "log_every", "eval_batch", "channels_last",
                                    "compile"))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> HomNISTConfig:
        """The config of a saved ``config.json`` ``"config"`` entry (JSON lists back to tuples;
        keys this version does not know are ignored; a config saved before ``test_pick`` existed
        evaluated on the first test digits)."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in names}
        fields.setdefault("test_pick", "first")
        return cls(**fields)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate(cfg: HomNISTConfig) -> None:
    """Raise :class:`HomNISTConfigError` naming the first field whose value is invalid."""

    def bad(name: str, expected: str) -> HomNISTConfigError:
        return HomNISTConfigError(f"homNIST config: {name} must be {expected}, got {getattr(cfg, name)!r}")

    for name in _POSITIVE_INTS:
        if not (_is_int(getattr(cfg, name)) and getattr(cfg, name) >= 1):
            raise bad(name, "an integer >= 1")
    for name in _NONNEGATIVE_INTS:
        if not (_is_int(getattr(cfg, name)) and getattr(cfg, name) >= 0):
            raise bad(name, "an integer >= 0")
    for name in _OPTIONAL_POSITIVE_INTS:
        v = getattr(cfg, name)
        if v is not None and not (_is_int(v) and v >= 1):
            raise bad(name, "None or an integer >= 1")
    for name in _POSITIVE_FLOATS + _NONNEGATIVE_FLOATS + _OPTIONAL_NONNEGATIVE_FLOATS:
        v = getattr(cfg, name)
        if v is None and name in _OPTIONAL_NONNEGATIVE_FLOATS:
            continue
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
            raise bad(name, "a finite number")
        if v < 0 or (v == 0 and name in _POSITIVE_FLOATS):
            raise bad(name, "> 0" if name in _POSITIVE_FLOATS else ">= 0")
    for name in _LEVEL_TUPLES:
        v = getattr(cfg, name)
        if not (isinstance(v, tuple) and v and all(_is_int(c) and c >= 1 for c in v)):
            raise bad(name, "a non-empty tuple of integers >= 1")
    if len(cfg.enc_depth) != len(cfg.enc_channels):
        raise bad("enc_depth", f"one depth per encoder level ({len(cfg.enc_channels)})")
    if len(cfg.dec_channels) != len(cfg.enc_channels):
        raise bad("dec_channels", f"as many levels as enc_channels ({len(cfg.enc_channels)})")
    if len(cfg.dec_depth) != len(cfg.dec_channels):
        raise bad("dec_depth", f"one depth per decoder level ({len(cfg.dec_channels)})")
    for name, allowed in (("eigenvalue_param", EIGENVALUE_PARAMS), ("head_norm", HEAD_NORMS), ("amp", AMP_MODES),
                          ("init", INITS), ("test_pick", TEST_PICKS)):
        if getattr(cfg, name) not in allowed:
            raise bad(name, f"one of {allowed}")
    for name in ("latent_norm", "triplet_same_transform", "spectral_dropout", "head_train_kernel", "channels_last",
                 "compile"):
        if not isinstance(getattr(cfg, name), bool):
            raise bad(name, "true or false")


#: The official ``hmnist_pred`` classifier protocol (``docs/algorithm.md`` §3.3, §1.8): Φ and M
#: train with the head, OrthNet F = 128 with the 8,320-unit readout, 20,000 updates of 16 at
#: 5e-4 (warmup 2,000, then optax's cosine towards 5e-5 at update 1e6: 4.996e-4 at 20k), raw
#: head inputs. ``preset("cpu_official_head")`` is the cpu preset with these; on the command line:
#: ``--set head_train_kernel=true head_features=128 head_readout=none head_steps=20000 head_batch=16
#: head_lr=5e-4 head_warmup=2000 head_end_lr=5e-5 head_decay_steps=1000000 head_norm=none head_noise=0``.
OFFICIAL_HEAD: dict[str, Any] = {
    "head_train_kernel": True, "head_features": 128, "head_layers": 2, "head_inter": 64, "head_readout": None,
    "head_steps": 20_000, "head_batch": 16, "head_lr": 5e-4, "head_warmup": 2000, "head_end_lr": 5e-5,
    "head_decay_steps": 1_000_000, "head_norm": "none", "head_noise": 0.0,
}

_CPU = HomNISTConfig(preset="cpu", alpha=2.0, steps=4000, head_digits=None, head_norm="channel", head_noise=0.1,
                     test_digits=2000)

PRESETS: dict[str, HomNISTConfig] = {
    # a smoke test: seconds per method
    "tiny": HomNISTConfig(
        preset="tiny", pretrain_digits=2000, head_digits=1000, test_digits=16,
        enc_channels=(8, 16), dec_channels=(16, 8), lift=8, latent_dim=8, k=16,
        steps=40, batch=8, lr=2e-3, warmup=5, head_features=16, head_inter=16, head_readout=64,
        baseline_width=16, aug_views=1, head_steps=150, head_batch=64, head_lr=3e-3, head_warmup=10,
        checkpoint_every=20, log_every=10, eval_batch=256,
    ),
    # one seed of every method on 2 CPU cores (`--jobs 2`) within an hour; why α = 2 and the head
    # settings: docs/homnist.md "Presets"
    # evaluation on a random 2,000 of the 10,000 test digits × 32 warps
    "cpu": _CPU,
    # the cpu preset with the official classifier protocol (OFFICIAL_HEAD)
    "cpu_official_head": dataclasses.replace(_CPU, preset="cpu_official_head", **OFFICIAL_HEAD),
    # the paper's sizes, schedules, init and classifier protocol (docs/algorithm.md §1.8, §2.1,
    # §3.2-3.3), full precision, all 10,000 test digits; for a GPU:
    # niso homnist run --preset paper --device cuda [--set amp=bf16]
    "paper": HomNISTConfig(
        preset="paper", pretrain_digits=None, head_digits=None, test_digits=None, init="reference",
        enc_channels=(64, 128), enc_depth=(3, 3), dec_channels=(128, 64), dec_depth=(3, 3), lift=48,
        latent_dim=32, k=32, steps=50_000, batch=16, lr=5e-4, warmup=2000, end_lr=5e-5, decay_steps=1_000_000,
        baseline_width=128, aug_views=4, amp="off",
        checkpoint_every=5000, log_every=100, eval_batch=1000, **OFFICIAL_HEAD,
    ),
}


def preset(name: str = "cpu", **overrides: Any) -> HomNISTConfig:
    """A preset config with ``overrides`` (strings are parsed by field type; unknown keys raise)."""
    return make_config(PRESETS, name, overrides)


def load_run_config(run_dir: str | os.PathLike) -> HomNISTConfig:
    """The config saved in ``run_dir/config.json`` by :func:`~.runner.run`."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"{path} not found: {run_dir} is not a homNIST run folder")
    try:
        saved = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path} is not a homNIST config.json ({exc})") from exc
    return HomNISTConfig.from_dict(saved)
