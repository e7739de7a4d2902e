"""Rotations from isometric maps τ: the pose head, SO(3) lifts, geodesic errors, closed-form recovery.

The paper's pose experiment (``docs/algorithm.md`` §2.3, §3.7) freezes the NIso encoder and
operator, flattens the map τ (B, K, K) between two frames and regresses the relative pose with
a skip-MLP to 9 numbers that are lifted to SE(3). Here only the rotation is regressed:

* :class:`SkipMLP` is the reference ``skipMLP`` (``x0 = MLP(x) + Dense(x)``, then an MLP);
* :class:`PoseHead` flattens its input, runs a :class:`SkipMLP` and lifts the output to SO(3):
  ``"9d"`` by SVD special orthogonalization (the nearest rotation to a 3×3 matrix, determinant
  fixed on the smallest singular value, gradient through the closed-form polar derivative of
  :func:`~niso_geom.niso.linalg.procrustes`), or ``"6d"`` by Gram–Schmidt as the reference's
  ``lift_9d_se3`` (x = a/|a|, z = x×b/|x×b|, y = z×x, R = [x y z]);
* :func:`geodesic_angle` is the angle of R̂ᵀR (radians; :func:`geodesic_deg` in degrees),
  computed with ``atan2`` so that it stays accurate near 0 and π; :func:`orientation_loss` is the
  reference's L1 distance between rotation matrices, :func:`chordal_loss` the squared Frobenius one;
* :func:`rotation_from_wigner` recovers R in closed form from an exact Wigner-D τ in the real-SH
  basis: the degree-1 block (flat indices 1..3) is ``D¹(R) = P R Pᵀ`` with P the axis permutation
  (x, y, z) ↦ (y, z, x) (degree-1 real harmonics are √(3/4π)·(y, z, x), ``docs/conventions.md``),
  so ``R = Pᵀ D¹ P``; :func:`rotation_from_coefficients` solves the degree-1 Procrustes problem
  from the SH coefficients of a pair first (the analytic pose estimator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from niso_geom.harmonics.wigner import AXES_TO_E3NN
from niso_geom.niso.linalg import procrustes

__all__ = [
    "PoseHead",
    "RotationRep",
    "SkipMLP",
    "chordal_loss",
    "geodesic_angle",
    "geodesic_deg",
    "gram_schmidt_6d",
    "haar_mean_deg",
    "haar_median_deg",
    "lift_rotation",
    "orientation_loss",
    "rotation_from_coefficients",
    "rotation_from_wigner",
    "special_orthogonalize",
]

RotationRep = Literal["9d", "6d"]
REP_DIMS: dict[str, int] = {"9d": 9, "6d": 6}


# --------------------------------------------------------------------------------------------
# SO(3) lifts
# --------------------------------------------------------------------------------------------


def special_orthogonalize(m: torch.Tensor) -> torch.Tensor:
    """Nearest rotation to each 3×3 matrix (SVD with the determinant fix): (..., 9) or (..., 3, 3) -> (..., 3, 3).

    ``R = U diag(1, 1, det(U Vᵀ)) Vᵀ`` for ``m = U S Vᵀ``; the gradient is the closed-form polar
    derivative of :func:`~niso_geom.niso.linalg.procrustes` (finite for repeated singular values).
    """
    if m.shape[-1] == 9:
        m = m.reshape(*m.shape[:-1], 3, 3)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"expected (..., 9) or (..., 3, 3), got {tuple(m.shape)}")
    return procrustes(m, special=True, method="polar")


def gram_schmidt_6d(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The reference's 6-D lift (``lift_9d_se3`` without translation): (..., 6) -> (..., 3, 3).

    ``x = a/|a|``, ``z = (x × b)/|x × b|``, ``y = z × x``; the columns of R are (x, y, z).
    """
    if v.shape[-1] != 6:
        raise ValueError(f"expected (..., 6), got {tuple(v.shape)}")
    a, b = v[..., :3], v[..., 3:]
    x = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    z = torch.linalg.cross(x, b)
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(eps)
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], dim=-1)


def lift_rotation(v: torch.Tensor, rep: RotationRep = "9d") -> torch.Tensor:
    """Head outputs (..., 9) or (..., 6) -> rotations (..., 3, 3) with the chosen lift."""
    if rep == "9d":
        return special_orthogonalize(v)
    if rep == "6d":
        return gram_schmidt_6d(v)
    raise ValueError(f"rotation representation must be '9d' or '6d', got {rep!r}")


