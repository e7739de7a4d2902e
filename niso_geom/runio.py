"""Run I/O: every file a run writes goes through here, atomically.

A file is first written to a temporary name in its destination folder, flushed and synced, and
then renamed over the destination (``os.replace``), so a reader never sees half a file and a
crash never destroys the previous version. Temporary names start with ``.tmp-`` so that folder
listings, caches and resume logic can recognise (and clean) leftovers of a killed process.

* :func:`atomic_write` — a context manager yielding a binary or text file object;
* :func:`write_bytes`, :func:`write_text`, :func:`write_json` — whole files;
* :func:`append_jsonl`, :func:`read_jsonl`, :func:`truncate_jsonl` — ``metrics.jsonl`` records;
* :func:`to_jsonable` — NumPy arrays / scalars and paths to plain JSON types.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "TMP_PREFIX",
    "append_jsonl",
    "atomic_write",
    "read_jsonl",
    "same_file",
    "to_jsonable",
    "truncate_jsonl",
    "write_bytes",
    "write_json",
    "write_text",
]

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` (``mode`` ``"w"`` or ``"wb"``); on a clean exit it
    replaces ``path``, on an exception it is removed and ``path`` is left as it was.

    The destination folder is created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file: equal once resolved (symlinks, ``..``), or the same
    inode (hard links); False when either cannot be checked."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """``json.dump``'s ``default``: NumPy arrays and scalars, paths, tuples-as-lists."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
               default: Callable[[Any], Any] = to_jsonable) -> Path:
    """Write ``obj`` as JSON (NumPy values converted) to ``path`` atomically, with a final newline."""
    text = json.dumps(obj, indent=indent, default=default)
    return write_text(path, text + "\n")


def _finite_or_str(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf: keep the record valid and the value visible
    return value


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any], *, file: IO[str] | None = None) -> None:
    """Append one record as a JSON line (to ``file`` when given, an already open handle on ``path``).

    Non-finite floats are written as the strings ``'nan'`` / ``'inf'`` so the line stays valid JSON.
    """
    line = json.dumps({k: _finite_or_str(v) for k, v in record.items()}, default=to_jsonable) + "\n"
    if file is not None:
        file.write(line)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every well-formed record of a JSON-lines file (a torn last line of a killed run is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def truncate_jsonl(path: str | os.PathLike, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite a JSON-lines file atomically with only the records for which ``keep`` is true
    (e.g. those up to the step a run resumes from); a missing file stays missing."""
    path = Path(path)
    if not path.exists():
        return
    kept = [rec for rec in read_jsonl(path) if keep(rec)]
    write_text(path, "".join(json.dumps(rec) + "\n" for rec in kept))
