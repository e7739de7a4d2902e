"""Homography-perturbed MNIST: batched image warps, NIso pre-training pairs, the homNIST test set.

Conventions are those of :mod:`niso_geom.geometry.homography`: pixel (i, j) of an H×W image has
normalized coordinates p = [2i/(H−1) − 1, 2j/(W−1) − 1, 1] (row first), and a homography A acts
on images by pull-back, (T_A x)(p) = x(A p), so that warping by A then by B is one warp by A @ B.

* :func:`warp_images`: bilinear pull-back warp of a (B, C, H, W) batch. Points outside the image
  take the background value (the image is extended by it, so bilinear weights blend the border
  pixel towards the background); coordinates within ``snap`` pixels of a pixel centre are
  snapped to it, so the identity (and any warp mapping pixel centres to pixel centres) is
  reproduced exactly. Unlike the reference code (``docs/algorithm.md`` §7 item 20), the last
  row and column are interpolated like any other.
* :class:`HomographyPairSampler`: (x, T_A x, A) batches for NIso pre-training, A drawn by
  :func:`~niso_geom.geometry.homography.sample_homographies` (the reference's sampler).
* :func:`build_homnist`: the homNIST test set (10,000 MNIST test digits padded to 40×40, each
  warped by 32 random homographies from the homNIST Metropolis sampler), deterministic from a
  seed, cached through :class:`~niso_geom.cache.DiskCache` with a JSON manifest. Labels are
  (N,) int64 (the reference's (N, 1) labels are its §7 item 7 bug).
* :func:`load_homnist_mat`: read the original ``homNIST_test.mat`` into the same structure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from niso_geom.cache import DiskCache, content_key
from niso_geom.data.mnist import MNIST_PICKLE, load_mnist, load_mnist_idx, pad_images
from niso_geom.errors import DataError
from niso_geom.geometry.homography import (
    HOMCONV_SCALES,
    invert,
    sample_homographies,
    sample_homographies_metropolis,
)
from niso_geom.runio import write_text
from niso_geom.shared_data import file_sha256

log = logging.getLogger(__name__)

__all__ = [
    "HOMNIST_VERSION",
    "HomNISTTestSet",
    "HomographyPairSampler",
    "build_homnist",
    "load_homnist_mat",
    "warp_images",
]

#: Bumped whenever the builder's output for given parameters changes (it is part of the cache key).
HOMNIST_VERSION = 1
NAMESPACE = "homnist"
_SAMPLERS = ("metropolis", "gaussian")


# ----------------------------------------------------------------------------- warping


def _as_matrices(A: torch.Tensor | np.ndarray, batch: int, device: torch.device) -> torch.Tensor:
    A = torch.as_tensor(np.asarray(A) if not isinstance(A, torch.Tensor) else A)
    A = A.to(device=device, dtype=torch.float64)
    if A.shape == (3, 3):
        A = A.expand(batch, 3, 3)
    if A.shape != (batch, 3, 3):
        raise ValueError(f"homographies must have shape (3, 3) or ({batch}, 3, 3), "
                         f"got {tuple(A.shape)}")
    if not torch.isfinite(A).all():
        raise ValueError("homographies contain non-finite entries")
    return A


def _pixel_homography(A: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A in pixel units: [r·w, c·w, w] = A_pix [i, j, 1] (float64, (B, 3, 3))."""
    hr, hc = 0.5 * (height - 1), 0.5 * (width - 1)
    to_pix = torch.tensor([[hr, 0.0, hr], [0.0, hc, hc], [0.0, 0.0, 1.0]],
                          dtype=A.dtype, device=A.device)
    to_norm = torch.tensor([[1 / hr, 0.0, -1.0], [0.0, 1 / hc, -1.0], [0.0, 0.0, 1.0]],
                           dtype=A.dtype, device=A.device)
    return to_pix @ A @ to_norm


