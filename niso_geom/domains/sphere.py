"""Spherical grids (equiangular, Driscoll–Healy, Gauss–Legendre, HEALPix) with quadrature
mass, real spherical harmonics, Laplacians and rotations."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from niso_geom.domains.base import Domain
from niso_geom.geometry import quadrature
from niso_geom.geometry.rotations import axis_rotation
from niso_geom.geometry.stencils import latlon_stiffness
from niso_geom.harmonics.sphere import (
    angles_to_xyz,
    lmax_for,
    num_harmonics,
    real_sph_harm_angles,
    sh_degrees,
    sh_eigenvalues,
    xyz_to_angles,
)
from niso_geom.harmonics.wigner import random_rotation, wigner_D, wigner_D_all
from niso_geom.spectral.eigenbasis import Eigenbasis

GridKind = Literal["equiangular", "equiangular-centred", "driscoll-healy", "gauss-legendre", "healpix"]

# every name a user may give for a grid kind (CLI flags, configs) -> the kind; one meaning everywhere
GRID_NAMES: dict[str, GridKind] = {
    "equiangular": "equiangular", "ea": "equiangular",
    "centred": "equiangular-centred", "equiangular-centred": "equiangular-centred",
    "dh": "driscoll-healy", "driscoll-healy": "driscoll-healy",
    "gl": "gauss-legendre", "gauss-legendre": "gauss-legendre",
    "healpix": "healpix",
}


def grid_kind(name: str) -> GridKind:
    """The grid kind a name means (``dh`` → ``driscoll-healy``, ``centred`` → ``equiangular-centred``, ...)."""
    try:
        return GRID_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown sphere grid {name!r}; choose from {', '.join(GRID_NAMES)}") from None


def grid_from_rows(kind: GridKind, res: int) -> SphereGrid:
    """The sphere grid of ``kind`` at resolution ``res``: its number of latitude rows for the
    latitude-longitude grids (Driscoll–Healy: ``res`` = 2B, even), the nside for HEALPix."""
    if kind == "driscoll-healy":
        if res % 2:
            raise ValueError(f"a Driscoll–Healy grid has an even number of rows (2B), got {res}")
        return SphereGrid.driscoll_healy(res // 2)
    if kind == "healpix":
        return SphereGrid.healpix(res)
    if kind == "gauss-legendre":
        return SphereGrid.gauss_legendre(res)
    return SphereGrid.equiangular(res, poles=kind == "equiangular")  # 2·res longitudes


class SphereGrid(Domain):
    """Samples of the unit sphere with quadrature weights (total 4π).

    Build with a constructor: :meth:`equiangular`, :meth:`driscoll_healy`,
    :meth:`gauss_legendre` or :meth:`healpix`. Lat–lon grids are laid out
    row-major by ring (colatitude ascending, north first) then longitude
    φ_j = 2πj/W, so ``to_grid`` gives (..., C, H, W) images.

    ``bandlimit`` is the largest degree L whose real harmonics are orthonormal under
    the grid's quadrature to rounding: products of degree ≤ 2L are integrated exactly.

    Examples
    --------
    >>> g = SphereGrid.driscoll_healy(8)
    >>> g.shape, g.bandlimit, bool(abs(g.mass.sum() - 4 * 3.141592653589793) < 1e-12)
    ((16, 16), 7, True)
    """

    kind = "sphere"

    def __init__(self, grid: GridKind, colat: np.ndarray, lon: np.ndarray, mass: np.ndarray,
                 bandlimit: int, shape: tuple[int, int] | None, params: dict[str, Any]):
        self.grid = grid
        self.colat = np.asarray(colat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self._mass = np.asarray(mass, dtype=np.float64)
        self.bandlimit = int(bandlimit)
        self.shape = shape
        self._params = {"grid": grid, **params}
        for a in (self.colat, self.lon, self._mass):
            a.setflags(write=False)

    # --- constructors ---------------------------------------------------------------------
    @classmethod
    def _latlon(cls, grid: GridKind, theta: np.ndarray, wlat: np.ndarray, nlon: int, bandlimit: int,
                params: dict[str, Any]) -> SphereGrid:
        if nlon < 1:
            raise ValueError(f"nlon must be ≥ 1, got {nlon}")
        lon = 2.0 * np.pi * np.arange(nlon) / nlon
        T, P = np.meshgrid(theta, lon, indexing="ij")
        mass = np.repeat(wlat, nlon) * (2.0 * np.pi / nlon)
        bl = min(bandlimit, (nlon - 1) // 2)
        g = cls(grid, T.ravel(), P.ravel(), mass, bl, (len(theta), nlon), params)
        g.ring_colat = theta
        return g

    @classmethod
    def equiangular(cls, nlat: int, nlon: int | None = None, *, poles: bool = True) -> SphereGrid:
        """Equiangular lat–lon grid.

        ``poles=True`` (the paper's 96×192): rings θ_i = πi/(nlat−1) including both poles,
        Clenshaw–Curtis weights. ``poles=False``: cell-centred rings θ_i = π(i+½)/nlat,
        Fejér weights. Longitudes φ_j = 2πj/nlon without the duplicated 2π column of the
        official code. ``nlon`` defaults to 2·nlat.
        """
        nlon = 2 * nlat if nlon is None else int(nlon)
        theta, w = quadrature.clenshaw_curtis(nlat) if poles else quadrature.fejer1(nlat)
        kind = "equiangular" if poles else "equiangular-centred"
        return cls._latlon(kind, theta, w, nlon, (nlat - 1) // 2, {"nlat": nlat, "nlon": nlon})

    @classmethod
    def driscoll_healy(cls, bandwidth: int) -> SphereGrid:
        """Driscoll–Healy 2B×2B grid (north pole included), exact for degrees < B."""
        theta, w = quadrature.driscoll_healy(bandwidth)
        return cls._latlon("driscoll-healy", theta, w, 2 * bandwidth, bandwidth - 1, {"bandwidth": bandwidth})

    @classmethod
    def gauss_legendre(cls, nlat: int, nlon: int | None = None) -> SphereGrid:
        """Gauss–Legendre rings × uniform longitudes (nlon defaults to 2·nlat)."""
        nlon = 2 * nlat if nlon is None else int(nlon)
        theta, w = quadrature.gauss_legendre(nlat)
        return cls._latlon("gauss-legendre", theta, w, nlon, nlat - 1, {"nlat": nlat, "nlon": nlon})

    @classmethod
    def healpix(cls, nside: int, *, bandlimit: int | None = None) -> SphereGrid:
        """HEALPix pixel centres (RING order, via healpy) with band-limit-exact weights.

        The weights are the minimum-norm correction of the equal-area weights 4π/N that
        integrates every harmonic of degree ≤ 2L exactly (L = ``bandlimit``, default
        nside), so harmonics of degree ≤ L are orthonormal to rounding.
        """
        import healpy as hp

        if nside < 1 or (nside & (nside - 1)):
            raise ValueError(f"HEALPix nside must be a power of 2, got {nside}")
        npix = hp.nside2npix(nside)
        colat, lon = hp.pix2ang(nside, np.arange(npix))
        L = nside if bandlimit is None else int(bandlimit)
        if (2 * L + 1) ** 2 > npix:
            raise ValueError(f"bandlimit {L} too high for nside {nside}: need (2L+1)² ≤ {npix}")
        Y = real_sph_harm_angles(2 * L, colat, lon).T  # ((2L+1)², N)
        w0 = np.full(npix, 4.0 * np.pi / npix)
        target = np.zeros(Y.shape[0])
        target[0] = np.sqrt(4.0 * np.pi)
        corr = np.linalg.lstsq(Y, target - Y @ w0, rcond=None)[0]
        mass = w0 + corr
        if (mass <= 0).any():
            raise ValueError(f"HEALPix nside {nside} bandlimit {L}: quadrature weights not positive")
        return cls("healpix", colat, lon, mass, L, None, {"nside": nside, "bandlimit": L})

    # --- Domain interface -----------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @cached_property
    def points(self) -> np.ndarray:
        """(N, 3) unit vectors."""
        p = angles_to_xyz(self.colat, self.lon)
        p.setflags(write=False)
        return p

    @property
    def mass(self) -> np.ndarray:
        """(N,) quadrature weights, total 4π (zero on the Driscoll–Healy north-pole ring, by design)."""
        return self._mass

    @cached_property
    def _fv(self) -> tuple[sp.csr_matrix, np.ndarray]:
        if self.shape is not None:
            return latlon_stiffness(self.ring_colat, self.shape[1])
        from scipy.spatial import ConvexHull

        from niso_geom.geometry.laplacian import mesh_operators

        hull = ConvexHull(self.points)
        ops = mesh_operators(self.points, hull.simplices, method="cotan")
        return ops.stiffness, ops.mass

    @property
    def stiffness(self) -> sp.csr_matrix:
        """Sparse stiffness: finite volumes on lat–lon grids (poles as wedges of the polar cap),
        the cotan Laplacian of the convex-hull triangulation for HEALPix."""
        return self._fv[0]

    @property
    def cell_areas(self) -> np.ndarray:
        """Areas of the cells the sparse stiffness is built on (its consistent lumped mass)."""
        return self._fv[1]

    def _compute_eigenbasis(self, k: int, *, method: str, cache: Any) -> Eigenbasis:
        # the sparse operator's own lumped mass keeps M⁻¹S consistent near the poles;
        # the returned basis is re-normalized in the quadrature inner product.
        from niso_geom.spectral.solve import eigensolve

        eb = eigensolve(self.stiffness, self.cell_areas, k, method=method)
        V = eb.evecs / np.sqrt(np.einsum("nk,n,nk->k", eb.evecs, self.mass, eb.evecs))[None, :]
        return Eigenbasis(eb.evals, V, self.mass, {**eb.info, "mass": "quadrature (solved with cell areas)"})

    @property
    def has_analytic_basis(self) -> bool:
        return True

    def harmonics(self, lmax: int) -> np.ndarray:
        """Real SH of degree ≤ lmax at the grid points: (N, (lmax+1)²)."""
        return real_sph_harm_angles(lmax, self.colat, self.lon)

    def analytic_eigenbasis(self, k: int) -> Eigenbasis:
        """The first k real spherical harmonics (eigenvalues l(l+1)), orthonormal when the
        degree of the k-th is within ``bandlimit``."""
        lmax = lmax_for(k)
        if lmax > self.bandlimit:
            raise ValueError(
                f"{self!r}: k={k} needs degree {lmax} but harmonics are orthonormal on this grid only up to"
                f" degree {self.bandlimit}; use a finer grid or k ≤ {num_harmonics(self.bandlimit)}"
            )
        Y = self.harmonics(lmax)[:, :k]
        return Eigenbasis(sh_eigenvalues(lmax)[:k], Y, self.mass,
                          {"method": "analytic", "degrees": sh_degrees(lmax)[:k]})

    def spectral_stiffness(self, lmax: int | None = None) -> spla.LinearOperator:
        """Rank-K spectral (SH) stiffness S = M Y diag(l(l+1)) Yᵀ M as a LinearOperator.

        Exact on signals band-limited to ``lmax`` (default: the grid's bandlimit).
        """
        lmax = self.bandlimit if lmax is None else int(lmax)
        Y = self.harmonics(lmax)
        MY = self.mass[:, None] * Y
        lam = sh_eigenvalues(lmax)

        def mv(x):
            x = np.asarray(x, dtype=np.float64)
            return (MY @ (lam[:, None] * (MY.T @ x.reshape(self.n, -1)))).reshape(x.shape)

        return spla.LinearOperator((self.n, self.n), matvec=mv, matmat=mv, rmatvec=mv, dtype=np.float64)

    # --- layout --------------------------------------------------------------------------
    def _require_latlon(self) -> tuple[int, int]:
        if self.shape is None:
            raise ValueError(f"{self.grid} grids have no (H, W) image layout")
        return self.shape

    def to_grid(self, x: np.ndarray) -> np.ndarray:
        """(..., N, C) → (..., C, H, W) on lat–lon grids."""
        H, W = self._require_latlon()
        x = np.asarray(x)
        return np.moveaxis(x.reshape(*x.shape[:-2], H, W, x.shape[-1]), -1, -3)

    def to_flat(self, x: np.ndarray) -> np.ndarray:
        """(..., C, H, W) → (..., N, C)."""
        H, W = self._require_latlon()
        x = np.moveaxis(np.asarray(x), -3, -1)
        return x.reshape(*x.shape[:-3], H * W, x.shape[-1])

    # --- rotations -----------------------------------------------------------------------
    def sh_coefficients(self, x: np.ndarray, lmax: int | None = None) -> np.ndarray:
        """Quadrature SH transform: (N,) → ((lmax+1)²,), (..., N, C) → (..., (lmax+1)², C)."""
        lmax = self.bandlimit if lmax is None else int(lmax)
        Y = self.harmonics(lmax)
        x = np.asarray(x, dtype=np.float64)
        return Y.T @ (self.mass[:, None] * x if x.ndim > 1 else self.mass * x)

    def rotate(self, x: np.ndarray, R: np.ndarray, *, method: Literal["spectral", "resample"] = "spectral",
               lmax: int | None = None) -> np.ndarray:
        """Rotate signals: (R·f)(p) = f(Rᵀ p), for x of shape (N,) or (..., N, C) ((N,) or (N, C) to resample).

        ``"spectral"`` applies Wigner-D to the SH coefficients up to ``lmax`` (default the
        bandlimit): exact for band-limited signals. ``"resample"`` interpolates f at Rᵀp
        (bilinear on lat–lon grids, healpy's interpolation on HEALPix): any signal, O(h²).
        """
        R = np.asarray(R, dtype=np.float64)
        if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-8) or np.linalg.det(R) < 0:
            raise ValueError("R must be a 3×3 rotation matrix")
        if method == "spectral":
            lmax = self.bandlimit if lmax is None else int(lmax)
            c = self.sh_coefficients(x, lmax)
            if c.ndim == 1:
                Dc = np.concatenate([wigner_D(l, R) @ c[l * l:(l + 1) ** 2] for l in range(lmax + 1)])
            else:
                Dc = np.concatenate([wigner_D(l, R) @ c[..., l * l:(l + 1) ** 2, :] for l in range(lmax + 1)], -2)
            return self.harmonics(lmax) @ Dc
        if method == "resample":
            return self.interpolate(x, self.points @ R)  # rows: Rᵀ p
        raise ValueError(f"method must be 'spectral' or 'resample', got {method!r}")

    def interpolate(self, x: np.ndarray, xyz: np.ndarray) -> np.ndarray:
        """Values of grid signals x (N,) or (N, C) at arbitrary unit vectors (Q, 3)."""
        x = np.asarray(x, dtype=np.float64)
        colat, lon = xyz_to_angles(np.asarray(xyz).reshape(-1, 3))
        if self.shape is None:
            import healpy as hp

            cols = x[:, None] if x.ndim == 1 else x
            out = np.stack([hp.get_interp_val(cols[:, c], colat, lon) for c in range(cols.shape[1])], 1)
            return out[:, 0] if x.ndim == 1 else out
        return _latlon_bilinear(self.to_grid(x[:, None] if x.ndim == 1 else x), self.ring_colat,
                                colat, lon, squeeze=x.ndim == 1)

    # --- the rotation group: t = R, a rotation (3, 3) ------------------------------------
    def sample_transform(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """A Haar-random rotation (3, 3); with ``size``, (size, 3, 3)."""
        return random_rotation(rng, size=size)

    def transform(self, x: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Rotate signals (N,) or (..., N, C) by R: (R·f)(p) = f(Rᵀp), exactly on the band (:meth:`rotate`)."""
        return self.rotate(x, R)

    def rotation_operator(self, R: np.ndarray, lmax: int | None = None) -> np.ndarray:
        """Dense band-limited rotation operator Y D(R) Yᵀ W (N, N), Y the harmonics of degree ≤ lmax
        (default the bandlimit) and W the quadrature mass: exactly f ↦ f(Rᵀ·) on signals of that band."""
        lmax = self.bandlimit if lmax is None else int(lmax)
        return self._rotation_operator(self.harmonics(lmax), lmax, R)

    def _rotation_operator(self, Y: np.ndarray, lmax: int, R: np.ndarray) -> np.ndarray:
        return Y @ wigner_D_all(lmax, R) @ (Y.T * self.mass[None, :])

    def generators(self, lmax: int | None = None, angle: float = np.pi / 8) -> list[np.ndarray]:
        """Band-limited rotation operators (:meth:`rotation_operator`, dense (N, N)) for rotations by
        ``angle`` about the x, y and z axes. For angle π/8 they generate a dense subgroup of SO(3), so an
        operator that commutes with all three commutes with every rotation on the band."""
        lmax = self.bandlimit if lmax is None else int(lmax)
        Y = self.harmonics(lmax)
        return [self._rotation_operator(Y, lmax, axis_rotation(a, angle)) for a in range(3)]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["bandlimit"] = self.bandlimit
        if self.shape is not None:
            d["shape"] = list(self.shape)
        return d


def _latlon_bilinear(img: np.ndarray, ring_colat: np.ndarray, colat: np.ndarray, lon: np.ndarray,
                     squeeze: bool) -> np.ndarray:
    """Bilinear interpolation of (C, H, W) lat–lon images at (colat, lon), periodic in φ and
    continued across the poles (the ring beyond a pole is the first ring turned by π)."""
    _, H, W = img.shape
    dphi = 2.0 * np.pi / W

    def ring_values(r: np.ndarray, phi: np.ndarray) -> np.ndarray:
        u = np.mod(phi, 2 * np.pi) / dphi
        j0 = np.floor(u).astype(np.int64) % W
        s = u - np.floor(u)
        return img[:, r, j0] * (1 - s) + img[:, r, (j0 + 1) % W] * s  # (C, Q)

    ext = np.concatenate([[-ring_colat[0]], ring_colat, [2 * np.pi - ring_colat[-1]]])
    i = np.clip(np.searchsorted(ext, colat, side="right") - 1, 0, len(ext) - 2)
    lo, hi = ext[i], ext[i + 1]
    t = np.where(hi > lo, (colat - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)

    def value_at(e: np.ndarray) -> np.ndarray:  # e: extended ring index
        r = np.clip(e - 1, 0, H - 1)
        flip = (e == 0) | (e == H + 1)
        return ring_values(r, lon + np.where(flip, np.pi, 0.0))

    out = (value_at(i) * (1 - t) + value_at(i + 1) * t).T  # (Q, C)
    return out[:, 0] if squeeze else out
