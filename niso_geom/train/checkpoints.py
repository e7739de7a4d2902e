"""Resumable, atomic, self-verifying checkpoints (and the RNG states they carry).

A checkpoint holds the model, optimizer and scheduler states, the global and named
RNG states and anything else the run adds (``extra``), so that a resumed run continues the same
loss curve. The file is written atomically (:mod:`niso_geom.runio`) and carries the SHA-256 of
its body: :func:`load_checkpoint` refuses a file whose body does not match (a flipped bit, a
truncation) with :class:`CorruptCheckpointError`, and :func:`load_latest_intact` falls back to
the newest intact checkpoint of a folder with a warning naming the bad one. Content is
``torch.load(weights_only=True)`` compatible: tensors, Python scalars, strings, bytes, lists,
tuples and dicts only — loading a checkpoint never runs code.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from niso_geom.errors import NisoGeomError
from niso_geom.runio import write_bytes

log = logging.getLogger(__name__)

__all__ = [
    "CorruptCheckpointError",
    "LoadedCheckpoint",
    "checkpoint_name",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_intact",
    "prune_checkpoints",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = 2  # 2: {"format", "sha256", "body"} around the format-1 payload
_NAME = re.compile(r"step_(\d+)\.pt")


class CorruptCheckpointError(NisoGeomError, ValueError):
    """A checkpoint file cannot be read or does not match its checksum."""


# --------------------------------------------------------------------------------------------
# RNG state
# --------------------------------------------------------------------------------------------


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The global RNG states (Python, NumPy, torch CPU and CUDA) plus named generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only if the device count matches)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
        else:
            log.warning("checkpoint has %d CUDA RNG states, this machine %d devices: not restored",
                        len(cuda), torch.cuda.device_count())
    saved = state.get("generators") or {}
    for key, gen in (generators or {}).items():
        if key not in saved:
            raise KeyError(f"checkpoint has no state for generator {key!r} (has {sorted(saved)})")
        gen.set_state(saved[key].cpu())


# --------------------------------------------------------------------------------------------
# checkpoint files
# --------------------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """``step_000001234.pt``: names that sort by step."""
    return f"step_{step:09d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The ``step_*.pt`` files of ``directory``, oldest step first (empty if it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The ``step_*.pt`` file with the highest step in ``directory``, or None."""
    files = list_checkpoints(directory)
    return files[-1] if files else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` latest ``step_*.pt`` files of ``directory`` (keep ≤ 0 keeps them all)."""
    files = list_checkpoints(directory)
    for p in files[:-keep] if keep > 0 else []:
        try:
            p.unlink()
        except OSError as exc:
            log.warning("could not remove old checkpoint %s: %s", p, exc)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, step: int = 0, extra: Mapping[str, Any] | None = None, *,
                    generators: Mapping[str, torch.Generator] | None = None) -> Path:
    """Write a resumable checkpoint atomically, with the SHA-256 of its body.

    Parameters
    ----------
    path : destination file; its folder is created.
    model, optimizer, scheduler : saved through their ``state_dict()``.
    step : the number of completed steps.
    extra : anything else (weights_only-loadable types: tensors, numbers, strings, containers).
    generators : named ``torch.Generator`` objects whose states are saved (e.g. the data RNG).
    """
    payload = {
        "format": 1,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(generators),
        "extra": dict(extra) if extra is not None else {},
    }
    inner = io.BytesIO()
    torch.save(payload, inner)
    body = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(body).hexdigest(), "body": body}, outer)
    path = write_bytes(path, outer.getvalue())
    log.debug("saved checkpoint %s (step %d)", path, step)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """The verified content of a checkpoint file (``step``, ``model``, ``optimizer``, ``scheduler``,
    ``rng``, ``extra``, ...) without restoring anything; :class:`CorruptCheckpointError` if damaged."""
    return _read_payload(Path(path), map_location)


def _read_payload(path: Path, map_location: str | torch.device | None) -> dict[str, Any]:
    try:
        outer = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, garbage, a foreign pickle: all unreadable
        raise CorruptCheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(outer, dict):
        raise CorruptCheckpointError(f"{path}: not a niso_geom checkpoint")
    fmt = outer.get("format")
    if fmt == 1:  # written before checksums: readable, not verifiable
        log.warning("%s: checkpoint written without a checksum (format 1); loading it unverified", path)
        return outer
    if fmt != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(f"{path}: unknown checkpoint format {fmt!r}")
    body = outer.get("body")
    if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != outer.get("sha256"):
        raise CorruptCheckpointError(f"{path}: checksum mismatch (the file was modified or damaged)")
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CorruptCheckpointError(f"{path}: unreadable checkpoint body ({type(exc).__name__}: {exc})") from exc


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns besides restoring state in place."""

    step: int
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, *, generators: Mapping[str, torch.Generator] | None = None,
                    restore_rng: bool = True,
                    map_location: str | torch.device | None = None, strict: bool = True) -> LoadedCheckpoint:
    """Verify and restore a checkpoint written by :func:`save_checkpoint` in place.

    Model, optimizer, scheduler and (if ``restore_rng``) the global and named RNG
    states are restored, so that continuing reproduces an uninterrupted run. The file is checked
    against its checksum first: a damaged one raises :class:`CorruptCheckpointError` and restores
    nothing.
    """
    path = Path(path)
    payload = _read_payload(path, map_location)
    model.load_state_dict(payload["model"], strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if payload[name] is None:
            raise CorruptCheckpointError(f"{path}: checkpoint has no {name} state")
        obj.load_state_dict(payload[name])
    if restore_rng:
        set_rng_state(payload["rng"], generators)
    return LoadedCheckpoint(step=int(payload["step"]), extra=dict(payload["extra"]), path=path)


def load_latest_intact(directory: str | os.PathLike, model: nn.Module, *args: Any, **kwargs: Any
                       ) -> LoadedCheckpoint | None:
    """:func:`load_checkpoint` of the newest checkpoint of ``directory`` that verifies; each damaged
    newer one is named in a warning and skipped (left in place for inspection). None when the
    folder holds no checkpoint; :class:`CorruptCheckpointError` when it holds only damaged ones."""
    files = list_checkpoints(directory)
    bad = []
    for path in reversed(files):
        try:  # the checksum is verified before anything is restored
            return load_checkpoint(path, model, *args, **kwargs)
        except CorruptCheckpointError as exc:
            log.warning("skipping damaged checkpoint: %s", exc)
            bad.append(path.name)
    if bad:
        raise CorruptCheckpointError(f"{directory}: every checkpoint is damaged ({', '.join(bad)}); "
                                     "start over with --no-resume or a new --out")
    return None
