"""Content-addressed disk cache for expensive arrays (mesh eigenbases, dataset tensors).

Keys hash a schema version, a kind, the sorted parameters and, for every input
array, its dtype, shape and bytes. Entries are ``.npz`` files written atomically
(:func:`niso_geom.runio.atomic_write`) with a sha256 of their payload stored beside the
arrays, and read with ``allow_pickle=False``.

The cache is best effort: it never costs a result.

* Reading: any failure to read an entry (truncated, corrupted, unreadable, a folder where
  a file should be, ...) is a miss; the damaged entry is removed and the caller recomputes.
* Writing: any failure (read-only folder, disk full, the cache path is a file, ...) is a
  logged warning; :meth:`DiskCache.put` still returns the arrays.
* Temporary files (``runio.TMP_PREFIX``) of a killed writer are removed once older than
  :data:`STALE_TMP_SECONDS`, and are never counted as entries.

Destructive operations touch only what the cache recognises as its own, under its root:

* array entries ``<root>/<namespace>/<key[:2]>/<key>.npz`` (key: 64 hex digits) and their
  ``<key>.manifest.json`` sidecars;
* dataset folders ``<root>/<namespace>/<H>x<W>_t<T>_s<seed>_v<version>_<12 hex>/``
  (cSHREC'11) holding ``manifest.json`` and ``meshes/<name>.{npy,npz,json}``;
* the cache's own temporary files.

Anything else in the cache folder (a user's file, a folder of their own) is left alone
and reported by :meth:`DiskCache.info`. Namespaces are plain names (letters, digits,
``_``, ``-``): ``..``, absolute paths and separators raise :class:`~niso_geom.errors.CacheError`.

Location: the ``root`` argument, else ``$NISO_GEOM_CACHE_DIR``, else the user cache
directory (``platformdirs``). Never inside the package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom.errors import CacheError
from niso_geom.runio import TMP_PREFIX, atomic_write

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ENV_VAR = "NISO_GEOM_CACHE_DIR"
STALE_TMP_SECONDS = 15 * 60  # a temp file untouched this long belongs to a killed writer
_CHECK = "__sha256__"
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_KEY = re.compile(r"[0-9a-f]{64}")
_ENTRY_FILE = re.compile(r"([0-9a-f]{64})(\.npz|\.manifest\.json)")
_DATASET_FOLDER = re.compile(r"\d+x\d+_t\d+_s-?\d+_v\d+_[0-9a-f]{12}")
_DATASET_TOP = re.compile(r"manifest\.json")
_DATASET_MESH = re.compile(r"[\w.+-]+\.(npy|npz|json)")


def default_cache_dir() -> Path:
    """``$NISO_GEOM_CACHE_DIR`` if set, else the platform's user cache directory."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    import platformdirs  # only needed when no cache folder is given

    return Path(platformdirs.user_cache_dir("niso_geom"))


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a plain name, else raise :class:`CacheError`."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise CacheError(
            f"cache namespace {namespace!r} is not a plain name (letters, digits, '_' and '-', no '..',"
            " separators or absolute paths); refusing to reach outside the cache root"
        )
    return namespace


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


def _is_tmp(path: Path) -> bool:
    return path.name.startswith(TMP_PREFIX)