def _source_coords(A: torch.Tensor, height: int, width: int, snap: float, dtype: torch.dtype):
    """Pixel (row, col) coordinates, (B, H, W) each in ``dtype``, that every output pixel reads.

    Coordinates are clamped to [−1, H] × [−1, W] (anything beyond lies wholly in the background);
    points sent to infinity read the background too.
    """
    P = _pixel_homography(A, height, width).to(dtype)[:, :, :, None, None]  # (B, 3, 3, 1, 1)
    i = torch.arange(height, dtype=dtype, device=A.device)[:, None]
    j = torch.arange(width, dtype=dtype, device=A.device)[None, :]
    q = P[:, :, 0] * i + P[:, :, 1] * j + P[:, :, 2]  # (B, 3, H, W)
    inv_w = 1.0 / q[:, 2]
    out = []
    for k, n in ((0, height), (1, width)):
        t = torch.nan_to_num(q[:, k] * inv_w, nan=-1.0).clamp_(-1.0, float(n))
        if snap > 0:
            near = torch.round(t)
            t = torch.where((t - near).abs_() <= snap, near, t)
        out.append(t)
    return out[0], out[1]


def _background(x: torch.Tensor, background: float | str | torch.Tensor) -> torch.Tensor:
    B = x.shape[0]
    if isinstance(background, str):
        if background != "min":
            raise ValueError(f"background must be a number, 'min' or a tensor, got {background!r}")
        return x.detach().amin(dim=(1, 2, 3)).reshape(B, 1, 1, 1)
    if isinstance(background, torch.Tensor):
        return background.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1).expand(B, 1, 1, 1)
    return torch.full((B, 1, 1, 1), float(background), device=x.device, dtype=x.dtype)


def warp_images(x: torch.Tensor, A: torch.Tensor | np.ndarray,
                background: float | str | torch.Tensor = 0.0, *,
                snap: float = 1e-4) -> torch.Tensor:
    """Pull-back warp (T_A x)(p) = x(A p) with bilinear interpolation.

    Parameters
    ----------
    x : (B, C, H, W) images.
    A : (B, 3, 3) or (3, 3) homographies (tensor or array) in normalized coordinates.
    background : value outside the image: a float, ``"min"`` (each image's minimum, as in the
        NIso reference) or a (B,) tensor.
    snap : source coordinates within this many pixels of a pixel centre are snapped to it.

    Returns
    -------
    (B, C, H, W) tensor of ``x``'s dtype and device; differentiable with respect to ``x``.

    Notes
    -----
    Source coordinates are computed in float64 for float64 images and in float32 otherwise.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    B, C, H, W = x.shape
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    r, c = _source_coords(_as_matrices(A, B, x.device), H, W, snap, cdtype)
    # canvas: one background row/column before the image, two after, so that every corner of
    # a clamped coordinate in [-1, H] x [-1, W] has a valid index; quad[..., k, :] holds the
    # 2x2 neighbourhood whose top-left corner is canvas pixel k
    canvas = _background(x, background).expand(B, C, H + 3, W + 3).clone()
    canvas[:, :, 1:H + 1, 1:W + 1] = x
    quad = torch.stack([canvas[:, :, :-1, :-1], canvas[:, :, :-1, 1:],
                        canvas[:, :, 1:, :-1], canvas[:, :, 1:, 1:]], dim=-1).reshape(B, C, -1, 4)
    r0, c0 = torch.floor(r), torch.floor(c)
    fr = (r - r0).to(x.dtype).reshape(B, 1, -1)
    fc = (c - c0).to(x.dtype).reshape(B, 1, -1)
    idx = ((r0 + 1) * (W + 2) + (c0 + 1)).long().reshape(B, 1, -1, 1)
    v = quad.gather(2, idx.expand(B, C, H * W, 4))  # (B, C, H*W, 4)
    top = v[..., 0] * (1 - fc) + v[..., 1] * fc
    bottom = v[..., 2] * (1 - fc) + v[..., 3] * fc
    return (top * (1 - fr) + bottom * fr).reshape(B, C, H, W)


# ----------------------------------------------------------------------------- pre-training pairs


def _draw(method: str, n: int, rng: np.random.Generator, scale: float,
          scales: np.ndarray | None) -> np.ndarray:
    """(n, 3, 3) pull-back matrices from the named sampler."""
    if method == "gaussian":
        return sample_homographies(n, rng, scale, scales=scales)
    if method == "metropolis":
        # homConv warps by the pull-back of u^-1: store the pull-back matrix u^-1
        return invert(sample_homographies_metropolis(n, rng, scale, scales=scales))
    raise ValueError(f"unknown homography sampler {method!r}; choose one of {_SAMPLERS}")


class HomographyPairSampler:
    """Draw (x, T_A x, A) for NIso pre-training.

    Parameters
    ----------
    scale : global factor on the per-generator std (1.0 = the reference).
    scales : (8,) per-generator std; default :data:`~niso_geom.geometry.homography.HOMCONV_SCALES`.
    method : ``"gaussian"`` (the NIso reference's c ~ N(0, σ²)) or ``"metropolis"`` (the
        homNIST test-set distribution).
    background : out-of-image value for :func:`warp_images` (default ``"min"``, as the reference).
    rng : numpy Generator or seed; its state (``sampler.rng``) can be saved with a checkpoint.

    Examples
    --------
    >>> import torch
    >>> sampler = HomographyPairSampler(rng=0)
    >>> x, tx, A = sampler(torch.zeros(4, 1, 40, 40))
    >>> tuple(tx.shape), tuple(A.shape)
    ((4, 1, 40, 40), (4, 3, 3))
    """

    def __init__(self, scale: float = 1.0, *, scales: np.ndarray | None = None,
                 method: str = "gaussian", background: float | str = "min",
                 rng: np.random.Generator | int | None = None):
        if method not in _SAMPLERS:
            raise ValueError(f"unknown homography sampler {method!r}; choose one of {_SAMPLERS}")
        self.scale = float(scale)
        self.scales = None if scales is None else np.asarray(scales, dtype=np.float64)
        self.method = method
        self.background = background
        self.rng = np.random.default_rng(rng)

    def sample(self, n: int) -> np.ndarray:
        """(n, 3, 3) float64 pull-back homographies."""
        return _draw(self.method, n, self.rng, self.scale, self.scales)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> (x, T_A x (B, C, H, W), A (B, 3, 3) in x's dtype and device)."""
        A = self.sample(x.shape[0])
        tx = warp_images(x, A, self.background)
        return x, tx, torch.as_tensor(A, dtype=x.dtype, device=x.device)


