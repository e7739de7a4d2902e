"""Rotation matrices of R³: about a coordinate axis (exact entries) and about any axis (Rodrigues).

Haar-random rotations live beside the Wigner-D matrices (:func:`niso_geom.harmonics.wigner.random_rotation`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["axis_rotation", "rotation_about"]


def axis_rotation(axis: int, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` (radians) about coordinate axis 0 (x), 1 (y) or 2 (z): (3, 3).

    The four moving entries are exactly cos and ±sin of the angle, the rest exactly 0 and 1.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (x), 1 (y) or 2 (z), got {axis!r}")
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def rotation_about(axis: np.ndarray, angle: float | np.ndarray) -> np.ndarray:
    """Rodrigues: right-handed rotation(s) by ``angle`` about ``axis`` (normalized here).

    Broadcasts: axes (..., 3) and angles (...) (radians) → rotations (..., 3, 3);
    R = I + sin θ K + (1 − cos θ) K², K the cross-product matrix of the unit axis.
    """
    axes = np.asarray(axis, dtype=np.float64)
    if axes.shape[-1:] != (3,):
        raise ValueError(f"axes must have shape (..., 3), got {axes.shape}")
    norms = np.linalg.norm(axes, axis=-1, keepdims=True)
    if not np.all(norms > 0):
        raise ValueError("rotation axes must be non-zero")
    axes = axes / norms
    angles = np.asarray(angle, dtype=np.float64)
    x, y, z = axes[..., 0], axes[..., 1], axes[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angles)[..., None, None], np.cos(angles)[..., None, None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)
