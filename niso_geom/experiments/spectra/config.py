"""What defines a spectra run: :class:`SpectraConfig`, its presets and overrides.

The top-level fields are the paper's method (sizes, schedule, β, spectral dropout); the
project's tie-breakers sit in ``extras`` (:class:`~niso_geom.niso.extras.TieBreakers`, all off by
default) and are switched on by the presets that use them. Why each preset adds what it adds is
measured in ``docs/spectra.md``; :func:`preset_help` says which extras each preset adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from niso_geom.domains.sphere import grid_kind
from niso_geom.experiments.common import coerce_field
from niso_geom.niso.extras import TieBreakers

__all__ = ["DOMAINS", "PRESETS", "SpectraConfig", "preset", "preset_help"]

DOMAINS = ("torus", "sphere", "mesh")
# configs written before grid names were shared with `niso domain` said "equiangular" for the cell-centred grid
LEGACY_GRIDS = {"equiangular": "equiangular-centred"}
CONFIG_VERSION = 2  # 2: shared grid names (1: "equiangular" meant the cell-centred grid)


@dataclass(frozen=True)
class SpectraConfig:
    """Everything that defines a spectra run (saved as config.json)."""

    domain: str = "torus"  # torus | sphere | mesh
    grid: str = "driscoll-healy"  # sphere grid kind (niso_geom.domains.sphere.GRID_NAMES: dh, centred, ...)
    res: int = 16  # torus side; sphere: latitude rows (nside for healpix); mesh: icosphere level
    k: int = 256
    signals: str = "random"  # random | mnist
    channels: int = 64
    batch: int = 8
    steps: int = 3000
    lr: float = 5e-4
    lr_end: float = 5e-5  # cosine decay from lr to lr_end over the run; lr_end = lr holds it constant
    warmup: int = 200
    beta: float = 0.5
    eigenvalue_param: str = "square"
    dropout: bool = True
    alpha: float = 1.0  # power-law exponent of the random fields
    lmax: int = 10  # band limit of random spherical fields
    eval_pairs: int = 16
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"  # where training runs: auto | cpu | cuda (the evaluation runs on the CPU)
    recon_dtype: str = "float32"  # float32 | bfloat16 (opt-in): dtype of τ ẑ and Φ c in training (docs/performance.md)
    preset: str = "custom"
    extras: TieBreakers = field(default_factory=TieBreakers)

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {self.domain!r}")
        if self.signals not in ("random", "mnist"):
            raise ValueError(f"signals must be 'random' or 'mnist', got {self.signals!r}")
        for name in ("res", "k", "channels", "batch", "steps", "eval_pairs", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "lmax", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or not self.lr_end >= 0 or not self.beta >= 0:
            raise ValueError(f"need lr > 0, lr_end >= 0 and beta >= 0, got lr={self.lr}, lr_end={self.lr_end}, "
                             f"beta={self.beta}")
        if self.recon_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"recon_dtype must be float32 or bfloat16, got {self.recon_dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        try:
            object.__setattr__(self, "grid", grid_kind(self.grid))
        except ValueError as exc:
            raise ValueError(f"grid: {exc}") from None
        if isinstance(self.extras, Mapping):  # from JSON
            object.__setattr__(self, "extras", TieBreakers(**self.extras))
        self.extras.check_run(self.steps, self.warmup)

    def to_dict(self) -> dict[str, Any]:
        """The config as config.json holds it (with the layout's version)."""
        return {**dataclasses.asdict(self), "config_version": CONFIG_VERSION}

    def identity(self) -> dict[str, Any]:
        """The fields that define the results (not where the run computes): what a resume must match."""
        d = dataclasses.asdict(self)
        d.pop("device")
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpectraConfig:
        """From config.json, also in the flat layout of runs made before ``extras`` existed and with
        the grid names of runs made before they were shared with ``niso domain``."""
        data = dict(data)
        if data.pop("config_version", 1) < CONFIG_VERSION and "grid" in data:
            data["grid"] = LEGACY_GRIDS.get(data["grid"], data["grid"])
        extra_names = {f.name for f in dataclasses.fields(TieBreakers)}
        extras = dict(data.pop("extras", None) or {})
        extras.update({k: data.pop(k) for k in list(data) if k in extra_names})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        return cls(**data, extras=TieBreakers(**extras))


def _torus_cpu() -> SpectraConfig:
    # cumsum eigenvalues, a constant rate after warmup, the decorrelation and cluster rotations
    return SpectraConfig(domain="torus", res=16, k=256, channels=128, batch=4, steps=8000, lr=1e-3, lr_end=1e-3,
                         beta=0.5, eigenvalue_param="cumsum", preset="cpu",
                         extras=TieBreakers(decorrelation=10.0, moment_pairs=512, cluster_pca_every=500))


PRESETS: dict[str, dict[str, SpectraConfig]] = {
    "cpu": {  # minutes on 2 CPU cores; docs/spectra.md gives the measurements behind each choice
        "torus": _torus_cpu(),
        "sphere": SpectraConfig(domain="sphere", res=16, k=64, lmax=7, channels=128, batch=8, steps=5000,
                                beta=0.25, eigenvalue_param="cumsum", preset="cpu",
                                extras=TieBreakers(moment_pairs=512, cluster_pca_every=500, refine_steps=1000)),
        "mesh": SpectraConfig(domain="mesh", res=3, k=64, lmax=7, channels=128, batch=8, steps=4000, beta=0.25,
                              eigenvalue_param="cumsum", preset="cpu"),
    },
    "paper": {  # the paper's sizes and step counts (docs/algorithm.md §3.1), for a GPU
        "torus": SpectraConfig(domain="torus", res=16, k=256, channels=267, batch=16, steps=1_000_000, warmup=2000,
                               beta=0.5, eigenvalue_param="square", checkpoint_every=10_000, preset="paper"),
        "sphere": SpectraConfig(domain="sphere", res=16, k=64, lmax=7, channels=128, batch=16,
                                steps=50_000, warmup=2000, lr_end=5e-4, beta=0.5, eigenvalue_param="cumsum",
                                checkpoint_every=10_000, preset="paper"),
        "mesh": SpectraConfig(domain="mesh", res=4, k=64, lmax=7, channels=128, batch=16, steps=50_000, warmup=2000,
                              lr_end=5e-4, beta=0.5, eigenvalue_param="cumsum", checkpoint_every=10_000,
                              preset="paper"),
    },
    "tiny": {  # seconds; for tests and smoke runs
        "torus": SpectraConfig(domain="torus", res=6, k=36, channels=16, batch=4, steps=60, warmup=10, lr=5e-3,
                               checkpoint_every=30, eval_pairs=4, preset="tiny"),
        "sphere": SpectraConfig(domain="sphere", res=8, k=16, channels=8, batch=4, steps=60, warmup=10,
                                lr=5e-3, lmax=4, eigenvalue_param="cumsum", checkpoint_every=30, eval_pairs=4,
                                preset="tiny"),
        "mesh": SpectraConfig(domain="mesh", res=1, k=16, channels=8, batch=4, steps=60, warmup=10, lr=5e-3, lmax=4,
                              eigenvalue_param="cumsum", checkpoint_every=30, eval_pairs=4, preset="tiny"),
    },
}


def preset(name: str, domain: str, overrides: Mapping[str, Any] | None = None, *,
           plain: bool = False, **fields: Any) -> SpectraConfig:
    """The preset ``name`` for ``domain`` with ``overrides`` and keyword ``fields`` (field → value;
    strings are parsed by the field's type; tie-breakers by their own name or as ``extras.NAME``;
    None values are skipped). ``plain`` drops the preset's tie-breakers first: the paper's method at
    the preset's sizes."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    if domain not in PRESETS[name]:
        raise ValueError(f"unknown domain {domain!r}; choose from {', '.join(PRESETS[name])}")
    base = PRESETS[name][domain]
    if plain:
        base = dataclasses.replace(base, extras=TieBreakers())
    top = {f.name: f for f in dataclasses.fields(SpectraConfig) if f.name != "extras"}
    extra_fields = {f.name: f for f in dataclasses.fields(TieBreakers)}
    changes: dict[str, Any] = {}
    extra_changes: dict[str, Any] = {}
    for key, value in {**(overrides or {}), **fields}.items():
        if value is None:
            continue
        name_ = key.removeprefix("extras.")
        if key in top:
            changes[key] = coerce_field(top[key], value)
        elif name_ in extra_fields:
            extra_changes[name_] = coerce_field(extra_fields[name_], value)
        else:
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(top))}; tie-breakers: "
                             f"{', '.join(sorted(extra_fields))}")
    if extra_changes:
        changes["extras"] = dataclasses.replace(base.extras, **extra_changes)
    return dataclasses.replace(base, **changes)


def preset_help() -> str:
    """One line per preset and domain: the tie-breakers it adds to the paper's method."""
    lines = []
    for name, by_domain in PRESETS.items():
        parts = []
        for domain, cfg in by_domain.items():
            active = cfg.extras.active()
            parts.append(f"{domain}: " + (", ".join(f"{k}={v}" for k, v in active.items()) if active else "none"))
        lines.append(f"{name} — extras {'; '.join(parts)}")
    return " | ".join(lines)