# ----------------------------------------------------------------------------- homNIST test set


@dataclass(frozen=True, eq=False)
class HomNISTTestSet:
    """The homNIST test set as NumPy arrays, digit-major (row k = digit k // 32, warp k % 32).

    Attributes
    ----------
    images : (N, 40, 40) float32 in [0, 1], background 0.
    labels : (N,) int64.
    homographies : (N, 3, 3) float64 pull-back matrices: ``images[k](p) = digit(homographies[k] p)``.
    digit_index : (N,) int64 index of the source digit in the MNIST test set.
    manifest : the build manifest (parameters, counts, checksums).
    path : the cache file holding the arrays, or None.
    """

    images: np.ndarray
    labels: np.ndarray
    homographies: np.ndarray
    digit_index: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"images": self.images, "labels": self.labels,
                "homographies": self.homographies, "digit_index": self.digit_index}

    def torch_dataset(self, *, homographies: bool = False) -> torch.utils.data.TensorDataset:
        """A TensorDataset of (image (1, 40, 40) float32, label int64), sharing memory with the arrays;
        with ``homographies=True`` each item also carries its (3, 3) float64 pull-back homography
        (``image(p) = digit(H p)``). Works with ``DataLoader`` and ``DistributedSampler``."""
        images = torch.from_numpy(np.ascontiguousarray(self.images))[:, None]
        labels = torch.from_numpy(np.ascontiguousarray(self.labels))
        if homographies:
            return torch.utils.data.TensorDataset(images, labels,
                                                  torch.from_numpy(np.ascontiguousarray(self.homographies)))
        return torch.utils.data.TensorDataset(images, labels)


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(json.dumps([a.dtype.str, list(a.shape)]).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _write_manifest(path: Path, obj: dict[str, Any]) -> None:
    """The manifest beside a cache entry, best effort like the cache itself: a failed write is a
    warning and the built dataset is still returned."""
    try:
        write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        log.warning("could not write the homNIST manifest %s: %s", path, exc)


def _manifest(key: str, params: dict[str, Any], arrays: dict[str, np.ndarray], path: Path | None,
              root: Path | None) -> dict[str, Any]:
    labels = arrays["labels"]
    files = []
    if path is not None:
        files.append({"name": path.name, "path": str(path.relative_to(root)) if root else str(path),
                      "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return {
        "dataset": "homnist-test",
        "key": key,
        "params": params,
        "counts": {"digits": int(params["num_digits"]),
                   "homographies_per_digit": int(params["num_homographies"]),
                   "images": len(labels),
                   "per_label": {str(d): int(k)
                                 for d, k in enumerate(np.bincount(labels, minlength=10))}},
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": _digest(v)}
                   for k, v in sorted(arrays.items())},
        "files": files,
        "note": "arrays[*].sha256 hashes dtype, shape and bytes and is reproducible from the seed; "
                "files[*].sha256 checks this copy of the .npz (zip timestamps differ between "
                "builds).",
    }


def _load_digits(data_root: str | os.PathLike | None,
                 idx_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray, str]:
    if idx_dir is not None:
        x, y = load_mnist_idx(idx_dir, "test", as_uint8=True)
        return x, y, f"IDX t10k files in {idx_dir}"
    x, y = load_mnist("test", data_root, as_uint8=True)
    return x, y, MNIST_PICKLE


def _resolve_cache(cache: DiskCache | str | os.PathLike | None | bool) -> DiskCache | None:
    if cache is False:
        return None
    if cache is None or cache is True:
        return DiskCache()
    if isinstance(cache, DiskCache):
        return cache
    return DiskCache(cache)


def build_homnist(cache: DiskCache | str | os.PathLike | None | bool = None, seed: int = 0,
                  subset: int | None = None, progress: bool = True, *, indices: Sequence[int] | None = None,
                  data_root: str | os.PathLike | None = None,
                  idx_dir: str | os.PathLike | None = None,
                  num_homographies: int = 32, scale: float = 1.0, sampler: str = "metropolis",
                  chunk_digits: int = 32, threads: int | None = None) -> HomNISTTestSet:
    """Build (or load from the cache) the homNIST test set.

    Each of the first ``subset`` MNIST test digits (all 10,000 by default) is padded to 40×40
    (offset 6), its intensities set to k/255 (as in the original, built from affNIST's padded
    digits), and warped by ``num_homographies`` homographies. Digit i's homographies come from
    its own stream ``SeedSequence(seed, spawn_key=(i,))``, so a subset is exactly the prefix of
    the full set built with the same seed.

    Parameters
    ----------
    cache : a DiskCache, a cache root directory, None (the default cache directory) or False
        (build in memory, write nothing).
    seed : base seed.
    subset : number of test digits to use (a prefix of the test set); None for all.
    indices : instead of ``subset``, these MNIST test digits (distinct indices, in this order);
        each keeps its own homography stream, so its rows equal those of the full set.
    progress : show a tqdm progress bar.
    data_root : shared data root holding ``mnist/mnist.pkl.gz``.
    idx_dir : read the ``t10k-*`` IDX files from this folder instead of the shared pickle.
    num_homographies : homographies per digit (32 in the original).
    scale : global factor on :data:`~niso_geom.geometry.homography.HOMCONV_SCALES`.
    sampler : ``"metropolis"`` (the original homNIST distribution) or ``"gaussian"`` (NIso's
        pre-training distribution).
    chunk_digits : digits warped per batch (memory/speed trade-off; does not change the output).
    threads : torch intra-op threads while warping (restored afterwards); None keeps torch's
        setting. On a busy machine 1 is often several times faster than oversubscribed threads.

    Returns
    -------
    HomNISTTestSet with N = digits × num_homographies rows.
    """
    if sampler not in _SAMPLERS:
        raise ValueError(f"unknown homography sampler {sampler!r}; choose one of {_SAMPLERS}")
    digits, labels, source = _load_digits(data_root, idx_dir)
    if indices is not None:
        if subset is not None:
            raise ValueError("pass subset or indices, not both")
        ids = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(ids) == 0 or ids.min() < 0 or ids.max() >= len(digits) or len(np.unique(ids)) != len(ids):
            raise ValueError(f"indices must be distinct test digit indices in [0, {len(digits)}), got {len(ids)} "
                             f"values in [{ids.min() if len(ids) else '-'}, {ids.max() if len(ids) else '-'}]")
    else:
        n = len(digits) if subset is None else int(subset)
        if not 1 <= n <= len(digits):
            raise ValueError(f"subset must be between 1 and {len(digits)}, got {subset}")
        ids = np.arange(n, dtype=np.int64)
    n = len(ids)
    digits, labels = digits[ids], labels[ids]
    params = {"version": HOMNIST_VERSION, "seed": int(seed), "num_digits": n,
              "num_homographies": int(num_homographies), "size": 40, "offset": 6,
              "intensity": "uint8/255", "scale": float(scale), "scales": HOMCONV_SCALES.tolist(),
              "sampler": sampler, "source": source}
    if indices is not None:  # a prefix keeps the key it always had
        params["indices_sha256"] = hashlib.sha256(ids.tobytes()).hexdigest()
    key_params = {k: v for k, v in params.items() if k != "source"}
    key = content_key("homnist-test", key_params, {"digits": digits, "labels": labels})
    store = _resolve_cache(cache)
    if store is not None:
        hit = store.get(key, NAMESPACE)
        if hit is not None:
            path = store.path(key, NAMESPACE)
            mpath = path.with_suffix(".manifest.json")
            manifest = json.loads(mpath.read_text()) if mpath.is_file() else None
            if manifest is None:
                manifest = _manifest(key, params, hit, path, store.root)
                _write_manifest(mpath, manifest)
            return HomNISTTestSet(**hit, manifest=manifest, path=path)

    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        arrays = _compute(digits, labels, int(seed), int(num_homographies), float(scale), sampler,
                          int(chunk_digits), progress, ids)
    finally:
        torch.set_num_threads(saved)
    path = None
    if store is not None:
        arrays = store.put(key, arrays, NAMESPACE)
        path = store.path(key, NAMESPACE)
    manifest = _manifest(key, params, arrays, path, store.root if store else None)
    if path is not None:
        _write_manifest(path.with_suffix(".manifest.json"), manifest)
    return HomNISTTestSet(**arrays, manifest=manifest, path=path)


def _digit_rng(seed: int, digit: int) -> np.random.Generator:
    """The random stream of one digit: independent of the subset size and of chunking."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(digit,)))


def _compute(digits: np.ndarray, labels: np.ndarray, seed: int, per_digit: int, scale: float,
             sampler: str, chunk: int, progress: bool, ids: np.ndarray) -> dict[str, np.ndarray]:
    n = len(digits)
    total = n * per_digit
    images = np.empty((total, 40, 40), dtype=np.float32)
    homs = np.empty((total, 3, 3), dtype=np.float64)
    canvas = pad_images(digits, 40).astype(np.float32) / np.float32(255.0)
    with tqdm(total=n, desc="homNIST", unit="digit", disable=not progress) as bar:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            A = np.concatenate([_draw(sampler, per_digit, _digit_rng(seed, int(ids[i])), scale, None)
                                for i in range(start, stop)])
            src = torch.from_numpy(canvas[start:stop]).repeat_interleave(per_digit, dim=0)[:, None]
            with torch.no_grad():
                out = warp_images(src, A, 0.0)
            rows = slice(start * per_digit, stop * per_digit)
            images[rows] = out[:, 0].numpy()
            homs[rows] = A
            bar.update(stop - start)
    np.clip(images, 0.0, 1.0, out=images)
    return {"images": images, "labels": np.repeat(labels.astype(np.int64), per_digit),
            "homographies": homs, "digit_index": np.repeat(ids, per_digit)}


def load_homnist_mat(path: str | os.PathLike, per_digit: int = 32) -> HomNISTTestSet:
    """Read the original ``homNIST_test.mat`` (lemacdonald/equivariant-convolutions).

    Labels are flattened to (N,) int64 (``loadmat`` returns (N, 1): ``docs/algorithm.md`` §7
    item 7). The file stores the push-forward matrices u (``images[k](p) = digit(u⁻¹ p)``); they are
    inverted here to this module's pull-back convention. ``digit_index`` assumes the file's
    digit-major layout with ``per_digit`` warps per digit.
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
        images = np.asarray(mat["img_data"], dtype=np.float32)
        labels = np.asarray(mat["labels"]).reshape(-1)
        u = np.asarray(mat["hom_matrices"], dtype=np.float64).reshape(-1, 3, 3)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read homNIST .mat file {path}: {exc}") from exc
    if images.ndim != 3 or not (len(images) == len(labels) == len(u)):
        raise DataError(f"{path}: inconsistent shapes images {images.shape}, "
                        f"labels {labels.shape}, hom_matrices {u.shape}")
    if not np.all(labels == np.round(labels)):
        raise DataError(f"{path}: non-integer labels")
    labels = labels.astype(np.int64)
    arrays = {"images": images, "labels": labels, "homographies": invert(u),
              "digit_index": np.arange(len(labels), dtype=np.int64) // per_digit}
    manifest = {"dataset": "homnist-test", "source": str(path),
                "counts": {"images": len(labels)},
                "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": _digest(v)}
                           for k, v in sorted(arrays.items())}}
    return HomNISTTestSet(**arrays, manifest=manifest, path=path)
