"""Wigner-D matrices of the project's real spherical harmonics, via e3nn.

e3nn's real harmonics use the (y, z, x) axis order: evaluated at the permuted
vector u = P v = (v_y, v_z, v_x) they coincide exactly with ours (tested), so for a
rotation R
    Y_l(R v) = D^l(R) Y_l(v),   D^l(R) = D^l_e3nn(P R Pᵀ).
e3nn (and torch) are imported lazily, only when a Wigner-D matrix is requested.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg

from niso_geom.geometry.quadrature import gauss_legendre
from niso_geom.harmonics.sphere import angles_to_xyz, real_sph_harm

#: v ↦ (v_y, v_z, v_x): our axes to e3nn's.
AXES_TO_E3NN = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def to_e3nn_rotation(R: np.ndarray) -> np.ndarray:
    """Conjugate rotations (..., 3, 3) into e3nn's axis order: P R Pᵀ."""
    return AXES_TO_E3NN @ np.asarray(R, dtype=np.float64) @ AXES_TO_E3NN.T


def wigner_D(l: int, R: np.ndarray) -> np.ndarray:
    """Real Wigner-D of degree l: (..., 3, 3) rotations → (..., 2l+1, 2l+1), with Y_l(Rv) = D Y_l(v)."""
    import torch
    from e3nn import o3

    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape (..., 3, 3), got {R.shape}")
    Rt = torch.from_numpy(to_e3nn_rotation(R))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its so(3) generators in the default dtype
    try:
        with torch.no_grad():
            D = o3.Irrep(l, 1).D_from_matrix(Rt)
    finally:
        torch.set_default_dtype(previous)
    return D.numpy().astype(np.float64)


def wigner_D_blocks(lmax: int, R: np.ndarray) -> np.ndarray:
    """Block-diagonal D of all degrees ≤ lmax: (3,3) → ((lmax+1)², (lmax+1)²)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"expected one rotation (3, 3), got {R.shape}")
    return scipy.linalg.block_diag(*[wigner_D(l, R) for l in range(lmax + 1)])


def random_rotation(rng: np.random.Generator | int | None = None, size: int | None = None) -> np.ndarray:
    """Haar-random rotation(s): (3,3) or (size, 3, 3), from uniform unit quaternions."""
    rng = np.random.default_rng(rng)
    R = rotation_from_quaternions(rng.standard_normal((1 if size is None else size, 4)))
    return R[0] if size is None else R


def rotation_from_quaternions(q: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) of quaternions (n, 4) = (w, x, y, z), normalized here; Gaussian q gives
    Haar-random rotations."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def geodesic_distance(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle (radians) of R1ᵀR2, batched over leading axes."""
    tr = np.einsum("...ij,...ij->...", np.asarray(R1), np.asarray(R2))
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


@functools.lru_cache(maxsize=16)
def _wigner_quadrature(lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The quadrature of :func:`wigner_D_all`, built once per lmax: points P (Q, 3) and the weighted
    harmonics (w_q Y(p_q))ᵀ (K, Q), both read-only."""
    theta, wlat = gauss_legendre(lmax + 1)
    nlon = 2 * lmax + 2
    lon = 2 * np.pi * np.arange(nlon) / nlon
    T, Pp = np.meshgrid(theta, lon, indexing="ij")
    P = angles_to_xyz(T.ravel(), Pp.ravel())  # (Q, 3)
    W = np.repeat(wlat, nlon) * (2 * np.pi / nlon)
    YWt = np.ascontiguousarray((real_sph_harm(lmax, P) * W[:, None]).T)  # (K, Q)
    P.setflags(write=False)
    YWt.setflags(write=False)
    return P, YWt


def wigner_D_all(lmax: int, R: np.ndarray) -> np.ndarray:
    """Block-diagonal Wigner-D of all degrees ≤ lmax by exact quadrature, NumPy only and batched.

    Since Y(Rᵀp) = D(R)ᵀ Y(p), D(R) = Σ_q w_q Y(p_q) Y(Rᵀp_q)ᵀ on a Gauss–Legendre grid that
    integrates products of degree 2·lmax exactly; cross-degree blocks vanish and each block
    equals :func:`wigner_D` (tested). (..., 3, 3) → (..., (lmax+1)², (lmax+1)²); far faster than
    e3nn's matrix exponentials for many rotations. The grid is cached per lmax and the sum over
    the quadrature points is one batched matmul (20× faster than the equivalent einsum).
    """
    R = np.asarray(R, dtype=np.float64)
    P, YWt = _wigner_quadrature(lmax)
    batch = R.shape[:-2]
    Rf = R.reshape(-1, 3, 3)
    Q = P.shape[0]
    Yr = real_sph_harm(lmax, (P @ Rf).reshape(-1, 3))  # rows (Rᵀp)ᵀ = pᵀR, all rotations at once
    out = YWt @ Yr.reshape(len(Rf), Q, -1)
    return out.reshape(*batch, *out.shape[-2:])
