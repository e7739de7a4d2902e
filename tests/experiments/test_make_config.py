"""Config overrides (niso_geom.experiments.common.make_config / coerce_field): every bad value is a
ValueError naming the key and the value; NaN and infinity are refused."""

from __future__ import annotations

import dataclasses

import pytest

from niso_geom.experiments.common import make_config


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 1e-3
    head_lr: float = 1e-3
    eigenvalue_lr_scale: float = 1.0
    steps: int = 10
    checkpoint_every: int = 5
    log_every: int = 1
    dropout: bool = True
    channels: tuple[int, ...] = (4, 8)
    head: int | None = None


PRESETS = {"tiny": Cfg()}


@pytest.mark.parametrize("key,value,expected", [
    ("lr", "nan", "lr='nan': must be a finite number"),
    ("lr", "inf", "lr='inf': must be a finite number"),
    ("lr", "-Infinity", "must be a finite number"),
    ("lr", "fast", "lr='fast': expected a number"),
    ("lr", "-1", "lr='-1': a learning rate (or its scale) must be ≥ 0"),
    ("head_lr", "-0.5", "head_lr='-0.5': a learning rate"),
    ("eigenvalue_lr_scale", "-2", "eigenvalue_lr_scale='-2': a learning rate"),
    ("steps", "1.5", "steps='1.5': expected an integer"),
    ("checkpoint_every", "0", "checkpoint_every=0: must be ≥ 1"),
    ("log_every", "-2", "log_every=-2: must be ≥ 1"),
    ("dropout", "maybe", "dropout='maybe': expected a boolean"),
    ("channels", "4,x", "channels='4,x': expected comma-separated integers"),
    ("head", "two", "head='two': expected an integer or None"),
])
def test_bad_overrides_name_the_key_and_value(key, value, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        make_config(PRESETS, "tiny", {key: value})


def test_good_overrides_and_non_string_values():
    cfg = make_config(PRESETS, "tiny", {"lr": "2e-4", "steps": "7", "dropout": "no", "channels": "2,3",
                                        "head": "None", "checkpoint_every": 3})
    assert (cfg.lr, cfg.steps, cfg.dropout, cfg.channels, cfg.head, cfg.checkpoint_every) == \
        (2e-4, 7, False, (2, 3), None, 3)
    with pytest.raises(ValueError, match="lr=nan: must be a finite number"):
        make_config(PRESETS, "tiny", {"lr": float("nan")})
