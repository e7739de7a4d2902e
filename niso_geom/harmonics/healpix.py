"""HEALPix interop: spherical-harmonic coefficients in healpy's convention, and NESTED order.

Our real harmonics (``niso_geom.harmonics.sphere``) are orthonormal, without the Condon–Shortley
phase, ordered by degree l then m = −l..l (flat index l² + l + m), with

    Y_l0 = p_l0,   Y_l,m = √2 p_lm cos(mφ),   Y_l,−m = √2 p_lm sin(mφ)      (m > 0)

where p_lm(cos θ) e^{imφ} is the orthonormal complex harmonic without the phase. healpy's complex
harmonics carry the Condon–Shortley phase, Y^hp_lm = (−1)^m p_lm e^{imφ}, and a real map
f = Σ a_lm Y^hp_lm has a_l,−m = (−1)^m conj(a_lm), so healpy stores m ≥ 0 only. Writing out the
m and −m terms,

    f = Σ_l a_l0 p_l0 + Σ_{m>0} 2 (−1)^m p_lm (Re a_lm cos mφ − Im a_lm sin mφ),

so with our coefficients c (f = Σ c_lm Y_lm):

    c_l0 = a_l0,   c_l,m = √2 (−1)^m Re a_lm,   c_l,−m = −√2 (−1)^m Im a_lm,
    a_lm = (−1)^m (c_l,m − i c_l,−m) / √2          (m > 0).

healpy orders a_lm by m, then l (``healpy.Alm.getidx(lmax, l, m)``), for m ≤ mmax = lmax here.

Pixels: :meth:`niso_geom.domains.SphereGrid.healpix` lays pixels out in RING order (healpy's
default); :func:`ring_to_nest` / :func:`nest_to_ring` reorder any signal along its pixel axis.
"""

from __future__ import annotations

import math

import healpy as hp
import numpy as np

from niso_geom.harmonics.sphere import num_harmonics, sh_index

__all__ = ["healpy_alm_size", "nest_to_ring", "real_sh_from_healpy_alm", "real_sh_to_healpy_alm",
           "ring_to_nest"]


def healpy_alm_size(lmax: int) -> int:
    """Number of healpy a_lm (m ≥ 0) up to degree lmax: (lmax+1)(lmax+2)/2."""
    return hp.Alm.getsize(int(lmax))


def _lmax_of_real(k: int) -> int:
    lmax = math.isqrt(k) - 1
    if num_harmonics(lmax) != k:
        raise ValueError(f"{k} real SH coefficients is not a full set (lmax+1)² for any lmax")
    return lmax


def _index_tables(lmax: int) -> tuple[np.ndarray, ...]:
    """For every (l, m ≥ 0): healpy index, our index of +m and of −m, and (−1)^m √2 (1 for m = 0)."""
    l, m = hp.Alm.getlm(lmax)
    hp_idx = hp.Alm.getidx(lmax, l, m)
    plus = np.array([sh_index(a, b) for a, b in zip(l, m)])
    minus = np.array([sh_index(a, -b) for a, b in zip(l, m)])
    scale = np.where(m == 0, 1.0, np.sqrt(2.0) * (-1.0) ** m)
    return hp_idx, plus, minus, scale, m


def real_sh_to_healpy_alm(coeffs: np.ndarray) -> np.ndarray:
    """Our real SH coefficients → healpy's complex a_lm.

    Parameters
    ----------
    coeffs : (K,) or (K, C) float, K = (lmax+1)², ordered by l then m = −l..l
        (e.g. :meth:`SphereGrid.sh_coefficients`).

    Returns
    -------
    (healpy_alm_size(lmax),) or (healpy_alm_size(lmax), C) complex128, healpy's order
    (``healpy.alm2map(alm, nside)`` synthesises the same map; use ``alm[:, c]`` per channel).
    """
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim not in (1, 2):
        raise ValueError(f"coefficients must have shape (K,) or (K, C), got {c.shape}")
    lmax = _lmax_of_real(c.shape[0])
    hp_idx, plus, minus, scale, m = _index_tables(lmax)
    alm = np.zeros((healpy_alm_size(lmax),) + c.shape[1:], dtype=np.complex128)
    shape = (-1,) + (1,) * (c.ndim - 1)
    imag = np.where(m == 0, 0.0, 1.0).reshape(shape) * c[minus]
    alm[hp_idx] = (c[plus] - 1j * imag) / scale.reshape(shape)
    return alm


def real_sh_from_healpy_alm(alm: np.ndarray, lmax: int | None = None) -> np.ndarray:
    """healpy's complex a_lm (mmax = lmax) → our real SH coefficients, the inverse of
    :func:`real_sh_to_healpy_alm`.

    Parameters
    ----------
    alm : (n_alm,) or (n_alm, C) complex, healpy's order (e.g. ``healpy.map2alm(map, lmax)``).
    lmax : degree; default ``healpy.Alm.getlmax(n_alm)``.

    Returns
    -------
    ((lmax+1)²,) or ((lmax+1)², C) float64. The imaginary parts of the m = 0 terms, zero for a real
    map, are dropped.
    """
    a = np.asarray(alm)
    if a.ndim not in (1, 2):
        raise ValueError(f"alm must have shape (n_alm,) or (n_alm, C), got {a.shape}")
    lmax = hp.Alm.getlmax(a.shape[0]) if lmax is None else int(lmax)
    if lmax < 0 or healpy_alm_size(lmax) != a.shape[0]:
        raise ValueError(f"{a.shape[0]} a_lm do not match lmax={lmax} with mmax = lmax "
                         f"(expected {healpy_alm_size(max(lmax, 0))})")
    hp_idx, plus, minus, scale, m = _index_tables(lmax)
    shape = (-1,) + (1,) * (a.ndim - 1)
    v = a[hp_idx] * scale.reshape(shape)
    c = np.zeros((num_harmonics(lmax),) + a.shape[1:], dtype=np.float64)
    c[plus] = v.real
    pos = m > 0
    c[minus[pos]] = -v.imag[pos]
    return c


def _reorder(x: np.ndarray, index_of: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x)
    if x.shape[axis] != len(index_of):
        raise ValueError(f"axis {axis} has {x.shape[axis]} entries, expected {len(index_of)} HEALPix pixels")
    return np.take(x, index_of, axis=axis)


def ring_to_nest(x: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Reorder a signal from RING to NESTED pixel order along ``axis`` (any trailing channels).

    ``x`` (..., N, ...) with N = 12 nside² on ``axis``; ``healpy.reorder(m, r2n=True)`` for 1-D maps.
    """
    nside = hp.npix2nside(np.shape(x)[axis])
    return _reorder(x, hp.nest2ring(nside, np.arange(hp.nside2npix(nside))), axis)


def nest_to_ring(x: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Reorder a signal from NESTED to RING pixel order along ``axis``; inverse of :func:`ring_to_nest`."""
    nside = hp.npix2nside(np.shape(x)[axis])
    return _reorder(x, hp.ring2nest(nside, np.arange(hp.nside2npix(nside))), axis)
