"""Pieces shared by the experiment modules (homNIST, conformal SHREC'11, ...).

* configs: :func:`make_config` (a frozen-dataclass preset plus ``KEY=VALUE`` overrides parsed by
  field type) and :func:`config_digest`;
* training data: :class:`TensorBatches` (resumable random mini-batches of aligned tensors);
* heads: :class:`Classifier`, a head with the ``step_loss`` protocol of
  :func:`~niso_geom.niso.autoencoder.pretrain` (cross-entropy, accuracy logged);
* results: :func:`write_json` (atomic), :func:`aggregate` (mean ± standard error over seeds in the
  ``results.json`` layout), :func:`pct` and :func:`markdown_table`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from niso_geom.runio import write_json

__all__ = [
    "Classifier",
    "TensorBatches",
    "aggregate",
    "coerce_field",
    "config_digest",
    "finished_result",
    "make_config",
    "markdown_table",
    "pct",
    "standard_error",
    "write_json",
]

C = TypeVar("C")


# --------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------


# int fields used as divisors (``step % every``) by every experiment: 0 or less is refused
DIVISOR_FIELDS = ("checkpoint_every", "log_every")


def coerce_field(field: dataclasses.Field, value: Any) -> Any:
    """Parse a string override for ``field`` by its type hint (int, float, bool, str, ``X | None``,
    ``tuple[int, ...]``, ``Literal[...]``); non-strings pass through, unknown types stay strings.

    A value that does not parse, a NaN or infinite float, a divisor field
    (:data:`DIVISOR_FIELDS`) below 1 or a negative learning rate (a field named ``lr``,
    ``*_lr``, ``lr_*`` or ``*_lr_*``) raises ValueError naming the key and the value.
    """
    raw = value
    if isinstance(value, str):
        hint = field.type
        if isinstance(hint, str):  # postponed annotations: resolve with the names a config field may use
            holder = type("_Hint", (), {"__annotations__": {"x": hint}})
            try:
                hint = typing.get_type_hints(holder, globalns=dict(vars(typing)))["x"]
            except (NameError, TypeError, SyntaxError):
                return value  # a type no override string can spell (e.g. an array): keep the text
        value = _parse_as(hint, value.strip(), field.name, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name}={raw!r}: must be a finite number")
    if field.name in DIVISOR_FIELDS and isinstance(value, int) and not isinstance(value, bool) and value < 1:
        raise ValueError(f"{field.name}={value}: must be ≥ 1 (a number of steps)")
    if "lr" in field.name.split("_") and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"{field.name}={raw!r}: a learning rate (or its scale) must be ≥ 0")
    return value


_NONE_WORDS = ("none", "null", "")
_TRUE_WORDS, _FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or None" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return "comma-separated integers" if args and args[0] is int else "comma-separated values"
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number"}.get(hint, "a value")


def _parse_as(hint: Any, text: str, name: str, raw: str) -> Any:
    """``text`` as a value of type ``hint``; ValueError ``name='raw': expected ...`` otherwise."""
    try:
        return _parse(hint, text)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected {_describe(hint)}") from None


def _parse(hint: Any, text: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE_WORDS:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(arg, text)
            except ValueError:
                continue
        raise ValueError(text)
    if origin is typing.Literal:
        for option in args:
            if str(option) == text:
                return option
        raise ValueError(text)
    if origin is tuple:
        items = [v for v in text.replace("(", "").replace(")", "").split(",") if v.strip()]
        kinds = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(items):
            raise ValueError(text)
        return tuple(_parse(k, v.strip()) for k, v in zip(kinds, items))
    if hint is bool:
        if text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise ValueError(text)
    if hint in (int, float):
        return hint(text)
    return text


def make_config(presets: Mapping[str, C], name: str, overrides: Mapping[str, Any]) -> C:
    """``presets[name]`` with ``overrides`` (strings parsed by field type; unknown keys raise)."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(presets)}")
    base = presets[name]
    fields = {f.name: f for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {sorted(fields)}")
    parsed = {k: coerce_field(fields[k], v) for k, v in overrides.items()}
    return dataclasses.replace(base, **parsed)  # type: ignore[type-var]


def config_digest(cfg: Any, ignore: Iterable[str] = ()) -> str:
    """A short hash of a dataclass config's fields, leaving out ``ignore`` (bookkeeping fields)."""
    skip = set(ignore)
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# training data and heads
# --------------------------------------------------------------------------------------------


class TensorBatches:
    """Resumable random mini-batches (with replacement) of aligned tensors."""

    def __init__(self, *tensors: torch.Tensor, batch: int, seed: int = 0) -> None:
        if not tensors or len({len(t) for t in tensors}) != 1:
            raise ValueError("need one or more tensors of equal length")
        self.tensors, self.batch = tensors, int(batch)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))

    def __call__(self) -> tuple[torch.Tensor, ...]:
        idx = torch.from_numpy(self.rng.integers(0, len(self.tensors[0]), self.batch))
        return tuple(t[idx] for t in self.tensors)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class Classifier(nn.Module):
    """A head with the ``step_loss`` protocol of :func:`~niso_geom.niso.autoencoder.pretrain`.

    ``step_loss((inputs, labels))`` returns the mean cross-entropy of ``head(inputs)`` and the
    batch accuracy (logged, not differentiated). ``forward`` returns the logits.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def step_loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        features, labels = batch
        logits = self.head(features)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        return {"loss": loss, "acc": acc.detach()}


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def aggregate(records: Sequence[Mapping[str, Any]], methods: Sequence[str], num_classes: int) -> dict[str, Any]:
    """``{"num_classes": n, "methods": {m: {accuracy_mean, accuracy_se, seeds, wall_seconds}}}``.

    Accuracies are fractions; ``accuracy_se`` is the standard error of the mean over seeds
    (sample std / sqrt(n); null for a single seed); ``seeds`` the list of seeds; ``wall_seconds``
    the total over seeds. Methods without records are left out.
    """
    out: dict[str, Any] = {"num_classes": int(num_classes), "methods": {}}
    for m in methods:
        rs = sorted((r for r in records if r["method"] == m), key=lambda r: r["seed"])
        if not rs:
            continue
        accs = np.array([r["accuracy"] for r in rs], dtype=np.float64)
        se = standard_error(accs)
        out["methods"][m] = {
            "accuracy_mean": float(accs.mean()),
            "accuracy_se": se,
            "seeds": [int(r["seed"]) for r in rs],
            "wall_seconds": float(sum(r["wall_seconds"] for r in rs)),
        }
    return out


def standard_error(values: Sequence[float] | np.ndarray) -> float | None:
    """Standard error of the mean, ``std(ddof=1) / sqrt(n)``; None for fewer than two values."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None


def pct(mean: float | None, se: float | None) -> str:
    """A fraction as ``"12.34 ± 0.56"`` percent (``"—"`` for None; no ± without a standard error)."""
    if mean is None:
        return "—"
    return f"{100 * mean:.2f}" + (f" ± {100 * se:.2f}" if se is not None else "")


def markdown_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def finished_result(path: Path, digest: str) -> dict[str, Any] | None:
    """The record in ``path`` (a method's ``result.json``) if it exists, reads and was made with the
    config ``digest``; None otherwise (the method then runs, or resumes from its checkpoints)."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("config_digest") == digest else None
