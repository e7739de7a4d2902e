"""The views of a conformal SHREC'11 build by severity: per-view ``k`` from the manifest, views
ordered by ``k``, a figure of a build's views ordered by ``k`` and a figure of one mesh at several
severities.

``k`` is a view's largest linear scale factor (:func:`~niso_geom.geometry.mobius.mobius_max_scale`):
1 for rotations and view 0, ``(1 + |c|)/(1 − |c|)`` for a boost by ``c``.

NumPy only (matplotlib, loaded lazily by :mod:`niso_geom.plotting`, for the figures).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from niso_geom.data.cshrec11 import compute_mesh_views, read_manifest
from niso_geom.domains.sphere import SphereGrid
from niso_geom.errors import DataError
from niso_geom.geometry.mobius import mobius_max_scale
from niso_geom.geometry.mobius_severity import paper_view_transform
from niso_geom.geometry.pullback import pullback_matrix

__all__ = ["plot_severities", "plot_views_by_k", "severity_views", "view_k_matrix", "views_by_k"]


def view_k_matrix(folder: str | os.PathLike, names: Sequence[str]) -> np.ndarray:
    """(len(names), V) per-view ``k`` of the named meshes from the folder's manifest (view 0: 1)."""
    manifest = read_manifest(folder)
    rows = []
    for name in names:
        entry = manifest["meshes"].get(name)
        if entry is None or "view_k" not in entry:
            raise DataError(f"{folder}: mesh {name} has no per-view k in manifest.json (not built here, "
                            f"or built before version 2)")
        rows.append(entry["view_k"])
    if len({len(r) for r in rows}) > 1:
        raise DataError(f"{folder}: meshes have different numbers of views")
    return np.asarray(rows, dtype=np.float64).reshape(len(names), -1)


def views_by_k(folder: str | os.PathLike, *, descending: bool = True) -> list[dict[str, Any]]:
    """Every Möbius view of the folder (view 0 left out) as ``{"mesh", "class", "view", "k"}``, ordered by ``k``."""
    manifest = read_manifest(folder)
    rows = [{"mesh": name, "class": e["class"], "view": v, "k": float(k)}
            for name, e in manifest["meshes"].items() for v, k in enumerate(e.get("view_k", [])) if v > 0]
    return sorted(rows, key=lambda r: (r["k"], r["mesh"], r["view"]), reverse=descending)


def _image_row(fig, axes, imgs: Sequence[np.ndarray], titles: Sequence[str]) -> None:
    vmin, vmax = min(i.min() for i in imgs), max(i.max() for i in imgs)
    im = None
    for ax, img, title in zip(axes, imgs, titles):
        ax.set_xticks([])
        ax.set_yticks([])
        im = ax.imshow(img, extent=(0, 360, 180, 0), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.01)


def plot_views_by_k(folder: str | os.PathLike, names: Sequence[str], *, channel: int = 8, n_views: int = 4):
    """One row per mesh: view 0, then ``n_views`` Möbius views at evenly spaced ranks of ``k``
    (the mildest first, the most expanded last), each titled with its ``k``. Returns the Figure."""
    from niso_geom.plotting import pyplot  # matplotlib only when a figure is asked for

    plt = pyplot()
    folder = Path(folder)
    times = read_manifest(folder)["params"]["hks_times"]
    if not 0 <= channel < len(times):
        raise ValueError(f"channel must be in 0..{len(times) - 1}, got {channel}")
    K = view_k_matrix(folder, names)
    cols = 1 + min(n_views, K.shape[1] - 1)
    fig, axes = plt.subplots(len(names), cols, figsize=(2.6 * cols + 0.6, 1.5 * len(names) + 0.5), squeeze=False,
                             layout="constrained")
    for r, name in enumerate(names):
        arr = np.load(folder / "meshes" / f"{name}.npy", mmap_mode="r")
        order = 1 + np.argsort(K[r, 1:], kind="stable")
        picks = [0] + [int(order[i]) for i in np.linspace(0, len(order) - 1, cols - 1).round().astype(int)]
        imgs = [np.asarray(arr[v, channel], dtype=np.float32) for v in picks]
        titles = [f"{name} map"] + [f"view {v}: k = {K[r, v]:.3g}" for v in picks[1:]]
        _image_row(fig, axes[r], imgs, titles)
    fig.suptitle(f"HKS − 1 at t = {times[channel]:.3g}, views ordered by k (largest linear scale factor)",
                 fontsize=9)
    return fig


def severity_views(V: np.ndarray, F: np.ndarray, severities: Sequence[float], *, res: tuple[int, int] = (32, 64),
                   channel: int = 8, direction: Sequence[float] = (1.0, 0.0, 0.0),
                   name: str = "mesh") -> tuple[list[np.ndarray], list[float]]:
    """One HKS channel of the mesh pulled back through its map (first image, ``k = 1``) and through
    the ``paper`` view of each ``|c|`` in ``severities`` along one ``direction`` (no rotation, so the
    images differ by severity alone). Returns the (H, W) images and their ``k``."""
    arrays, _ = compute_mesh_views(V, F, res=res, transforms=0, seed=0, name=name, mobius="rotation")
    sphere, signal = arrays["sphere"], arrays["hks"][:, channel:channel + 1] - 1.0  # (N, 1)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    grid = SphereGrid.equiangular(*res)
    imgs, ks = [grid.to_grid(pullback_matrix(sphere, F, grid.points) @ signal)[0]], [1.0]
    for s in severities:
        A = paper_view_transform(sphere, V, F, float(s) * d)
        imgs.append(grid.to_grid(pullback_matrix(sphere, F, grid.points, mobius=A) @ signal)[0])
        ks.append(float(mobius_max_scale(A)))
    return imgs, ks


def plot_severities(V: np.ndarray, F: np.ndarray, severities: Sequence[float], *, title: str,
                    res: tuple[int, int] = (32, 64), channel: int = 8, directions: Sequence[Sequence[float]] = (
                        (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))):
    """A figure of one mesh at several ``paper`` severities: one row per direction of ``c``,
    columns the map and ``|c|`` from mild to severe, titled with ``|c|`` and ``k``. Returns the Figure."""
    from niso_geom.plotting import pyplot  # matplotlib only when a figure is asked for

    plt = pyplot()
    cols = 1 + len(severities)
    fig, axes = plt.subplots(len(directions), cols, figsize=(2.4 * cols + 0.6, 1.45 * len(directions) + 0.6),
                             squeeze=False, layout="constrained")
    for r, d in enumerate(directions):
        imgs, ks = severity_views(V, F, severities, res=res, channel=channel, direction=d, name=title)
        titles = ["map (k = 1)"] + [f"|c| = {s:g}: k = {k:.3g}" for s, k in zip(severities, ks[1:])]
        _image_row(fig, axes[r], imgs, titles)
        axes[r][0].set_ylabel(f"c ∥ {tuple(round(x, 2) for x in d)}", fontsize=7)
    fig.suptitle(f"{title}: HKS channel {channel} through the paper-mode views (3-D inversion with |c|, "
                 f"base map re-centred), {res[0]}x{res[1]}", fontsize=9)
    return fig
