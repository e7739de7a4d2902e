"""Multi-view data in memory: every object (mesh) seen under V views (transforms).

The conformal SHREC'11 experiment trains and evaluates on *views*: view 0 is a mesh's sphere
map, views 1..V-1 are Möbius transforms of it. This module holds them and draws from them:

* :class:`ViewTable` — per-object rows ``(n, V, ...)`` (images, spectral coefficients, latents,
  features) addressed by global object ids;
* :class:`ViewPairs` — NIso pre-training pairs of two views of the same object (the official
  ``draw_shrec11_pairs``, ``docs/algorithm.md`` §3.4): the first view is the original with
  probability ``p_original`` (0.2) and a uniform transformed view otherwise, the second is
  uniform over all V views;
* :class:`LabelledViews` — classifier batches: B objects drawn uniformly, one uniform view of
  each (§3.5), with the object's label;
* :func:`map_views` — a function applied to every view of every object (e.g. an encoder), in
  chunks, sharded over DDP ranks and gathered; :func:`predict_views`, :func:`confusion_matrix`.

Samplers are seeded, resumable (``state_dict``) and give every DDP rank the same global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from niso_geom.train import distributed

__all__ = [
    "LabelledViews",
    "ViewPairs",
    "ViewTable",
    "confusion_matrix",
    "map_views",
    "predict_views",
]


class ViewTable:
    """Rows of per-view data for a set of objects.

    Parameters
    ----------
    index : (n,) global object ids (e.g. mesh indices of the dataset), unique.
    data : (n, V, ...) tensor; row r holds the V views of object ``index[r]`` (any dtype;
        :meth:`get` returns float32 for floating data).
    """

    def __init__(self, index: Sequence[int] | np.ndarray, data: torch.Tensor) -> None:
        self.index = np.asarray(index, dtype=np.int64)
        if self.index.ndim != 1 or len(np.unique(self.index)) != len(self.index):
            raise ValueError(f"index must be 1-D and unique, got shape {self.index.shape}")
        if data.dim() < 2 or data.shape[0] != len(self.index):
            raise ValueError(f"data must be (n={len(self.index)}, V, ...), got {tuple(data.shape)}")
        self.data = data
        self._row = {int(i): r for r, i in enumerate(self.index)}

    @property
    def num_views(self) -> int:
        return int(self.data.shape[1])

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[2:])

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row numbers of global object ids (KeyError naming the first missing id)."""
        try:
            return np.array([self._row[int(i)] for i in np.atleast_1d(ids)], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"object {exc.args[0]} is not in this table (it holds {len(self.index)} objects)") from None

    def get(self, ids: Sequence[int] | np.ndarray, views: Sequence[int] | np.ndarray) -> torch.Tensor:
        """One view per object: ids (B,), views (B,) -> (B, ...) (float32 for floating data)."""
        r = torch.from_numpy(self.rows(ids))
        v = torch.from_numpy(np.asarray(views, dtype=np.int64))
        out = self.data[r, v]
        return out.float() if out.is_floating_point() else out

    def all_views(self, ids: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Every view of the objects: (B,) -> (B, V, ...)."""
        out = self.data[torch.from_numpy(self.rows(ids))]
        return out.float() if out.is_floating_point() else out


class _Seeded:
    """A NumPy generator from ``(seed, stream)`` whose state travels in ``state_dict``."""

    def __init__(self, seed: int, stream: int) -> None:
        self.rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(stream),)))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class ViewPairs(_Seeded):
    """Pairs (x, T x) of two views of the same object, as the official pair sampler (§3.4).

    Per sample: an object uniform over ``ids``; first view 0 with probability ``p_original``,
    else uniform over 1..V-1; second view uniform over 0..V-1 (so the pair is related by
    m_{i1} ∘ m_{i0}⁻¹, or is the identity with probability 1/V). Returns float32 (B, ...) x2.
    """

    def __init__(self, table: ViewTable, ids: Sequence[int] | np.ndarray, batch: int, *, seed: int = 0,
                 p_original: float = 0.2) -> None:
        super().__init__(seed, 10)
        if table.num_views < 2:
            raise ValueError("pairs need at least 2 views per object")
        if not 0.0 <= p_original <= 1.0:
            raise ValueError(f"p_original must be in [0, 1], got {p_original}")
        self.table, self.ids, self.batch, self.p_original = table, np.asarray(ids, dtype=np.int64), int(batch), p_original
        if len(self.ids) == 0:
            raise ValueError("no objects to draw pairs from")

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Object ids and the two view indices, each (B,)."""
        V, B = self.table.num_views, self.batch
        obj = self.ids[self.rng.integers(0, len(self.ids), B)]
        first = np.where(self.rng.random(B) < self.p_original, 0, self.rng.integers(1, V, B))
        second = self.rng.integers(0, V, B)
        return obj, first, second

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        obj, first, second = self.draw()
        return self.table.get(obj, first), self.table.get(obj, second)


class LabelledViews(_Seeded):
    """Classifier batches: ``batch`` objects uniform over ``ids``, one uniform view each, and labels.

    ``labels`` is indexed by global object id; ``views`` restricts the views drawn (e.g. ``[0]``:
    the untransformed view only; None: all). Returns (inputs (B, ...), labels (B,) int64).
    """

    def __init__(self, table: ViewTable, ids: Sequence[int] | np.ndarray, labels: np.ndarray, batch: int, *,
                 seed: int = 0, views: Sequence[int] | None = None) -> None:
        super().__init__(seed, 11)
        self.table, self.ids, self.batch = table, np.asarray(ids, dtype=np.int64), int(batch)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.views = np.arange(table.num_views) if views is None else np.asarray(views, dtype=np.int64)
        if len(self.ids) == 0:
            raise ValueError("no objects to draw labelled views from")
        if len(self.views) == 0 or self.views.min() < 0 or self.views.max() >= table.num_views:
            raise ValueError(f"views must be a non-empty subset of 0..{table.num_views - 1}, got {self.views.tolist()}")

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        obj = self.ids[self.rng.integers(0, len(self.ids), self.batch)]
        views = self.views[self.rng.integers(0, len(self.views), self.batch)]
        return self.table.get(obj, views), self.labels[torch.from_numpy(obj)]


@torch.no_grad()
def map_views(fn: Callable[[torch.Tensor], torch.Tensor], table: ViewTable, ids: Sequence[int] | np.ndarray | None = None,
              *, batch: int = 64, device: torch.device | str = "cpu", progress: bool = False,
              desc: str = "views") -> ViewTable:
    """``fn`` on every view of every object: a new table of ``fn``'s outputs (on the CPU).

    ``fn`` maps a float32 batch (b, ...) on ``device`` to (b, ...out). Objects are processed in
    chunks of about ``batch`` images (whole objects); under DDP each rank maps every
    world-size-th object and the results are gathered, so every rank returns the full table.
    """
    ids = table.index if ids is None else np.asarray(ids, dtype=np.int64)
    ctx = distributed.context()
    mine = ids[ctx.rank::ctx.world_size]
    per = max(1, int(batch) // table.num_views)
    outs: list[torch.Tensor] = []
    for s in tqdm(range(0, len(mine), per), desc=desc, unit="chunk", leave=False, disable=not progress):
        chunk = table.all_views(mine[s:s + per])  # (c, V, ...)
        flat = chunk.flatten(0, 1).to(device)
        y = fn(flat).detach().cpu()
        outs.append(y.unflatten(0, chunk.shape[:2]))
    local = torch.cat(outs) if outs else None
    parts = distributed.all_gather_objects((mine, local))
    got_ids = np.concatenate([p[0] for p in parts if len(p[0])])
    data = torch.cat([p[1] for p in parts if p[1] is not None])
    pos = {int(i): k for k, i in enumerate(got_ids)}
    rows = torch.from_numpy(np.array([pos[int(i)] for i in ids], dtype=np.int64))
    return ViewTable(ids, data[rows])


def predict_views(logits_fn: Callable[[torch.Tensor], torch.Tensor], table: ViewTable,
                  ids: Sequence[int] | np.ndarray | None = None, **kw: Any) -> np.ndarray:
    """Predicted class of every view: (n, V) int64, from ``logits_fn`` batches (b, ...) -> (b, classes)."""
    out = map_views(lambda x: logits_fn(x).argmax(-1), table, ids, **kw)
    return out.data.numpy().astype(np.int64)


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class.

    ``pred`` (n, V) (or (n,)) and ``true`` (n,): every view counts once.
    """
    pred = np.asarray(pred, dtype=np.int64)
    true = np.broadcast_to(np.asarray(true, dtype=np.int64).reshape(-1, *([1] * (pred.ndim - 1))), pred.shape)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (true.ravel(), pred.ravel()), 1)
    return cm
