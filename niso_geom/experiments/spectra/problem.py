"""The problem of a spectra run: a domain with its ground truth, a pair sampler and its group.

* ``torus``  — TorusGrid with the paper's 9-point stencil, circular shifts; ground truth the exact
  Fourier eigenbasis (K = N = 256 at 16×16, the paper's full-rank setting);
* ``sphere`` — the paper's Driscoll–Healy 16×16 grid (or an equiangular grid), random SO(3)
  rotations; ground truth real spherical harmonics, K = 64 = degrees 0..7;
* ``mesh``   — an icosphere, rotations of the ambient sphere; ground truth its cotan eigenbasis,
  grouped in blocks of 2l+1; generators the icosahedral rotations (vertex permutations).

Signals: band-limited random fields with a natural-image power law (default) or MNIST digits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from niso_geom.data.mnist import load_mnist
from niso_geom.data.signals import SpherePairs, TorusPairs
from niso_geom.domains import TorusGrid, TriMesh
from niso_geom.domains.sphere import grid_from_rows
from niso_geom.experiments.spectra.config import SpectraConfig
from niso_geom.harmonics.sphere import lmax_for, num_harmonics
from niso_geom.spectral.eigenbasis import Eigenbasis

__all__ = ["Problem", "build_problem"]


@dataclass
class Problem:
    """A domain with its ground truth, a pair sampler and the group's generators."""

    domain: Any
    truth: Eigenbasis
    spaces: list
    sampler: Any
    generators: list
    sphere: dict | None = None  # for the Wigner-D match
    reference_mass: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _mnist_images(data_root: str | None, n: int = 5000) -> np.ndarray:
    x, _ = load_mnist("train", data_root)
    return np.asarray(x[:n], dtype=np.float64).reshape(-1, 28, 28)


def build_problem(cfg: SpectraConfig, data_root: str | None = None) -> Problem:
    """The domain of ``cfg``, its ground truth, the pair sampler and the group's generators."""
    images = _mnist_images(data_root) if cfg.signals == "mnist" else None
    if cfg.domain == "torus":
        dom = TorusGrid(cfg.res, cfg.res, stencil="9pt")
        if cfg.k > dom.n:
            raise ValueError(f"k={cfg.k} exceeds the {dom.n} grid points")
        truth = dom.analytic_eigenbasis()
        sampler = TorusPairs(cfg.res, cfg.res, cfg.channels, alpha=cfg.alpha, images=images)
        return Problem(dom, truth, truth.eigenspaces(), sampler, dom.generators())
    if cfg.domain == "sphere":
        dom = grid_from_rows(cfg.grid, cfg.res)  # e.g. Driscoll–Healy 16×16, or 16 centred rings × 32
        L = lmax_for(cfg.k)
        if num_harmonics(L) != cfg.k:
            raise ValueError(f"on the sphere k must be a square (full degrees), got {cfg.k}")
        lt = dom.bandlimit
        truth = dom.analytic_eigenbasis(num_harmonics(lt))
        sampler = SpherePairs(dom.points, cfg.channels, lmax=cfg.lmax, alpha=cfg.alpha, images=images)
        Y = dom.harmonics(lt)
        return Problem(dom, truth, truth.eigenspaces(), sampler, dom.generators(),
                       sphere={"degrees": np.arange(lt + 1), "harmonics": Y})
    if cfg.domain == "mesh":
        dom = TriMesh.icosphere(cfg.res)
        L = lmax_for(cfg.k)
        n_truth = min(dom.n, (L + 2) ** 2)
        truth = dom.eigenbasis(n_truth, cache=False)
        sizes = [2 * l + 1 for l in range(L + 2)]
        starts = np.cumsum([0] + sizes)
        spaces = [np.arange(a, b) for a, b in itertools.pairwise(starts) if b <= n_truth]
        sampler = SpherePairs(dom.points, cfg.channels, lmax=cfg.lmax, alpha=cfg.alpha, images=images)
        # icosahedral symmetries map the icosphere's vertices onto themselves: exact permutations
        return Problem(dom, truth, spaces, sampler, dom.generators(), reference_mass=dom.mass)
    raise ValueError(f"domain must be torus, sphere or mesh, got {cfg.domain!r}")
