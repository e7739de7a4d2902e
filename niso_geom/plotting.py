"""Figures (matplotlib, the ``plot`` extra). Every function returns a Figure and never shows it."""

from __future__ import annotations

from typing import Any

import numpy as np


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("plotting needs matplotlib: pip install 'niso_geom[plot]'") from exc
    return plt


def _grid_image(domain, f: np.ndarray) -> np.ndarray | None:
    shape = getattr(domain, "shape", None)
    if shape is None:
        return None
    return np.asarray(f).reshape(shape)


def plot_field(domain, f: np.ndarray, ax=None, *, title: str | None = None, cmap: str = "RdBu_r",
               symmetric: bool = True) -> Any:
    """Draw one signal (N,) on a domain: an image for grids, a Mollweide-like scatter for
    HEALPix, a 3-D scatter of vertex colours for meshes. Returns the Figure."""
    plt = _plt()
    f = np.asarray(f, dtype=np.float64)
    vmax = np.abs(f).max() if symmetric else None
    kw = {"cmap": cmap, "vmin": -vmax if symmetric else None, "vmax": vmax}
    img = _grid_image(domain, f)
    if ax is None:
        fig = plt.figure(figsize=(3, 3))
        ax = fig.add_subplot(111, projection="3d" if (img is None and domain.kind == "mesh") else None)
    fig = ax.figure
    if img is not None:
        extent = None
        if domain.kind == "sphere":
            extent = (0, 360, 180, 0)
        ax.imshow(img, interpolation="nearest", aspect="auto" if extent else "equal", extent=extent, **kw)
    elif domain.kind == "sphere":
        lon = np.degrees(domain.lon)
        ax.scatter(np.where(lon > 180, lon - 360, lon), 90 - np.degrees(domain.colat), c=f, s=4, **kw)
    else:
        V = domain.points
        ax.scatter(V[:, 0], V[:, 1], V[:, 2], c=f, s=2, **kw)
        ax.set_box_aspect(np.ptp(V, axis=0))
        ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    if img is not None or domain.kind == "sphere":
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_eigenfunctions(domain, evecs: np.ndarray, evals: np.ndarray | None = None, *, n: int = 12,
                        ncols: int = 6, title: str | None = None) -> Any:
    """A grid of the first n eigenfunctions (columns of evecs (N, K))."""
    plt = _plt()
    n = min(n, evecs.shape[1])
    nrows = int(np.ceil(n / ncols))
    mesh = getattr(domain, "shape", None) is None and domain.kind == "mesh"
    fig = plt.figure(figsize=(2.0 * ncols, 2.0 * nrows + (0.4 if title else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d" if mesh else None)
        label = f"φ{i}" + (f"  λ={evals[i]:.3g}" if evals is not None else "")
        plot_field(domain, evecs[:, i], ax=ax, title=label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_spectrum(evals: np.ndarray, reference: np.ndarray | None = None, *, labels=("numeric", "analytic"),
                  ax=None, title: str | None = None) -> Any:
    """Eigenvalues against their index, optionally beside a reference spectrum."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    fig = ax.figure
    ax.plot(np.arange(len(evals)), evals, ".", label=labels[0])
    if reference is not None:
        ax.plot(np.arange(len(reference)), reference, "x", ms=4, label=labels[1])
        ax.legend()
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    """Save a figure atomically-enough for a run directory (PNG at 120 dpi) and close it."""
    import os
    import tempfile
    from pathlib import Path

    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
