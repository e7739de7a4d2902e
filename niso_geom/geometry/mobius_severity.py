"""How hard a conformal SHREC'11 view is: the random Möbius transforms of the views, by mode and severity.

Three modes draw the SL(2, ℂ) matrix ``A`` of a view (``view = A · base map``):

``rotation``
    A Haar-random rotation (``severity`` must be 0: rotations have none).
``boost``
    :func:`~niso_geom.geometry.mobius.random_mobius`: a boost with ``|c| ~ U[0, severity]``
    in a uniform direction, then a Haar-random rotation (``severity`` in [0, 1), default 0.2,
    the ``SHIFT`` of the official config).
``paper``
    The official ``ExtMobius(shift=1.2)`` of ``docs/algorithm.md`` §4.5, applied to the *mesh*
    in 3-D: centre the vertices on their mean, scale so the farthest vertex has radius 0.9,
    then ``x ↦ (1 − |c|²)(x + c)/|x + c|² + c`` (:func:`inversion_3d`) with ``|c| = severity``
    (default 1.2, must exceed 0.9) in a uniform direction. The deformed mesh has the same
    conformal structure but a very different area distribution, so its conformal map to the
    sphere is the base map re-centred on the deformed mesh's vertex areas
    (:func:`~niso_geom.geometry.mobius.mobius_center`), then a Haar-random rotation. A larger
    ``|c|`` is a *milder* view (``|c| → ∞`` tends to a reflection through the origin, an isometry).

``k`` (:func:`~niso_geom.geometry.mobius.mobius_max_scale`) is the largest linear scale factor
of a view, its conformal factor at the most expanded point. :func:`fresh_map_view` computes the
alternative the ``paper`` mode does not use (a fresh conformal map of the deformed mesh and the
Möbius fit to it), to measure how far the two are apart (docs/cshrec11.md).

NumPy/SciPy only; no torch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from niso_geom.geometry.conformal import sphere_map_quality, spherical_conformal_map
from niso_geom.geometry.mobius import (
    fit_mobius,
    mobius_apply,
    mobius_center,
    mobius_max_scale,
    normalize_sl2,
    random_mobius,
    random_rotation,
)

__all__ = [
    "DEFAULT_MODE",
    "DEFAULT_SEVERITY",
    "MOBIUS_MODES",
    "PAPER_RADIUS",
    "check_severity",
    "draw_view_transforms",
    "fresh_map_view",
    "inversion_3d",
    "normalize_for_inversion",
    "paper_view_transform",
    "vertex_areas",
]

MOBIUS_MODES = ("rotation", "boost", "paper")
DEFAULT_MODE = "paper"
DEFAULT_SEVERITY = {"rotation": 0.0, "boost": 0.2, "paper": 1.2}
#: ExtMobius scales the mesh so its farthest vertex lies at this radius.
PAPER_RADIUS = 0.9


def check_severity(mode: str, severity: float | None) -> float:
    """The severity of ``mode`` (its default for None), or ValueError naming the mode and value."""
    if mode not in MOBIUS_MODES:
        raise ValueError(f"unknown Möbius mode {mode!r}; choose one of {', '.join(MOBIUS_MODES)}")
    if severity is None:
        return DEFAULT_SEVERITY[mode]
    s = float(severity)
    if not np.isfinite(s):
        raise ValueError(f"--severity must be finite, got {severity}")
    if mode == "rotation" and s != 0.0:
        raise ValueError(f"--mobius rotation has no severity (got {s}); leave --severity out or give 0")
    if mode == "boost" and not 0.0 <= s < 1.0:
        raise ValueError(f"--mobius boost needs --severity in [0, 1) (the largest |c| of the boost), got {s}")
    if mode == "paper" and not s > PAPER_RADIUS:
        raise ValueError(f"--mobius paper needs --severity > {PAPER_RADIUS} (|c| of the 3-D inversion; the mesh "
                         f"fills the ball of radius {PAPER_RADIUS}, so a smaller |c| puts the pole on it), got {s}")
    return s


def normalize_for_inversion(V: np.ndarray) -> np.ndarray:
    """(N, 3) vertices centred on their mean and scaled so the farthest lies at :data:`PAPER_RADIUS`."""
    X = np.asarray(V, dtype=np.float64)
    X = X - X.mean(axis=0)
    r = np.linalg.norm(X, axis=1).max()
    if not r > 0:
        raise ValueError("the mesh has no extent (all vertices coincide)")
    return X * (PAPER_RADIUS / r)


def inversion_3d(X: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``x ↦ (1 − |c|²)(x + c)/|x + c|² + c`` on points ``X`` (..., 3) of R³ (``c``: (3,)).

    A Möbius transformation of R³ (an inversion in the sphere of centre ``−c`` and a
    scaling): conformal wherever defined, and it maps the unit sphere onto itself for every
    ``|c| ≠ 1``. ValueError where a point is within 1e-9 of the pole ``−c``.
    """
    X = np.asarray(X, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    d = X + c
    n2 = np.sum(d * d, axis=-1, keepdims=True)
    if np.any(n2 < 1e-18):
        raise ValueError(f"inversion_3d: a point lies on the pole -c = {(-c).tolist()}")
    return (1.0 - c @ c) * d / n2 + c


def vertex_areas(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Barycentric lumped vertex areas (N,): a third of each incident triangle's area."""
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    a = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    return np.bincount(F.ravel(), weights=np.repeat(a / 3.0, 3), minlength=len(V))


def paper_view_transform(sphere: np.ndarray, V: np.ndarray, F: np.ndarray, c: np.ndarray,
                         rotation: np.ndarray | None = None) -> np.ndarray:
    """SL(2, ℂ) matrix of one ``paper`` view: the base map ``sphere`` (N, 3) re-centred on the
    vertex areas of the mesh ``(V, F)`` deformed by :func:`inversion_3d` with ``c``, then ``rotation``
    (an SU(2) matrix; None: none)."""
    deformed = inversion_3d(normalize_for_inversion(V), c)
    A, _ = mobius_center(sphere, vertex_areas(deformed, F))
    return normalize_sl2(A if rotation is None else rotation @ A)


def _uniform_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def draw_view_transforms(rng: np.random.Generator, mode: str, severity: float | None, count: int, *,
                         sphere: np.ndarray | None = None, V: np.ndarray | None = None,
                         F: np.ndarray | None = None) -> np.ndarray:
    """``count`` view transforms (count, 2, 2) complex of ``mode`` at ``severity`` from ``rng``.

    The ``paper`` mode needs the mesh ``V, F`` and its base map ``sphere``; for each view it
    draws the direction of ``c`` and then the rotation.
    """
    s = check_severity(mode, severity)
    if count == 0:
        return np.zeros((0, 2, 2), dtype=np.complex128)
    if mode == "rotation":
        return random_rotation(rng, count)
    if mode == "boost":
        return random_mobius(rng, s, size=count)
    if sphere is None or V is None or F is None:
        raise ValueError("the paper mode needs the mesh (V, F) and its sphere map")
    out = np.empty((count, 2, 2), dtype=np.complex128)
    for i in range(count):
        c = s * _uniform_directions(rng, 1)[0]
        out[i] = paper_view_transform(sphere, V, F, c, random_rotation(rng))
    return out


def _kabsch(X: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rotation R minimising Σ w |R x − y|²."""
    H = (X * w[:, None]).T @ Y
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    return Vt.T @ D @ U.T


def fresh_map_view(V: np.ndarray, F: np.ndarray, sphere: np.ndarray, c: np.ndarray, *,
                   name: str = "mesh") -> dict[str, Any]:
    """Compare the two ways of mapping the deformed mesh of a ``paper`` view to the sphere.

    ``fresh``: :func:`~niso_geom.geometry.conformal.spherical_conformal_map` of the deformed
    mesh, and the Möbius ``A_fit`` fitted from the base map ``sphere`` to it (with its RMS
    great-circle residual). ``recentred``: :func:`paper_view_transform` without rotation.
    Returns both ``k``, the fit residual (degrees), the RMS and maximum angle (degrees) between
    the fresh map and the re-centred one after the best rotation (the centring fixes a map up
    to a rotation), both maps' mean angle error against the deformed mesh, and seconds.
    """
    deformed = inversion_3d(normalize_for_inversion(V), c)
    t0 = time.perf_counter()
    fresh, report = spherical_conformal_map(deformed, F, name=name)
    seconds_fresh = time.perf_counter() - t0
    A_fit, resid = fit_mobius(sphere, fresh, return_residual=True)
    t0 = time.perf_counter()
    A_rec = paper_view_transform(sphere, V, F, c)
    seconds_rec = time.perf_counter() - t0
    rec = mobius_apply(A_rec, sphere)
    w = vertex_areas(deformed, F)
    R = _kabsch(rec, fresh, w)
    ang = np.degrees(np.arccos(np.clip(np.sum((rec @ R.T) * fresh, axis=1), -1.0, 1.0)))
    return {"k_fresh": float(mobius_max_scale(A_fit)), "k_recentred": float(mobius_max_scale(A_rec)),
            "fit_residual_deg": float(np.degrees(resid)),
            "angle_rms_deg": float(np.sqrt(np.sum(w * ang**2) / w.sum())), "angle_max_deg": float(ang.max()),
            "angle_error_fresh": float(report.angle_error_mean),
            "angle_error_recentred": float(sphere_map_quality(deformed, F, rec).angle_error_mean),
            "n_flipped_fresh": int(report.n_flipped), "seconds_fresh": seconds_fresh,
            "seconds_recentred": seconds_rec}