def _is_stale(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > STALE_TMP_SECONDS
    except OSError:
        return False


def _plain_files(folder: Path) -> Iterator[Path]:
    """Regular files directly in ``folder`` (symlinks and unreadable folders skipped)."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return
    for p in children:
        if not p.is_symlink() and p.is_file():
            yield p


def _plain_dirs(folder: Path) -> Iterator[Path]:
    """Real (not symlinked) sub-folders of ``folder``."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return
    for p in children:
        if not p.is_symlink() and p.is_dir():
            yield p


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
        """Where the entry ``key`` of ``namespace`` lives (``<root>/<namespace>/<key[:2]>/<key>.npz``)."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise CacheError(f"cache key must be 64 lowercase hex digits (see content_key), got {key!r}")
        return self.root / check_namespace(namespace) / key[:2] / f"{key}.npz"

    # ------------------------------------------------------------------ reading and writing
    def get(self, key: str, namespace: str = "arrays") -> dict[str, np.ndarray] | None:
        """Return the stored arrays, or None on a miss or a damaged entry (which is removed)."""
        path = self.path(key, namespace)
        try:
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored = str(arrays.pop(_CHECK))
            if stored != _payload_digest(arrays):
                raise ValueError("payload checksum mismatch")
        except Exception as exc:  # noqa: BLE001  any failure to read is a miss: zip, npy, OS, ...
            log.warning("cache entry %s cannot be read (%s: %s); removing it and recomputing",
                        path, type(exc).__name__, exc)
            self._remove_quietly(path)
            return None
        log.debug("cache hit %s", path)
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray], namespace: str = "arrays") -> dict[str, np.ndarray]:
        """Store ``arrays`` atomically under ``key`` and return them.

        A failure to write (read-only folder, full disk, a file where a folder should be, ...)
        is a logged warning, not an error: the arrays are returned all the same.
        """
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        path = self.path(key, namespace)
        try:
            self._clean_stale_tmp(path.parent)
            with atomic_write(path, "wb", fsync=False) as f:
                np.savez(f, **arrays, **{_CHECK: np.array(_payload_digest(arrays))})
        except Exception as exc:  # noqa: BLE001  best effort: the caller keeps its result
            log.warning("could not write cache entry %s (%s: %s); the result is used but not cached",
                        path, type(exc).__name__, exc)
        return arrays

    def get_or_compute(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]],
                       namespace: str = "arrays") -> dict[str, np.ndarray]:
        hit = self.get(key, namespace)
        return hit if hit is not None else self.put(key, compute(), namespace)

    # ------------------------------------------------------------------ what the cache owns
    def _namespaces(self, namespace: str | None) -> list[Path]:
        if namespace is not None:
            folder = self.root / check_namespace(namespace)
            return [folder] if folder.is_dir() and not folder.is_symlink() else []
        return [p for p in _plain_dirs(self.root) if _NAMESPACE.fullmatch(p.name)] if self.root.is_dir() else []

    def _owned(self, ns: Path) -> Iterator[tuple[str, Path]]:
        """``(kind, path)`` for every file of namespace folder ``ns`` the cache recognises.

        kind: "entry" (an array entry), "sidecar" (its manifest), "dataset" (a file of a
        dataset folder; its ``manifest.json`` is yielded as "dataset-root"), "tmp" (a temp file).
        """
        for sub in _plain_dirs(ns):
            if re.fullmatch(r"[0-9a-f]{2}", sub.name):
                for f in _plain_files(sub):
                    m = _ENTRY_FILE.fullmatch(f.name)
                    if m and m.group(1)[:2] == sub.name:
                        yield ("entry" if m.group(2) == ".npz" else "sidecar"), f
                    elif _is_tmp(f):
                        yield "tmp", f
            elif _DATASET_FOLDER.fullmatch(sub.name):
                for f in _plain_files(sub):
                    if _DATASET_TOP.fullmatch(f.name):
                        yield "dataset-root", f
                    elif _is_tmp(f):
                        yield "tmp", f
                meshes = sub / "meshes"
                if meshes.is_dir() and not meshes.is_symlink():
                    for f in _plain_files(meshes):
                        if _is_tmp(f):
                            yield "tmp", f
                        elif _DATASET_MESH.fullmatch(f.name):
                            yield "dataset", f

    def _foreign(self, limit: int = 1000) -> list[Path]:
        """Up to ``limit`` files in the root or its namespace folders that the cache does not own (left alone)."""
        if not self.root.is_dir():
            return []
        out = [p for p in _plain_files(self.root)]
        for ns in self._namespaces(None):
            owned = {p for _, p in self._owned(ns)}
            for dirpath, _dirs, files in os.walk(ns):  # does not follow symlinked folders
                out.extend(p for p in (Path(dirpath) / f for f in files) if p not in owned)
                if len(out) >= limit:
                    return sorted(out)[:limit]
        return sorted(out)

    def info(self) -> dict[str, Any]:
        """Entries, bytes and temp files per namespace, and (up to 1000 of) the files the cache does not own.

        An entry is an array entry or a dataset folder; temp files are never entries.
        """
        out: dict[str, Any] = {"root": str(self.root), "namespaces": {}, "foreign_files": []}
        now = time.time()
        for ns in self._namespaces(None):
            entries, size, tmp, stale = 0, 0, 0, 0
            for kind, f in self._owned(ns):
                if kind == "tmp":
                    tmp += 1
                    stale += _is_stale(f, now)
                    continue
                entries += kind in ("entry", "dataset-root")
                with contextlib.suppress(OSError):
                    size += f.stat().st_size
            if entries or tmp:
                out["namespaces"][ns.name] = {"entries": entries, "bytes": size, "temp_files": tmp,
                                              "stale_temp_files": stale}
        out["foreign_files"] = [str(p) for p in self._foreign()]
        return out

    def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (or one namespace's) and stale temp files; return the number of files removed.

        Only files the cache recognises are removed (see the module docstring), then the
        folders they leave empty; the root itself, and anything else, stays.
        """
        removed = 0
        now = time.time()
        for ns in self._namespaces(namespace):
            touched: set[Path] = set()
            for kind, f in list(self._owned(ns)):
                if kind == "tmp" and not _is_stale(f, now):
                    continue  # a writer may be working on it right now
                if self._remove_quietly(f):
                    removed += 1
                    touched.add(f.parent)
            for folder in sorted(touched, key=lambda p: len(p.parts), reverse=True):
                self._prune_empty(folder, stop=ns)
            with contextlib.suppress(OSError):
                ns.rmdir()  # only if now empty
        return removed

    # ------------------------------------------------------------------ helpers
    def _clean_stale_tmp(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        now = time.time()
        for f in _plain_files(folder):
            if _is_tmp(f) and _is_stale(f, now):
                self._remove_quietly(f)

    @staticmethod
    def _remove_quietly(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("could not remove %s (%s)", path, exc)
            return False

    @staticmethod
    def _prune_empty(folder: Path, stop: Path) -> None:
        """Remove ``folder`` and its parents while empty, up to (not including) ``stop``."""
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent
