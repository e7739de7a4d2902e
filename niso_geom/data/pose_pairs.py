"""Pairs of band-limited spherical signals related by known rotations, for pose regression.

Every signal is a set of real-SH coefficients c ((L+1)², C) of degree ≤ L; a pair is
(x, Tx) = (Y(p) c, Y(Rᵀp) c) at a grid's points p, so Tx = x(Rᵀ·) holds exactly at every point
(equivalently Tx = Y D(R) c with the Wigner-D matrix D), and the label R is known.

Signals (``kind``):

* ``"fields"`` — isotropic random fields, c_lm ~ N(0, (l+1)^−α) (:func:`~niso_geom.data.signals.sh_power`);
* ``"cap"`` — "camera" images: each channel is a periodic power-law random image (a natural-image
  spectrum, :func:`~niso_geom.data.signals.torus_random_fields`) seen through a gnomonic
  (pin-hole) projection on a spherical cap of the given radius around the optical axis +x, tapered
  by cos² of the angle to the axis, then band-limited to degree L by quadrature on a fine
  Gauss–Legendre grid. Channels are drawn from a fixed bank of such images (``CapBank``), so a
  training bank and a disjoint evaluation bank play the role of train and test images.

Rotations (``rotations``): ``"haar"`` (uniform on SO(3)) or ``"camera"`` (axis uniform on the
sphere, angle uniform in [0, max_angle]: small camera motions).

NumPy in and out (the matrix products run in torch, on its intra-op threads); deterministic
given a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from niso_geom.data.signals import sh_power, torus_random_fields
from niso_geom.domains.sphere import SphereGrid
from niso_geom.geometry.rotations import rotation_about
from niso_geom.harmonics.sphere import num_harmonics, real_sph_harm
from niso_geom.harmonics.wigner import random_rotation

__all__ = ["ROTATION_KINDS", "SIGNAL_KINDS", "CapBank", "PosePairs", "axis_angle_rotations", "sample_rotations"]

SIGNAL_KINDS = ("fields", "cap")
ROTATION_KINDS = ("haar", "camera")


#: Rodrigues rotations, axes (n, 3) and angles (n,) → (n, 3, 3); the geometry core's :func:`rotation_about`.
axis_angle_rotations = rotation_about


def sample_rotations(n: int, rng: np.random.Generator, kind: str = "haar", max_angle_deg: float = 45.0) -> np.ndarray:
    """(n, 3, 3) rotations: ``"haar"`` uniform on SO(3); ``"camera"`` uniform axis, angle ~ U[0, max_angle]."""
    if kind == "haar":
        return random_rotation(rng, size=n)
    if kind == "camera":
        if not 0.0 < max_angle_deg <= 180.0:
            raise ValueError(f"max_angle must be in (0, 180] degrees, got {max_angle_deg}")
        axes = rng.standard_normal((n, 3))
        angles = rng.uniform(0.0, np.radians(max_angle_deg), n)
        return rotation_about(axes, angles)
    raise ValueError(f"rotations must be one of {ROTATION_KINDS}, got {kind!r}")


def _bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of (n, h, w) images at fractional pixel coordinates (Q,) -> (n, Q) (clamped)."""
    n, h, w = images.shape
    r = np.clip(rows, 0.0, h - 1.0)
    c = np.clip(cols, 0.0, w - 1.0)
    r0 = np.minimum(np.floor(r).astype(np.int64), h - 2)
    c0 = np.minimum(np.floor(c).astype(np.int64), w - 2)
    tr, tc = r - r0, c - c0
    flat = images.reshape(n, -1)
    i00, i01, i10, i11 = r0 * w + c0, r0 * w + c0 + 1, (r0 + 1) * w + c0, (r0 + 1) * w + c0 + 1
    return (flat[:, i00] * (1 - tr) * (1 - tc) + flat[:, i01] * (1 - tr) * tc
            + flat[:, i10] * tr * (1 - tc) + flat[:, i11] * tr * tc)


