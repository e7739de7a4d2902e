"""Figures (matplotlib, the ``plot`` extra). Every function returns a Figure and never shows it.

HEALPix maps are drawn with healpy's Mollweide projection (``healpy.projview``), lat–lon grids as
images, meshes as shaded triangle surfaces (``plot_trisurf``) coloured by the signal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from niso_geom.errors import NisoGeomError

PLOT_EXTRA_HINT = "pip install 'niso_geom[plot]'"


class PlotExtraMissing(NisoGeomError, ImportError):
    """matplotlib (the ``plot`` extra) is not installed. An ImportError, so callers that draw
    figures only when they can (the experiments' reports) keep catching it."""


def have_matplotlib() -> bool:
    """True when matplotlib (the ``plot`` extra) can be imported."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def require_plot_extra(what: str) -> None:
    """Raise :class:`PlotExtraMissing` (one line, naming the extra) unless matplotlib is installed.

    Call it before any work in a command that writes figures, so that a plain install stops at
    once instead of after minutes of computing.
    """
    if not have_matplotlib():
        raise PlotExtraMissing(f"{what} writes figures and needs matplotlib: {PLOT_EXTRA_HINT}")


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (the ``plot`` extra; a one-line
    error naming it when matplotlib is missing). matplotlib is optional, so it is imported here."""
    require_plot_extra("plotting")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _grid_image(domain, f: np.ndarray) -> np.ndarray | None:
    shape = getattr(domain, "shape", None)
    if shape is None:
        return None
    return np.asarray(f).reshape(shape)


def plot_field(domain, f: np.ndarray, ax=None, *, title: str | None = None, cmap: str = "RdBu_r",
               symmetric: bool = True) -> Any:
    """Draw one signal f (N,) on a domain and return the Figure.

    Lat–lon grids: an image (colatitude down, longitude across). HEALPix (RING order): healpy's
    Mollweide projection (``healpy.projview``). Meshes: the triangle surface, each face coloured by
    the mean of its vertices' values. Other point sets on the sphere: a longitude–latitude scatter.
    """
    plt = pyplot()
    f = np.asarray(f, dtype=np.float64)
    vmax = float(np.abs(f).max()) if symmetric else None
    kw = {"cmap": cmap, "vmin": -vmax if symmetric else None, "vmax": vmax}
    img = _grid_image(domain, f)
    is_mesh = img is None and domain.kind == "mesh"
    is_healpix = img is None and getattr(domain, "grid", None) == "healpix"
    if ax is None:
        fig = plt.figure(figsize=(3, 3))
        ax = fig.add_subplot(111, projection="3d" if is_mesh else None)
    if img is not None:
        extent = (0, 360, 180, 0) if domain.kind == "sphere" else None
        ax.imshow(img, interpolation="nearest", aspect="auto" if extent else "equal", extent=extent, **kw)
    elif is_healpix:
        _healpix_mollweide(ax, f, **kw)
    elif domain.kind == "sphere":
        lon = np.degrees(domain.lon)
        ax.scatter(np.where(lon > 180, lon - 360, lon), 90 - np.degrees(domain.colat), c=f, s=4, **kw)
    else:
        _mesh_surface(ax, domain, f, **kw)
    if title:
        ax.set_title(title, fontsize=8)
    if not is_mesh:
        ax.set_xticks([])
        ax.set_yticks([])
    return ax.figure


def _healpix_mollweide(ax, f: np.ndarray, *, cmap: str, vmin: float | None, vmax: float | None) -> None:
    """A HEALPix map (RING order) in Mollweide projection, drawn on any 2-D axis.

    healpy's projector (the engine of ``healpy.mollview``/``projview``) renders the map to a
    Mollweide image; drawing that image with ``imshow`` lets it sit in a subplot grid, which
    ``mollview`` (it makes its own figure) cannot.
    """
    import healpy as hp

    nside = hp.npix2nside(len(f))
    proj = hp.projector.MollweideProj(xsize=max(200, 16 * nside), flipconv="geo")  # east to the right
    img = proj.projmap(f, lambda x, y, z: hp.vec2pix(nside, x, y, z))
    ax.imshow(np.ma.masked_invalid(img), origin="lower", extent=proj.get_extent(), cmap=cmap,
              vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()


def _mesh_surface(ax, domain, f: np.ndarray, *, cmap: str, vmin: float | None, vmax: float | None) -> None:
    """A shaded triangle surface (``plot_trisurf``), each face coloured by its vertices' mean value."""
    import matplotlib.colors as mcolors

    V, F = domain.points, domain.faces
    surf = ax.plot_trisurf(V[:, 0], V[:, 1], V[:, 2], triangles=F, linewidth=0, antialiased=False, shade=False)
    lo = float(f.min()) if vmin is None else vmin
    hi = float(f.max()) if vmax is None else vmax
    norm = mcolors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
    surf.set_array(f[F].mean(axis=1))
    surf.set_cmap(cmap)
    surf.set_norm(norm)
    ax.set_box_aspect(np.ptp(V, axis=0))
    ax.set_axis_off()


def axis_projection(domain) -> str | None:
    """The matplotlib projection :func:`plot_field` needs for a domain: "3d" for meshes, else None."""
    return "3d" if getattr(domain, "shape", None) is None and domain.kind == "mesh" else None


def plot_eigenfunctions(domain, evecs: np.ndarray, evals: np.ndarray | None = None, *, n: int = 12,
                        ncols: int = 6, title: str | None = None) -> Any:
    """A grid of the first n eigenfunctions (columns of evecs (N, K))."""
    plt = pyplot()
    n = min(n, evecs.shape[1])
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(2.0 * ncols, 2.0 * nrows + (0.4 if title else 0)))
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection=axis_projection(domain))
        label = f"φ{i}" + (f"  λ={evals[i]:.3g}" if evals is not None else "")
        plot_field(domain, evecs[:, i], ax=ax, title=label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_spectrum(evals: np.ndarray, reference: np.ndarray | None = None, *, labels=("numeric", "analytic"),
                  ax=None, title: str | None = None) -> Any:
    """Eigenvalues against their index, optionally beside a reference spectrum."""
    plt = pyplot()
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

    plt = pyplot()
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