# --------------------------------------------------------------------------------------------
# errors and losses
# --------------------------------------------------------------------------------------------


def geodesic_angle(R1: torch.Tensor | np.ndarray, R2: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Angle (radians, in [0, π]) of ``R1ᵀ R2``, batched over leading axes: (..., 3, 3) × 2 -> (...).

    ``atan2(|A - Aᵀ|_F / √2, tr A - 1)`` with ``A = R1ᵀ R2``: exact for rotations and accurate
    near 0 and π, where ``arccos`` loses half the digits. NumPy in, NumPy out.
    """
    as_numpy = isinstance(R1, np.ndarray) and isinstance(R2, np.ndarray)
    A = torch.as_tensor(R1).mT @ torch.as_tensor(R2)
    skew = (A - A.mT).flatten(-2).norm(dim=-1) / math.sqrt(2.0)  # 2 sin θ
    cos2 = A.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0  # 2 cos θ
    angle = torch.atan2(skew, cos2)
    return angle.numpy() if as_numpy else angle


def geodesic_deg(R1: torch.Tensor | np.ndarray, R2: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """:func:`geodesic_angle` in degrees."""
    a = geodesic_angle(R1, R2)
    return np.degrees(a) if isinstance(a, np.ndarray) else torch.rad2deg(a)


def orientation_loss(R_true: torch.Tensor, R_pred: torch.Tensor) -> torch.Tensor:
    """The reference's ``orientation_loss``: mean |R_true − R_pred| over every entry (0-d)."""
    return (R_true - R_pred).abs().mean()


def chordal_loss(R_true: torch.Tensor, R_pred: torch.Tensor) -> torch.Tensor:
    """Mean squared Frobenius distance ``|R_true − R_pred|²_F`` (= 8 sin²(θ/2) for rotations) (0-d)."""
    return (R_true - R_pred).square().sum((-2, -1)).mean()


def haar_median_deg() -> float:
    """Median geodesic angle (degrees) between a Haar-random rotation and any fixed one (≈ 126.5°).

    The angle of a Haar rotation has density ``(1 − cos θ)/π`` on [0, π], so its CDF is
    ``(θ − sin θ)/π``; the median solves ``θ − sin θ = π/2`` (bisection).
    """
    lo, hi = 0.0, math.pi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if mid - math.sin(mid) < math.pi / 2:
            lo = mid
        else:
            hi = mid
    return math.degrees(0.5 * (lo + hi))


def haar_mean_deg() -> float:
    """Mean geodesic angle (degrees) between a Haar-random rotation and any fixed one: π/2 + 2/π (≈ 126.5°)."""
    return math.degrees(math.pi / 2 + 2 / math.pi)


# --------------------------------------------------------------------------------------------
# closed-form recovery from Wigner-D
# --------------------------------------------------------------------------------------------


def rotation_from_wigner(tau: torch.Tensor | np.ndarray, *, project: bool = True) -> torch.Tensor | np.ndarray:
    """R from a Wigner-D matrix in the real-SH basis: (..., K, K) with K ≥ 4 -> (..., 3, 3).

    The degree-1 block ``τ[1:4, 1:4] = D¹(R) = P R Pᵀ`` (P: (x, y, z) ↦ (y, z, x)) gives
    ``R = Pᵀ D¹ P``. With ``project`` the result is the nearest rotation (SVD with the determinant
    fix), which is R itself for an exact D and the best estimate for a noisy one. NumPy in, NumPy out.
    """
    as_numpy = isinstance(tau, np.ndarray)
    t = torch.as_tensor(tau)
    if t.shape[-1] < 4 or t.shape[-2] < 4:
        raise ValueError(f"τ needs the degree-1 block (K ≥ 4), got shape {tuple(t.shape)}")
    P = torch.as_tensor(AXES_TO_E3NN, dtype=t.dtype if t.is_floating_point() else torch.float64, device=t.device)
    R = P.mT @ t[..., 1:4, 1:4] @ P
    if project:
        R = special_orthogonalize(R)
    return R.numpy() if as_numpy else R


def rotation_from_coefficients(a_hat: torch.Tensor | np.ndarray, b_hat: torch.Tensor | np.ndarray
                               ) -> torch.Tensor | np.ndarray:
    """Analytic pose from the real-SH coefficients of a pair, ``b̂ ≈ D(R) â``: (..., K, C) × 2 -> (..., 3, 3).

    Solves the degree-1 Procrustes problem ``D¹ = argmax_{SO(3)} tr(D¹ᵀ b̂₁ â₁ᵀ)`` on rows 1..3 and
    returns ``Pᵀ D¹ P`` (exact when the pair is an exact rotation and â₁ has rank 3, e.g. C ≥ 3
    generic channels). NumPy in, NumPy out.
    """
    as_numpy = isinstance(a_hat, np.ndarray) and isinstance(b_hat, np.ndarray)
    a, b = torch.as_tensor(a_hat), torch.as_tensor(b_hat)
    if a.shape[-2] < 4 or a.shape != b.shape:
        raise ValueError(f"need matching (..., K ≥ 4, C) coefficients, got {tuple(a.shape)} and {tuple(b.shape)}")
    d1 = procrustes(b[..., 1:4, :] @ a[..., 1:4, :].mT, special=True)
    P = torch.as_tensor(AXES_TO_E3NN, dtype=d1.dtype, device=d1.device)
    R = P.mT @ d1 @ P
    return R.numpy() if as_numpy else R


# --------------------------------------------------------------------------------------------
# the head
# --------------------------------------------------------------------------------------------


class _MLP(nn.Module):
    """The reference ``MLP``: ``num_layers`` × [SiLU (skipped before the first if ``skip_init_act``) → Linear];
    hidden width ``features``, the last layer ``out_dim``."""

    def __init__(self, in_dim: int, features: int, out_dim: int, num_layers: int, skip_init_act: bool) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"an MLP needs at least one layer, got {num_layers}")
        dims = [in_dim] + [features] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.skip_init_act = skip_init_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if i > 0 or not self.skip_init_act:
                x = F.silu(x)
            x = layer(x)
        return x


