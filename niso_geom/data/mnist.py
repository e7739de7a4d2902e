"""MNIST digits as NumPy arrays: the shared gzip'd pickle, the standard IDX files, and padding.

Two sources, one output format: images (N, 784) float32 in [0, 1] (row-major 28×28) and labels
(N,) int64.

* :func:`load_mnist` reads ``mnist/mnist.pkl.gz`` from the shared data root (located and
  sha256-verified by :func:`niso_geom.shared_data.data_file`) with a restricted unpickler
  (:class:`ArraysOnlyUnpickler`): the only globals it resolves are the three NumPy names a
  pickled array needs (``_reconstruct``, ``ndarray``, ``dtype``; and ``_codecs.encode`` for bytes), so a replaced file carrying a
  ``__reduce__`` payload is refused before any of its code runs (a matching checksum is no
  protection when the file and ``SHA256SUMS`` sit in the same writable folder). The result must
  be three (images, labels) pairs of numeric arrays. Splits: ``"train"`` (50,000),
  ``"valid"`` (10,000, the last 10,000 digits of the original training set), ``"test"`` (10,000)
  and ``"train+valid"`` (the full 60,000-digit training set that tfds and the NIso code use).
  The pickle stores intensities k/256 for integer k ∈ [0, 255] (maximum 0.99609375).
* :func:`load_mnist_idx` reads ``train-images-idx3-ubyte`` etc. (optionally ``.gz``, also the
  ``train-images.idx3-ubyte`` spelling) from a folder of your own; intensities are k/255. If the
  folder holds a ``SHA256SUMS`` file, each file is verified against it.

Both accept ``as_uint8=True`` to get the raw integer intensities (N, 784) uint8, identical for
the two sources. Loaded arrays are cached in memory per file and returned read-only.
"""

from __future__ import annotations

import gzip
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from niso_geom.errors import DataError
from niso_geom.shared_data import data_file

__all__ = ["MNIST_PICKLE", "SPLITS", "load_mnist", "load_mnist_idx", "pad_images"]

#: Path of the MNIST pickle relative to the shared data root.
MNIST_PICKLE = "mnist/mnist.pkl.gz"
#: Split names accepted by :func:`load_mnist`.
SPLITS = ("train", "valid", "test", "train+valid")

