"""Content-addressed disk cache for expensive arrays (mesh eigenbases, dataset tensors).

Keys hash a schema version, a kind, the sorted parameters and, for every input
array, its dtype, shape and bytes. Entries are ``.npz`` files written atomically
(temp file + ``os.replace``) with a sha256 of their payload stored beside the
arrays, and read with ``allow_pickle=False``; a truncated or corrupted entry is
detected, removed and reported as a miss so the caller recomputes it.

Location: the ``root`` argument, else ``$NISO_GEOM_CACHE_DIR``, else the user
cache directory (``platformdirs``). Never inside the package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ENV_VAR = "NISO_GEOM_CACHE_DIR"
_CHECK = "__sha256__"


def default_cache_dir() -> Path:
    """``$NISO_GEOM_CACHE_DIR`` if set, else the platform's user cache directory."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    import platformdirs

    return Path(platformdirs.user_cache_dir("niso_geom"))


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cache parameter of type {type(value).__name__} is not hashable: {value!r}")


def content_key(kind: str, params: Mapping[str, Any] | None = None, arrays: Mapping[str, np.ndarray] | None = None) -> str:
    """sha256 hex key over schema, kind, parameters and arrays (dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps({"schema": SCHEMA_VERSION, "kind": kind, "params": _canonical(params or {})},
                        sort_keys=True).encode())
    for name in sorted(arrays or {}):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _payload_digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class DiskCache:
    """An on-disk store of named arrays under content keys.

    >>> import tempfile, numpy as np
    >>> c = DiskCache(tempfile.mkdtemp())
    >>> key = content_key("demo", {"k": 3})
    >>> c.get(key) is None
    True
    >>> c.put(key, {"x": np.arange(3.0)})["x"].tolist()
    [0.0, 1.0, 2.0]
    >>> c.get(key)["x"].tolist()
    [0.0, 1.0, 2.0]
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        pkg = Path(__file__).resolve().parent
        if pkg == self.root.resolve() or pkg in self.root.resolve().parents:
            raise ValueError(f"refusing to put the cache inside the package: {self.root}")

    def path(self, key: str, namespace: str = "arrays") -> Path:
        return self.root / namespace / key[:2] / f"{key}.npz"

    def get(self, key: str, namespace: str = "arrays") -> dict[str, np.ndarray] | None:
        """Return the stored arrays, or None on a miss or a damaged entry (which is removed)."""
        path = self.path(key, namespace)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored = str(arrays.pop(_CHECK))
            if stored != _payload_digest(arrays):
                raise ValueError("payload checksum mismatch")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            log.warning("cache entry %s is damaged (%s); recomputing", path, exc)
            path.unlink(missing_ok=True)
            return None
        log.debug("cache hit %s", path)
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray], namespace: str = "arrays") -> dict[str, np.ndarray]:
        """Store ``arrays`` atomically under ``key`` and return them."""
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        path = self.path(key, namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays, **{_CHECK: np.array(_payload_digest(arrays))})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return arrays

    def get_or_compute(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]],
                       namespace: str = "arrays") -> dict[str, np.ndarray]:
        hit = self.get(key, namespace)
        return hit if hit is not None else self.put(key, compute(), namespace)

    def info(self) -> dict[str, Any]:
        """Entry count and bytes per namespace."""
        out: dict[str, Any] = {"root": str(self.root), "namespaces": {}}
        if self.root.is_dir():
            for ns in sorted(p for p in self.root.iterdir() if p.is_dir()):
                files = [f for f in ns.rglob("*") if f.is_file()]
                out["namespaces"][ns.name] = {"entries": len(files), "bytes": sum(f.stat().st_size for f in files)}
        return out

    def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (or one namespace); return the number of files removed."""
        target = self.root / namespace if namespace else self.root
        if not target.exists():
            return 0
        n = sum(1 for f in target.rglob("*") if f.is_file())
        shutil.rmtree(target)
        return n
