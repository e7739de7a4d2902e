"""homNIST inputs: padded MNIST digits, the homNIST test set, and resumable homography views.

Images are padded to 40×40 and mapped to [−1, 1] with background −1 (:func:`to_dual`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from niso_geom.data.homnist import HomNISTTestSet, HomographyPairSampler, build_homnist, warp_images
from niso_geom.data.mnist import load_mnist, pad_images

__all__ = [
    "HomNISTData",
    "HomographyViews",
    "load_data",
    "load_test_digits",
    "load_train_digits",
    "per_digit_correct",
    "test_digit_indices",
    "to_dual",
    "unit_to_dual",
]

#: Side of the padded digits.
SIDE = 40
#: Digits in the MNIST test set.
MNIST_TEST_DIGITS = 10_000


def to_dual(u8: torch.Tensor) -> torch.Tensor:
    """uint8 intensities (..., H, W) -> float32 in [−1, 1] with a channel axis (..., 1, H, W)."""
    return (u8.float() * (2.0 / 255.0) - 1.0).unsqueeze(-3)


def unit_to_dual(x: torch.Tensor) -> torch.Tensor:
    """Intensities in [0, 1] (..., H, W) -> float32 in [−1, 1] with a channel axis (..., 1, H, W)."""
    return (x.float() * 2.0 - 1.0).unsqueeze(-3)


def load_train_digits(data_root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 MNIST training digits padded to 40×40 (uint8, (N, 40, 40)) and labels (N,)."""
    x, y = load_mnist("train+valid", data_root, as_uint8=True)
    return torch.from_numpy(pad_images(x, SIDE)), torch.from_numpy(np.array(y, dtype=np.int64))


def load_test_digits(n: int | None, data_root: str | os.PathLike | None = None, *,
                     indices: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean MNIST test digits padded to 40×40 (uint8, (n, 40, 40)) and labels (n,): the first
    ``n`` (None: all), or those at ``indices`` (then ``n`` is ignored)."""
    x, y = load_mnist("test", data_root, as_uint8=True)
    if indices is not None:
        ids = np.asarray(indices, dtype=np.int64)
    else:
        ids = np.arange(len(x) if n is None else int(n))
    return torch.from_numpy(pad_images(x[ids], SIDE)), torch.from_numpy(np.array(y, dtype=np.int64)[ids])


def test_digit_indices(n: int | None, seed: int, pick: str = "random", total: int = MNIST_TEST_DIGITS) -> np.ndarray:
    """Indices (sorted, int64) of the MNIST test digits a run evaluates on: ``n`` of the ``total``
    drawn without replacement with ``seed`` (``pick="random"``), or the first ``n`` (``"first"``);
    None: all. The first digits are not a fair sample: MNIST's test set puts its easier half first.
    """
    if pick not in ("random", "first"):
        raise ValueError(f"pick must be 'random' or 'first', got {pick!r}")
    if n is None or n >= total:
        return np.arange(total, dtype=np.int64)
    if n < 1:
        raise ValueError(f"the number of test digits must be >= 1, got {n}")
    if pick == "first":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    return np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)


def per_digit_correct(correct: np.ndarray, digit_index: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """How many of each digit's warped images were classified correctly: (len(digits),) int64,
    in the order of ``digits``, from per-image ``correct`` (N,) bool and ``digit_index`` (N,)."""
    pos = {int(d): i for i, d in enumerate(digits)}
    rows = np.fromiter((pos[int(d)] for d in digit_index), dtype=np.int64, count=len(digit_index))
    return np.bincount(rows, weights=correct.astype(np.int64), minlength=len(digits)).astype(np.int64)


@dataclass(frozen=True)
class HomNISTData:
    """The inputs of one run: ``train`` (padded uint8 MNIST training digits (N, 40, 40), labels (N,)),
    ``test`` the homNIST test set (images (M, 40, 40) in [0, 1], labels (M,)), and ``clean_test``
    the same test digits unwarped (uint8 (M / 32, 40, 40), labels); ``test_digits`` the MNIST
    test indices of those digits (sorted, (M / 32,))."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: HomNISTTestSet
    clean_test: tuple[torch.Tensor, torch.Tensor]
    test_digits: np.ndarray


def load_data(homnist_seed: int, test_digits: int | None, data_root: str | os.PathLike | None = None, *,
              progress: bool = False, pick: str = "first") -> HomNISTData:
    """MNIST training digits, the homNIST test set (``test_digits`` digits × 32 warps, built with
    ``homnist_seed``; cached on disk) and its clean digits; ``pick`` chooses the digits
    (:func:`test_digit_indices`: ``"random"`` with ``homnist_seed``, or ``"first"``)."""
    train = load_train_digits(data_root)
    ids = test_digit_indices(test_digits, homnist_seed, pick)
    if np.array_equal(ids, np.arange(len(ids))):  # a prefix (or all): the cache entry of earlier runs
        test = build_homnist(seed=homnist_seed, subset=len(ids), progress=progress, data_root=data_root)
    else:
        test = build_homnist(seed=homnist_seed, indices=ids, progress=progress, data_root=data_root)
    clean = load_test_digits(None, data_root, indices=ids)
    if test.labels.ndim != 1:  # guard against the reference's (N, 1) labels (docs/algorithm.md §7 item 7)
        raise ValueError(f"homNIST labels must be (N,), got {test.labels.shape}")
    return HomNISTData(train=train, test=test, clean_test=clean, test_digits=ids)


class HomographyViews:
    """Resumable batches of homography views of padded digits, in [−1, 1].

    ``views=2``: (x, T1 x); ``views=3``: (x, T1 x, T2 T1 x) (with ``same_transform``:
    (x, T x, T T x)). Homographies come from the reference's Gaussian sl(3) sampler; all
    views are warped from the clean digit directly (T2 T1 x is one warp by A1 A2 in the
    pull-back convention), so interpolation blur does not accumulate.

    Parameters
    ----------
    digits : (N, H, W) uint8 padded digits.
    batch : samples per call; each call returns ``views`` tensors (batch, 1, H, W).
    seed : seeds both the digit draw and the homography draw; ``state_dict`` saves them.
    """

    def __init__(self, digits: torch.Tensor, batch: int, views: int = 2, *, seed: int = 0,
                 scale: float = 1.0, same_transform: bool = False) -> None:
        if views not in (2, 3):
            raise ValueError(f"views must be 2 or 3, got {views}")
        self.digits, self.batch, self.views = digits, int(batch), int(views)
        self.same_transform = bool(same_transform)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        self.homographies = HomographyPairSampler(scale, method="gaussian", background=-1.0,
                                                  rng=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))))

    def __call__(self) -> tuple[torch.Tensor, ...]:
        idx = torch.from_numpy(self.rng.integers(0, len(self.digits), self.batch))
        x = to_dual(self.digits[idx])
        a1 = self.homographies.sample(self.batch)
        out = [x, warp_images(x, a1, -1.0)]
        if self.views == 3:
            a2 = a1 if self.same_transform else self.homographies.sample(self.batch)
            out.append(warp_images(x, a1 @ a2, -1.0))
        return tuple(out)

    def state_dict(self) -> dict[str, Any]:
        return {"digits": self.rng.bit_generator.state, "homographies": self.homographies.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["digits"]
        self.homographies.rng.bit_generator.state = state["homographies"]