_IDX_STEMS = {
    "train": ("train-images", "train-labels"),
    "test": ("t10k-images", "t10k-labels"),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds NumPy arrays and nothing else.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``
    naming it, before it is called. Allowed: ``numpy.core.multiarray._reconstruct`` (also its
    NumPy 2 home ``numpy._core.multiarray``), ``numpy.ndarray``, ``numpy.dtype`` and
    ``_codecs.encode`` (text to bytes); arrays of ``object`` dtype are refused by the caller.
    """

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                         ("numpy", "ndarray"), ("numpy", "dtype"),
                         ("_codecs", "encode")})  # how Python 3 writes bytes at protocol 2: str -> bytes

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays may be unpickled")
        return super().find_class(module, name)


def _numeric(a, what: str, path: Path) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        raise DataError(f"{path}: {what} is not a numeric array ({type(a).__name__}"
                        f"{', dtype ' + str(a.dtype) if isinstance(a, np.ndarray) else ''})")
    return a


@lru_cache(maxsize=2)
def _read_pickle(path: Path, mtime: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        with gzip.open(path, "rb") as f:
            parts = ArraysOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise DataError(f"cannot read the MNIST pickle {path}: {exc}") from exc
    if not isinstance(parts, (tuple, list)) or len(parts) != 3:
        raise DataError(f"{path}: expected (train, valid, test) pairs of arrays, got {type(parts).__name__}")
    out = {}
    for name, part in zip(("train", "valid", "test"), parts):
        if not isinstance(part, (tuple, list)) or len(part) != 2:
            raise DataError(f"{path}: the {name} split is not an (images, labels) pair")
        x, y = _numeric(part[0], f"the {name} images", path), _numeric(part[1], f"the {name} labels", path)
        if x.size != 784 * len(x) or len(y) != len(x):
            raise DataError(f"{path}: the {name} split has images {x.shape} and labels {y.shape}; expected (N, 784), (N,)")
        x = np.asarray(x, dtype=np.float32).reshape(len(x), 784)
        out[name] = (_readonly(x), _readonly(np.asarray(y, dtype=np.int64).reshape(-1)))
    return out


def _to_uint8(x: np.ndarray, denom: float) -> np.ndarray:
    return _readonly(np.rint(x * denom).astype(np.uint8))


def load_mnist(split: str = "test", root: str | os.PathLike | None = None, *,
               as_uint8: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of the shared MNIST pickle.

    Parameters
    ----------
    split : one of :data:`SPLITS`.
    root : shared data root (``--data-root``); default ``$NISO_GEOM_DATA`` or ``../shared/data``.
    as_uint8 : return the integer intensities 0..255 instead of floats.

    Returns
    -------
    images : (N, 784) float32 in [0, 1] (k/256), or uint8 if ``as_uint8``; read-only.
    labels : (N,) int64; read-only.

    Raises
    ------
    DataError if the file is missing, fails its checksum or cannot be unpickled.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose one of {SPLITS}")
    path = data_file(MNIST_PICKLE, root)
    parts = _read_pickle(path, path.stat().st_mtime)
    if split == "train+valid":
        x = _readonly(np.concatenate([parts["train"][0], parts["valid"][0]]))
        y = _readonly(np.concatenate([parts["train"][1], parts["valid"][1]]))
    else:
        x, y = parts[split]
    return (_to_uint8(x, 256.0) if as_uint8 else x), y


def _find_idx(folder: Path, stem: str, kind: str) -> Path:
    names = [f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"]
    for name in names:
        for cand in (name, name + ".gz"):
            if (folder / cand).is_file():
                return folder / cand
    raise DataError(f"no {' or '.join(n + '[.gz]' for n in names)} in {folder}")


@lru_cache(maxsize=4)
def _read_idx(path: Path, mtime: float) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header + count:
        raise DataError(f"{path}: expected {count} data bytes for shape {dims}, "
                        f"found {len(raw) - header}")
    return _readonly(np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims))


def load_mnist_idx(folder: str | os.PathLike, split: str = "test", *,
                   as_uint8: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load the standard MNIST IDX files from ``folder``.

    Parameters
    ----------
    folder : directory holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
    split : ``"train"`` (60,000) or ``"test"`` (10,000).
    as_uint8 : return the integer intensities 0..255 instead of floats.

    Returns
    -------
    images : (N, 784) float32 in [0, 1] (k/255), or uint8 if ``as_uint8``.
    labels : (N,) int64.

    Raises
    ------
    DataError naming the file if one is missing, malformed, inconsistent, or fails the
    folder's ``SHA256SUMS`` (when there is one).
    """
    if split not in _IDX_STEMS:
        raise ValueError(f"IDX split must be 'train' or 'test', got {split!r}")
    base = Path(folder)
    if not base.is_dir():
        raise DataError(f"MNIST IDX folder {base} does not exist")
    verify = (base / "SHA256SUMS").is_file()
    img_stem, lab_stem = _IDX_STEMS[split]
    paths = []
    for stem, kind in ((img_stem, "idx3"), (lab_stem, "idx1")):
        p = _find_idx(base, stem, kind)
        paths.append(data_file(p.name, base, verify=verify))
    imgs = _read_idx(paths[0], paths[0].stat().st_mtime)
    labs = _read_idx(paths[1], paths[1].stat().st_mtime)
    if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
        raise DataError(f"{paths[0]}: expected images of shape (N, 28, 28), got {imgs.shape}")
    if labs.ndim != 1 or len(labs) != len(imgs):
        raise DataError(f"{paths[1]}: {labs.shape} labels for {len(imgs)} images in {paths[0]}")
    if labs.size and labs.max() > 9:
        raise DataError(f"{paths[1]}: label {int(labs.max())} is not a digit")
    flat = imgs.reshape(len(imgs), 784)
    x = flat if as_uint8 else _readonly(flat.astype(np.float32) / np.float32(255.0))
    return x, _readonly(labs.astype(np.int64))


def pad_images(x: np.ndarray, size: int = 40, offset: int | None = None,
               value: float = 0.0) -> np.ndarray:
    """Place 28×28 digits on a larger square canvas.

    Parameters
    ----------
    x : (N, 784), (N, 28, 28) or (N, 1, 28, 28) images.
    size : side of the output canvas (40 in NIso and homConv).
    offset : row and column of the digit's top-left pixel; default ``(size − 28) // 2``, i.e. 6
        for 40, the paper's ``pad_to_bounding_box(offset 6, 6)``.
    value : fill value of the border (0 for [0, 1] images, −1 after mapping to [−1, 1]).

    Returns
    -------
    (N, size, size) array of ``x``'s dtype.
    """
    x = np.asarray(x)
    n = x.shape[0]
    if x.shape[1:] in ((784,), (1, 28, 28)):
        x = x.reshape(n, 28, 28)
    if x.shape[1:] != (28, 28):
        raise ValueError(f"expected (N, 784), (N, 28, 28) or (N, 1, 28, 28) digits, got {x.shape}")
    off = (size - 28) // 2 if offset is None else int(offset)
    if off < 0 or off + 28 > size:
        raise ValueError(f"a 28x28 digit at offset {off} does not fit a {size}x{size} canvas")
    out = np.full((n, size, size), value, dtype=x.dtype)
    out[:, off:off + 28, off:off + 28] = x
    return out
