"""``--set KEY=VALUE`` overrides are parsed by the field's type hint (typing.get_type_hints)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pytest

from niso_geom.experiments.common import coerce_field, make_config
from niso_geom.experiments.homnist import PRESETS


@dataclasses.dataclass(frozen=True)
class Cfg:  # postponed annotations: every field.type is a string
    steps: int = 10
    lr: float = 1e-3
    amp: bool = False
    limit: int | None = 5
    name: str | None = None
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (1, 0.5)
    mode: Literal["fast", "exact"] = "fast"
    table: np.ndarray | None = None
    interior: str = "int"  # a string field whose *value* says int: stays a string


FIELDS = {f.name: f for f in dataclasses.fields(Cfg)}


@pytest.mark.parametrize(("key", "text", "expected"), [
    ("steps", " 12 ", 12), ("lr", "3e-4", 3e-4), ("amp", "yes", True), ("amp", "0", False),
    ("limit", "none", None), ("limit", "7", 7), ("name", "null", None), ("name", "run1", "run1"),
    ("sizes", "(16, 32, 64)", (16, 32, 64)), ("sizes", "8", (8,)), ("pair", "3,0.25", (3, 0.25)),
    ("mode", "exact", "exact"), ("interior", "float", "float"), ("table", "x.npy", "x.npy"),
])
def test_strings_are_parsed_by_the_type_hint(key, text, expected):
    got = coerce_field(FIELDS[key], text)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("key", "text", "match"), [
    ("steps", "1.5", "steps='1.5': expected an integer"), ("lr", "fast", "lr='fast': expected a number"),
    ("amp", "maybe", r"amp='maybe': expected a boolean \(true/false\)"),
    ("limit", "many", "limit='many': expected an integer or None"),
    ("pair", "1,2,3", "pair='1,2,3': expected comma-separated"), ("mode", "slow", "mode='slow': expected one of"),
])
def test_bad_values_name_the_field(key, text, match):
    with pytest.raises(ValueError, match=match):
        coerce_field(FIELDS[key], text)


def test_non_strings_pass_through_and_real_presets_parse():
    assert coerce_field(FIELDS["sizes"], (4, 5)) == (4, 5)
    cfg = make_config(PRESETS, "cpu", {"enc_channels": "8,16", "test_digits": "none", "homography_scale": "0.5"})
    assert cfg.enc_channels == (8, 16) and cfg.test_digits is None and cfg.homography_scale == 0.5
