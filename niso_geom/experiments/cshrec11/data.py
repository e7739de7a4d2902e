"""The data of a conformal SHREC'11 run: the dataset of a config, and per seed its split in memory.

:func:`load_data` opens (building when missing) the dataset of
:func:`~niso_geom.data.cshrec11.load_cshrec11`; :func:`seed_data` takes split ``seed`` of it
(normalized with its own train statistics) and holds every view of its train and test meshes
as a float16 :class:`~.views.ViewTable` (:class:`SeedData`), with every view's Möbius matrix and
its severity ``k`` (:mod:`.severity`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from niso_geom.baselines.sh_power import SHTransform
from niso_geom.data.cshrec11 import list_source, load_cshrec11
from niso_geom.geometry.mobius import mobius_max_scale
from niso_geom.harmonics.sphere import num_harmonics
from niso_geom.shared_data import data_file
from niso_geom.train import distributed

from .config import CShrec11Config
from .errors import ConfigError
from .severity import view_transforms
from .views import ViewTable, map_views

__all__ = ["NUM_CHANNELS", "SeedData", "class_subset", "image_table", "load_data", "seed_data"]

#: Heat kernel signature channels per view.
NUM_CHANNELS = 16


def class_subset(spec: str | None, data_root: str | os.PathLike | None = None) -> list[str] | None:
    """The classes of ``spec``: None (all), a number n (the first n in sorted order) or names "a,b"."""
    if spec is None:
        return None
    entries, _ = list_source(data_file("shrec_16.tar.gz", data_root))
    names = sorted({e.cls for e in entries})
    text = str(spec).strip()
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= len(names):
            raise ConfigError(f"classes must be in 1..{len(names)}, got {n}")
        return names[:n]
    chosen = sorted({c.strip() for c in text.split(",") if c.strip()})
    unknown = [c for c in chosen if c not in names]
    if unknown or not chosen:
        raise ConfigError(f"classes: unknown classes {unknown or text!r}; known: {', '.join(names)}")
    return chosen


def load_data(cfg: CShrec11Config, data_root: str | os.PathLike | None = None, *, progress: bool = True,
              cache_dir: str | os.PathLike | None = None) -> Any:
    """The dataset of ``cfg`` (split 0), built into the cache first when missing.

    Under DDP, rank 0 builds while the others wait, then they open the finished folder.
    """
    kw = {"res": tuple(cfg.res), "transforms": cfg.transforms, "seed": cfg.data_seed, "split_seed": 0,
          "mobius": cfg.mobius, "severity": cfg.severity,
          "classes": class_subset(cfg.classes, data_root), "data_root": data_root, "jobs": cfg.build_jobs,
          "progress": progress, "_max_per_class": cfg.max_per_class}
    ctx = distributed.context()
    if not ctx.is_main:
        distributed.barrier()
        return load_cshrec11(cache_dir, build=False, **kw)
    ds = load_cshrec11(cache_dir, build=True, **kw)
    distributed.barrier()
    return ds


def image_table(ds: Any, ids: np.ndarray, *, progress: bool = False, chunk: int = 8) -> ViewTable:
    """All views of meshes ``ids`` (normalized, stored as float16): (n, V, 16, H, W)."""
    parts = []
    for s in tqdm(range(0, len(ids), chunk), desc="load views", unit="chunk", leave=False, disable=not progress):
        parts.append(torch.from_numpy(ds.views(ids[s:s + chunk]).astype(np.float16)))
    return ViewTable(ids, torch.cat(parts))


@dataclass
class SeedData:
    """The data of one seed (split): dataset, train/test mesh ids, labels, the image table, every
    view's SL(2, ℂ) matrix ``transforms`` (rows of ``images``, (n, V, 2, 2); None when the dataset
    does not store them), and lazily computed SH coefficients shared by the SH baselines."""

    ds: Any
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    images: ViewTable
    num_classes: int
    transforms: np.ndarray | None = None
    _sh: ViewTable | None = None

    def view_k(self, ids: np.ndarray) -> np.ndarray | None:
        """(len(ids), V) largest linear scale factor of every view of meshes ``ids`` (None without transforms)."""
        if self.transforms is None:
            return None
        return np.asarray(mobius_max_scale(self.transforms[self.images.rows(ids)]), dtype=np.float64)

    def sh_coefficients(self, lmax: int, batch: int, device: torch.device, progress: bool) -> ViewTable:
        """Real SH coefficients (n, V, (lmax+1)², 16) of every view, cached for the largest lmax asked."""
        have = None if self._sh is None else round(math.sqrt(self._sh.item_shape[0])) - 1
        if have is None or have < lmax:
            sht = SHTransform(self.ds.grid, lmax).to(device)
            self._sh = map_views(sht, self.images, batch=batch, device=device, progress=progress, desc="SH transform")
            have = lmax
        return ViewTable(self._sh.index, self._sh.data[:, :, :num_harmonics(lmax)])


def seed_data(ds: Any, seed: int, *, progress: bool = False) -> SeedData:
    """Split ``seed`` of the dataset (its own normalization) with the views of its train and test meshes."""
    dk = ds if int(seed) == int(ds.split_seed) else ds.with_split(int(seed))
    ids = np.concatenate([dk.train_index, dk.test_index])
    return SeedData(dk, np.asarray(dk.train_index), np.asarray(dk.test_index), np.asarray(dk.labels),
                    image_table(dk, ids, progress=progress), len(dk.class_names), view_transforms(dk, ids))