class SkipMLP(nn.Module):
    """The reference ``skipMLP`` (``nn/mlp.py``): ``x0 = MLP(F, F, ⌈L/2⌉)(x) + Linear(F)(x)``, then
    ``MLP(F, out, ⌊L/2⌋, skip_init_act=False)(x0)``. (B, in_dim) -> (B, out_dim).

    ``num_layers`` ≥ 2 (the reference's pose head uses F = 512, L = 6, out = 9).
    """

    def __init__(self, in_dim: int, features: int, out_dim: int, num_layers: int = 6,
                 skip_init_act: bool = True) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"SkipMLP needs num_layers >= 2, got {num_layers}")
        n1, n2 = math.ceil(num_layers / 2), num_layers // 2
        self.first = _MLP(in_dim, features, features, n1, skip_init_act)
        self.skip = nn.Linear(in_dim, features)
        self.second = _MLP(features, features, out_dim, n2, skip_init_act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x) + self.skip(x))


class PoseHead(nn.Module):
    """Features (B, *shape) (e.g. τ (B, K, K)) -> rotations (B, 3, 3): flatten → :class:`SkipMLP` → SO(3) lift.

    Parameters
    ----------
    in_shape : shape of one input (``(K, K)`` for τ), or the flat size.
    features, num_layers : the SkipMLP's width and depth.
    rep : ``"9d"`` (SVD special orthogonalization) or ``"6d"`` (Gram–Schmidt).
    """

    def __init__(self, in_shape: int | Sequence[int], features: int = 256, num_layers: int = 4,
                 rep: RotationRep = "9d") -> None:
        super().__init__()
        if rep not in REP_DIMS:
            raise ValueError(f"rotation representation must be '9d' or '6d', got {rep!r}")
        self.in_shape = (int(in_shape),) if isinstance(in_shape, int) else tuple(int(s) for s in in_shape)
        self.rep = rep
        self.mlp = SkipMLP(int(np.prod(self.in_shape)), features, REP_DIMS[rep], num_layers)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, rep={self.rep!r}"

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The unlifted outputs (B, 9) or (B, 6)."""
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"PoseHead expects (B, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        return self.mlp(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lift_rotation(self.raw(x), self.rep)
