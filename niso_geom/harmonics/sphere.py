"""Real spherical harmonics.

Convention (docs/conventions.md): z is the polar axis, θ colatitude, φ longitude;
orthonormal on the unit sphere (∫ Y_lm Y_l'm' dΩ = δ); no Condon–Shortley phase;
ordered by degree l, then m = −l..l, flat index l² + l + m. Real harmonics are

    m > 0:  √2 · N̄_lm P_l^m(cos θ) cos(mφ)
    m = 0:       N̄_l0 P_l(cos θ)
    m < 0:  √2 · N̄_l|m| P_l^|m|(cos θ) sin(|m|φ)

so degree 1 is √(3/4π)·(y, z, x). They are eigenfunctions of the positive
Laplace–Beltrami operator with eigenvalue l(l+1).
"""

from __future__ import annotations

import numpy as np


def sh_index(l: int, m: int) -> int:
    """Flat index of (l, m): l² + l + m."""
    if abs(m) > l:
        raise ValueError(f"|m| must be ≤ l, got l={l}, m={m}")
    return l * l + l + m


def sh_degrees(lmax: int) -> np.ndarray:
    """Degree of each of the (lmax+1)² flat indices."""
    return np.repeat(np.arange(lmax + 1), 2 * np.arange(lmax + 1) + 1)


def num_harmonics(lmax: int) -> int:
    return (lmax + 1) ** 2


def lmax_for(k: int) -> int:
    """Smallest lmax with (lmax+1)² ≥ k."""
    return int(np.ceil(np.sqrt(k))) - 1


def _normalized_legendre(lmax: int, x: np.ndarray) -> np.ndarray:
    """p[l, m, n] with Y_lm^complex = p_lm(x) e^{imφ} orthonormal on the sphere (m ≥ 0, no CS phase)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    s = np.sqrt(np.maximum(0.0, 1.0 - x * x))
    p = np.zeros((lmax + 1, lmax + 1, x.size))
    p[0, 0] = 1.0 / np.sqrt(4.0 * np.pi)
    for m in range(1, lmax + 1):
        p[m, m] = np.sqrt((2.0 * m + 1.0) / (2.0 * m)) * s * p[m - 1, m - 1]
    for m in range(0, lmax):
        p[m + 1, m] = np.sqrt(2.0 * m + 3.0) * x * p[m, m]
    for m in range(0, lmax + 1):
        for l in range(m + 2, lmax + 1):
            a = np.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
            p[l, m] = a * (x * p[l - 1, m] - b * p[l - 2, m])
    return p


def real_sph_harm_angles(lmax: int, colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Real SH at angles: (N,) colatitudes and longitudes → (N, (lmax+1)²)."""
    colat = np.asarray(colat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if colat.shape != lon.shape:
        raise ValueError(f"colat and lon must have the same shape, got {colat.shape} and {lon.shape}")
    p = _normalized_legendre(lmax, np.cos(colat))
    Y = np.empty((colat.size, num_harmonics(lmax)))
    r2 = np.sqrt(2.0)
    for l in range(lmax + 1):
        Y[:, sh_index(l, 0)] = p[l, 0]
        for m in range(1, l + 1):
            Y[:, sh_index(l, m)] = r2 * p[l, m] * np.cos(m * lon)
            Y[:, sh_index(l, -m)] = r2 * p[l, m] * np.sin(m * lon)
    return Y


def xyz_to_angles(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (..., 3) → colatitude θ ∈ [0, π] and longitude φ ∈ [0, 2π)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    r = np.linalg.norm(xyz, axis=-1)
    if np.any(r == 0):
        raise ValueError("cannot take the direction of a zero vector")
    colat = np.arccos(np.clip(xyz[..., 2] / r, -1.0, 1.0))
    lon = np.mod(np.arctan2(xyz[..., 1], xyz[..., 0]), 2.0 * np.pi)
    return colat, lon


def angles_to_xyz(colat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Colatitude and longitude → unit vectors (..., 3)."""
    s = np.sin(colat)
    return np.stack([s * np.cos(lon), s * np.sin(lon), np.cos(colat)], axis=-1)


def real_sph_harm(lmax: int, xyz: np.ndarray) -> np.ndarray:
    """Real SH at points (N, 3) (normalized to the unit sphere) → (N, (lmax+1)²)."""
    colat, lon = xyz_to_angles(np.asarray(xyz).reshape(-1, 3))
    return real_sph_harm_angles(lmax, colat, lon)


def sh_eigenvalues(lmax: int) -> np.ndarray:
    """l(l+1) for each flat index up to lmax."""
    l = sh_degrees(lmax)
    return (l * (l + 1)).astype(np.float64)
