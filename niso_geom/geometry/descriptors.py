"""Spectral shape descriptors: heat kernel signature (HKS) and wave kernel signature (WKS).

Both take an eigenbasis (anything with ``evals`` (K,) and ``evecs`` (N, K),
M-orthonormal) and return per-vertex features (N, T).

Scaling: with the unnormalized HKS (``scale_invariant=False``), scaling a surface
by s multiplies eigenvalues by 1/s² and M-orthonormal eigenvectors by 1/s, so
HKS_sX(v, t) = HKS_X(v, t/s²)/s². Pass ``normalize="area"`` to rescale the basis to
unit total area first, which makes the signature invariant to uniform scaling.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def _unpack(eigenbasis) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    evals = np.asarray(eigenbasis.evals, dtype=np.float64)
    evecs = np.asarray(eigenbasis.evecs, dtype=np.float64)
    mass = getattr(eigenbasis, "mass", None)
    return evals, evecs, None if mass is None else np.asarray(mass, dtype=np.float64)


def _area_normalize(evals, evecs, mass, normalize):
    if normalize is None:
        return evals, evecs
    if normalize != "area":
        raise ValueError(f"normalize must be None or 'area', got {normalize!r}")
    if mass is None:
        raise ValueError("normalize='area' needs an eigenbasis with a mass vector")
    area = mass.sum()
    # scaling to unit area: λ → λ·A, φ → φ·√A
    return evals * area, evecs * np.sqrt(area)


def default_hks_times(n: int = 16, lo: float = -2.0, hi: float = 0.0) -> np.ndarray:
    """n log-spaced diffusion times in 10^[lo, hi] (the paper: 16 in 10^[−2, 0])."""
    return np.logspace(lo, hi, n)


def heat_kernel_signature(eigenbasis, times: np.ndarray | None = None, *,
                          normalize: Literal["area"] | None = None) -> np.ndarray:
    """HKS(v, t) = Σ_k exp(−λ_k t) φ_k(v)²: (N, T).

    Parameters
    ----------
    eigenbasis : object with ``evals`` (K,), ``evecs`` (N, K) (and ``mass`` for normalize).
    times : (T,) diffusion times; default 16 log-spaced in [0.01, 1].
    normalize : None (as the paper) or "area" (unit total area: scale invariant).
    """
    evals, evecs, mass = _unpack(eigenbasis)
    evals, evecs = _area_normalize(evals, evecs, mass, normalize)
    t = default_hks_times() if times is None else np.asarray(times, dtype=np.float64).ravel()
    if np.any(t <= 0):
        raise ValueError(f"diffusion times must be positive, got min {t.min()}")
    return (evecs**2) @ np.exp(-np.outer(evals, t))


def wave_kernel_signature(eigenbasis, n_energies: int = 16, *, sigma_factor: float = 7.0,
                          normalize: Literal["area"] | None = None, skip_zero: bool = True) -> np.ndarray:
    """WKS (Aubry et al. 2011): band-pass filters log-normal in the eigenvalue, (N, E).

    Energies e are evenly spaced in [log λ_min, log λ_max] over the non-zero
    eigenvalues; σ = sigma_factor × spacing; each row is normalized by Σ_k filter.
    """
    evals, evecs, mass = _unpack(eigenbasis)
    evals, evecs = _area_normalize(evals, evecs, mass, normalize)
    keep = evals > 1e-10 * max(1.0, evals.max()) if skip_zero else np.ones_like(evals, bool)
    lam, phi = evals[keep], evecs[:, keep]
    if lam.size < 2:
        raise ValueError("WKS needs at least two non-zero eigenvalues")
    loglam = np.log(lam)
    e = np.linspace(loglam.min(), loglam.max(), n_energies)
    sigma = sigma_factor * (e[1] - e[0]) if n_energies > 1 else 1.0
    filt = np.exp(-((e[None, :] - loglam[:, None]) ** 2) / (2.0 * sigma**2))  # (K, E)
    return (phi**2) @ filt / filt.sum(axis=0, keepdims=True)