@dataclass
class CapBank:
    """A fixed bank of single-channel "camera" signals: SH coefficients (size, (L+1)²).

    Parameters
    ----------
    size : number of images.
    lmax : band limit L.
    seed : seeds the images (train and evaluation banks use different seeds).
    radius_deg : angular radius of the cap (the field of view's half-angle).
    res : image side in pixels.
    alpha : image amplitude spectrum ∝ |f|^−α.
    quad_nlat : rings of the Gauss–Legendre grid used for the SH projection.
    """

    size: int
    lmax: int
    seed: int = 0
    radius_deg: float = 60.0
    res: int = 32
    alpha: float = 1.5
    quad_nlat: int = 48

    def __post_init__(self) -> None:
        if not 0.0 < self.radius_deg < 90.0:
            raise ValueError(f"cap radius must be in (0, 90) degrees for a gnomonic view, got {self.radius_deg}")
        if self.size < 1:
            raise ValueError(f"a cap bank needs at least one image, got size={self.size}")
        quad = SphereGrid.gauss_legendre(self.quad_nlat)
        p = quad.points
        radius = np.radians(self.radius_deg)
        inside = p[:, 0] > np.cos(radius)
        q = p[inside]
        angle = np.arccos(np.clip(q[:, 0], -1.0, 1.0))
        window = np.cos(0.5 * np.pi * angle / radius) ** 2
        t = np.tan(radius)
        u, v = q[:, 1] / q[:, 0] / t, q[:, 2] / q[:, 0] / t  # gnomonic image coordinates in [-1, 1]
        cols = 0.5 * (u + 1.0) * (self.res - 1)
        rows = 0.5 * (1.0 - v) * (self.res - 1)
        weighted_Y = real_sph_harm(self.lmax, q) * (quad.mass[inside] * window)[:, None]  # (Q, K)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(7,)))
        coeffs = []
        for start in range(0, self.size, 1024):
            n = min(1024, self.size - start)
            images = torus_random_fields(self.res, self.res, n, rng, alpha=self.alpha).reshape(n, self.res, self.res)
            coeffs.append(_bilinear(images, rows, cols) @ weighted_Y)
        c = np.concatenate(coeffs)
        c *= np.sqrt(4.0 * np.pi / np.mean(np.sum(c * c, axis=1)))  # unit mean power over the sphere
        self.coeffs = c

    def draw(self, n: int, channels: int, rng: np.random.Generator) -> np.ndarray:
        """Coefficients (n, (L+1)², channels), each channel a random image of the bank."""
        idx = rng.integers(0, self.size, size=(n, channels))
        return np.moveaxis(self.coeffs[idx], -1, 1)


class PosePairs:
    """Pairs (x, Tx = x(Rᵀ·), R) of C-channel signals of degree ≤ ``lmax`` at ``points`` (N, 3).

    Parameters
    ----------
    points : unit vectors (N, 3), e.g. a SphereGrid's points.
    channels : C.
    lmax : band limit of the signals.
    kind : ``"fields"`` or ``"cap"`` (then ``bank`` is required).
    alpha : power-law exponent of the fields.
    rotations, max_angle_deg : the default rotation distribution (see :func:`sample_rotations`).
    bank : a :class:`CapBank` for ``kind="cap"``.
    """

    def __init__(self, points: np.ndarray, channels: int, lmax: int, *, kind: str = "fields", alpha: float = 1.0,
                 rotations: str = "haar", max_angle_deg: float = 45.0, bank: CapBank | None = None) -> None:
        if kind not in SIGNAL_KINDS:
            raise ValueError(f"signals must be one of {SIGNAL_KINDS}, got {kind!r}")
        if rotations not in ROTATION_KINDS:
            raise ValueError(f"rotations must be one of {ROTATION_KINDS}, got {rotations!r}")
        if kind == "cap" and (bank is None or bank.lmax != lmax):
            raise ValueError(f"cap signals need a CapBank of degree {lmax}, got {bank!r}")
        self.points = np.asarray(points, dtype=np.float64)
        self.channels, self.lmax, self.kind = int(channels), int(lmax), kind
        self.rotations, self.max_angle_deg = rotations, float(max_angle_deg)
        self.bank = bank
        self.Y = real_sph_harm(self.lmax, self.points)  # (N, K)
        self._Yt = torch.from_numpy(self.Y)
        self._std = np.sqrt(sh_power(self.lmax, alpha))

    @property
    def num_coefficients(self) -> int:
        return num_harmonics(self.lmax)

    def coefficients(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """SH coefficients (n, (L+1)², C) of n signals."""
        if self.kind == "cap":
            return self.bank.draw(n, self.channels, rng)
        return rng.standard_normal((n, self.num_coefficients, self.channels)) * self._std[None, :, None]

    def sample(self, n: int, rng: np.random.Generator, rotations: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (n, N, C), Tx (n, N, C) and R (n, 3, 3), float64; ``rotations`` overrides the default kind.

        ``Tx(p) = Σ c Y(Rᵀp)``: the harmonics are evaluated at the rotated points, which is the
        rotated band-limited signal exactly (the same as applying Wigner-D to c).
        """
        c = self.coefficients(n, rng)
        R = sample_rotations(n, rng, rotations or self.rotations, self.max_angle_deg)
        Yr = real_sph_harm(self.lmax, (self.points @ R).reshape(-1, 3)).reshape(n, len(self.points), -1)  # rows Rᵀp
        # products in torch: one thread, no BLAS oversubscription on a busy machine
        ct = torch.from_numpy(c)
        x = (self._Yt @ ct.transpose(0, 1).reshape(ct.shape[1], -1)).reshape(-1, n, self.channels).transpose(0, 1)
        tx = torch.from_numpy(Yr) @ ct
        return x.contiguous().numpy(), tx.numpy(), R
