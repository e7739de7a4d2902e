"""Quadrature rules of spherical grids (colatitude θ ∈ [0, π], longitude φ ∈ [0, 2π)).

Every rule returns ring colatitudes and latitude weights whose product with the
uniform longitude weight 2π/W sums to 4π. ``bandlimit`` is the largest degree L
such that real spherical harmonics of degree ≤ L are orthonormal under the rule
to machine precision (products have degree ≤ 2L).
"""

from __future__ import annotations

import numpy as np


def clenshaw_curtis(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Colatitudes θ_i = π i/(nlat−1) (both poles) and Clenshaw–Curtis weights in cos θ (sum 2).

    Exact for polynomials in cos θ of degree ≤ nlat − 1.
    """
    if nlat < 2:
        raise ValueError(f"a pole-to-pole grid needs nlat ≥ 2, got {nlat}")
    n = nlat - 1
    theta = np.pi * np.arange(nlat) / n
    w = np.empty(nlat)
    j = np.arange(1, n // 2 + 1)
    b = np.where(2 * j == n, 1.0, 2.0)
    for k in range(nlat):
        s = np.sum(b / (4.0 * j**2 - 1.0) * np.cos(2.0 * j * theta[k]))
        c = 1.0 if k in (0, n) else 2.0
        w[k] = c / n * (1.0 - s)
    return theta, w


def fejer1(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centred colatitudes θ_i = π(i+½)/nlat and Fejér's first-rule weights (sum 2).

    Exact for polynomials in cos θ of degree ≤ nlat − 1.
    """
    theta = np.pi * (np.arange(nlat) + 0.5) / nlat
    j = np.arange(1, nlat // 2 + 1)
    w = np.array([2.0 / nlat * (1.0 - 2.0 * np.sum(np.cos(2 * j * t) / (4.0 * j**2 - 1.0))) for t in theta])
    return theta, w


def driscoll_healy(bandwidth: int) -> tuple[np.ndarray, np.ndarray]:
    """Driscoll–Healy 2B rings θ_j = πj/(2B) (north pole included) and weights in cos θ (sum 2).

    w_j = (2/B)·sin(πj/2B)·Σ_{k<B} sin((2k+1)πj/2B)/(2k+1)  (Driscoll & Healy 1994, scaled to ∫dx = 2).
    Exact for polynomials in cos θ of degree ≤ 2B − 1.
    """
    B = int(bandwidth)
    if B < 1:
        raise ValueError(f"Driscoll–Healy bandwidth must be ≥ 1, got {bandwidth}")
    j = np.arange(2 * B)
    theta = np.pi * j / (2 * B)
    k = np.arange(B)
    s = np.sum(np.sin((2 * k[None, :] + 1) * theta[:, None]) / (2 * k[None, :] + 1), axis=1)
    w = (2.0 / B) * np.sin(theta) * s
    return theta, w


def gauss_legendre(nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre rings (ascending colatitude) and weights (sum 2); exact to degree 2·nlat − 1."""
    x, w = np.polynomial.legendre.leggauss(nlat)
    order = np.argsort(-x)  # θ ascending ⇔ cos θ descending
    return np.arccos(x[order]), w[order]
