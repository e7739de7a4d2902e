"""An in-memory stand-in for :class:`niso_geom.data.cshrec11.CShrec11` (same attributes and
``views``/``with_split``), for fast tests of the conformal SHREC'11 experiment.

Each class has a random band-limited prototype (16 channels, SH degree ≤ 4); a mesh is its
class prototype plus its own band-limited noise; view 0 is the mesh's signal on the grid and
views 1..T are its pull-backs by random Möbius transforms, ``f(A⁻¹ p)`` (boost up to ``boost``,
stored as ``extras(i)["mobius"]``), squashed into [−1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from niso_geom.domains.sphere import SphereGrid
from niso_geom.geometry.mobius import mobius_apply, mobius_inverse, random_mobius
from niso_geom.harmonics.sphere import num_harmonics, real_sph_harm

CHANNELS, LMAX = 16, 4


@dataclass
class FakeCShrec11:
    class_names: list[str]
    mesh_names: list[str]
    labels: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    res: tuple[int, int]
    num_views: int
    grid: SphereGrid
    signals: np.ndarray  # (M, V, 16, H, W) float32 in [-1, 1]
    mobius: np.ndarray  # (M, V - 1, 2, 2) complex: view v = mobius[v - 1] · view 0
    split_seed: int = 0

    def extras(self, i: int) -> dict[str, np.ndarray]:
        return {"mobius": self.mobius[i]}

    def views(self, mesh_idx, view_idx=None) -> np.ndarray:
        m = np.atleast_1d(np.asarray(mesh_idx, dtype=np.int64))
        if view_idx is None:
            return self.signals[m].copy()
        v = np.asarray(view_idx, dtype=np.int64)
        v = np.full((len(m), 1), int(v)) if v.ndim == 0 else (v[:, None] if v.ndim == 1 else v)
        return np.stack([self.signals[i, vi] for i, vi in zip(m, v)])

    def with_split(self, split_seed: int) -> FakeCShrec11:
        train, test = _split(self.labels, split_seed)
        return FakeCShrec11(self.class_names, self.mesh_names, self.labels, train, test, self.res, self.num_views,
                            self.grid, self.signals, self.mobius, int(split_seed))


def _split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = len(idx) // 2
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))


def make_fake(classes: int = 3, per_class: int = 4, res: tuple[int, int] = (16, 32), transforms: int = 4,
              seed: int = 0, noise: float = 0.3, boost: float = 0.2) -> FakeCShrec11:
    rng = np.random.default_rng(seed)
    grid = SphereGrid.equiangular(*res)
    K = num_harmonics(LMAX)
    decay = 1.0 / (1.0 + np.repeat(np.arange(LMAX + 1), 2 * np.arange(LMAX + 1) + 1))[:, None]
    protos = rng.standard_normal((classes, K, CHANNELS)) * decay
    labels = np.repeat(np.arange(classes), per_class)
    sig = np.empty((len(labels), 1 + transforms, CHANNELS, *res), dtype=np.float32)
    mats = np.empty((len(labels), transforms, 2, 2), dtype=np.complex128)
    for i, c in enumerate(labels):
        coeffs = protos[c] + noise * rng.standard_normal((K, CHANNELS)) * decay
        As = mats[i] = random_mobius(rng, boost, size=transforms)
        for v in range(1 + transforms):
            pts = grid.points if v == 0 else mobius_apply(mobius_inverse(As[v - 1]), grid.points)
            sig[i, v] = grid.to_grid(np.tanh(real_sph_harm(LMAX, pts) @ coeffs))
    train, test = _split(labels, 0)
    return FakeCShrec11([f"class{c}" for c in range(classes)], [f"T{i}" for i in range(len(labels))], labels,
                        train, test, res, 1 + transforms, grid, sig, mats)
