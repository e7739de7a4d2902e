"""Möbius transformations of the unit sphere, in their SL(2, C) representation.

Conventions
-----------
* **Stereographic projection** is taken *from the north pole* ``(0, 0, 1)`` onto the
  equatorial plane ``z = 0``::

      ζ = (x + i y) / (1 − z),        x + i y = 2ζ / (1 + |ζ|²),   z = (|ζ|² − 1) / (|ζ|² + 1)

  so the south pole maps to ``ζ = 0`` and the north pole to ``ζ = ∞``.
* A complex 2×2 matrix ``A = [[a, b], [c, d]]`` acts by ``ζ ↦ (aζ + b) / (cζ + d)``.
  Matrices are normalised to ``det A = 1`` (``A`` and ``−A`` are the same map).
  ``mobius_compose(A, B)`` is ``A ∘ B`` (apply ``B`` first), i.e. the matrix product ``A @ B``.
* Points are never pushed through ζ itself. Each point is lifted to a unit *spinor*
  ``[u : v]`` with ``ζ = u / v`` using whichever of two exact charts is well conditioned
  (``[x + iy : 1 − z]`` on the southern hemisphere, ``[1 + z : x − iy]`` on the northern
  one), the matrix is applied to the spinor, and the result is mapped back by the Hopf
  map ``x + iy = 2 u v̄ / (|u|² + |v|²)``, ``z = (|u|² − |v|²) / (|u|² + |v|²)``. There is
  no division by ``1 − z`` anywhere, so points at or near either pole are exact (the
  official NIso code instead zeroes near-pole points, see docs/algorithm.md §7 item 19).
* Rotations ``R ∈ SO(3)`` correspond to ``U ∈ SU(2)`` through
  ``mobius_apply(U, X) == X @ R.T`` (see :func:`rotation_to_su2`).
* A **boost** by a point ``c`` of the open unit ball is the hyperbolic translation of the
  ball that moves the origin to ``c``; on the sphere it is
  ``x ↦ (1 − |c|²)(x + c) / |x + c|² + c`` and pushes mass towards ``c / |c|``; its
  conformal factor ranges over ``[(1 − |c|)/(1 + |c|), (1 + |c|)/(1 − |c|)]``.

Only NumPy/SciPy; no torch.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "fit_mobius",
    "inverse_stereographic",
    "mobius_apply",
    "mobius_boost",
    "mobius_center",
    "mobius_compose",
    "mobius_conformal_factor",
    "mobius_inverse",
    "mobius_max_scale",
    "mobius_polar",
    "mobius_residual",
    "normalize_sl2",
    "random_mobius",
    "random_rotation",
    "rotation_to_su2",
    "sphere_to_spinor",
    "spinor_to_sphere",
    "stereographic",
    "su2_to_rotation",
]

_I2 = np.eye(2, dtype=np.complex128)


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.shape[-1] != 3:
        raise ValueError(f"points on the sphere must have a trailing dimension 3, got shape {X.shape}")
    n = np.linalg.norm(X, axis=-1, keepdims=True)
    if np.any(n == 0) or not np.all(np.isfinite(n)):
        raise ValueError("points on the sphere must be finite and non-zero")
    return X / n


# --------------------------------------------------------------------------- projections


def stereographic(X: np.ndarray) -> np.ndarray:
    """Stereographic coordinate ζ (complex, shape ``X.shape[:-1]``) of points on the unit sphere.

    Projection from the north pole; the north pole itself maps to ``complex(inf, 0)``.
    Use :func:`sphere_to_spinor` where points may sit at or near the north pole.
    """
    P = sphere_to_spinor(X)
    u, v = P[..., 0], P[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = u / v
    return np.where(v == 0, complex(np.inf, 0.0), z)


def inverse_stereographic(z: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (``z.shape + (3,)``) from stereographic coordinates; ``inf`` ↦ north pole."""
    z = np.asarray(z, dtype=np.complex128)
    inf = ~np.isfinite(z)
    zz = np.where(inf, 0.0, z)
    P = np.stack([zz, np.ones_like(zz)], axis=-1)
    P[inf] = np.array([1.0, 0.0], dtype=np.complex128)
    return spinor_to_sphere(P)


def sphere_to_spinor(X: np.ndarray) -> np.ndarray:
    """Unit spinors ``[u, v]`` (complex, ``(..., 2)``) with ``u / v`` the stereographic coordinate of ``X``.

    ``X`` is normalised first. The chart is chosen per point so that no coordinate is
    divided by a small number: ``[x + iy, 1 − z]`` for ``z ≤ 0``, ``[1 + z, x − iy]`` for ``z > 0``.
    """
    X = _unit(X)
    x, y, z = X[..., 0], X[..., 1], X[..., 2]
    south = z <= 0
    u = np.where(south, x + 1j * y, 1.0 + z)
    v = np.where(south, 1.0 - z, x - 1j * y)
    P = np.stack([u, v], axis=-1).astype(np.complex128)
    return P / np.linalg.norm(P, axis=-1, keepdims=True)


def spinor_to_sphere(P: np.ndarray) -> np.ndarray:
    """Hopf map: spinors ``[u, v]`` (``(..., 2)``, any non-zero scale) to unit vectors ``(..., 3)``."""
    P = np.asarray(P, dtype=np.complex128)
    u, v = P[..., 0], P[..., 1]
    au, av = np.abs(u), np.abs(v)
    n2 = au * au + av * av
    w = 2.0 * u * np.conj(v) / n2
    X = np.stack([w.real, w.imag, (au * au - av * av) / n2], axis=-1)
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- SL(2, C)


def normalize_sl2(A: np.ndarray) -> np.ndarray:
    """Scale ``A`` (``(..., 2, 2)``) to determinant 1 (the sign of the square root is arbitrary)."""
    A = np.asarray(A, dtype=np.complex128)
    det = A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
    if np.any(np.abs(det) == 0) or not np.all(np.isfinite(det)):
        raise ValueError("a Möbius matrix must be invertible and finite")
    return A / np.sqrt(det)[..., None, None]


def mobius_apply(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply the Möbius transformation ``A`` (2×2 complex) to points ``X`` (``(..., 3)``) on the unit sphere.

    ``A`` may also be a stack ``(B, 2, 2)`` applied to ``X`` of shape ``(B, N, 3)``.
    Robust at both poles (see module docstring); returns unit vectors of the same shape as ``X``.
    """
    A = np.asarray(A, dtype=np.complex128)
    P = sphere_to_spinor(X)
    if A.ndim == 2:
        Q = P @ A.T
    else:
        Q = np.einsum("...ij,...nj->...ni", A, P)
    return spinor_to_sphere(Q)


def mobius_compose(*As: np.ndarray) -> np.ndarray:
    """Composition ``A1 ∘ A2 ∘ … ∘ Ak`` (``Ak`` applied first) as a normalised SL(2, C) matrix."""
    if not As:
        return _I2.copy()
    out = np.asarray(As[0], dtype=np.complex128)
    for A in As[1:]:
        out = out @ np.asarray(A, dtype=np.complex128)
    return normalize_sl2(out)


def mobius_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse transformation: for ``det A = 1``, ``[[d, −b], [−c, a]]``."""
    A = normalize_sl2(A)
    out = np.empty_like(A)
    out[..., 0, 0] = A[..., 1, 1]
    out[..., 1, 1] = A[..., 0, 0]
    out[..., 0, 1] = -A[..., 0, 1]
    out[..., 1, 0] = -A[..., 1, 0]
    return out


def _quat_to_su2(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    U = np.empty(q.shape[:-1] + (2, 2), dtype=np.complex128)
    U[..., 0, 0] = w + 1j * z
    U[..., 0, 1] = -y + 1j * x
    U[..., 1, 0] = y + 1j * x
    U[..., 1, 1] = w - 1j * z
    return U


def rotation_to_su2(R: np.ndarray) -> np.ndarray:
    """SU(2) matrix ``U`` with ``mobius_apply(U, X) == X @ R.T`` for a rotation ``R`` (``(..., 3, 3)``).

    For the rotation by angle θ about the unit axis ``n`` (quaternion ``w = cos θ/2``,
    ``(x, y, z) = sin θ/2 · n``): ``U = [[w + iz, −y + ix], [y + ix, w − iz]]``. This is
    the textbook ``exp(−iθ n·σ/2)`` conjugated by the reflection ``y ↦ −y``, which comes
    from projecting from the north pole (``ζ = (x + iy)/(1 − z)``).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape (..., 3, 3), got {R.shape}")
    if not np.allclose(np.linalg.det(R), 1.0, atol=1e-6):
        raise ValueError("rotation_to_su2 needs proper rotations (det R = 1)")
    # Shepperd's method on each matrix, choosing the largest pivot.
    Rf = R.reshape(-1, 3, 3)
    q = np.empty((len(Rf), 4))
    for k, M in enumerate(Rf):
        tr = np.trace(M)
        piv = int(np.argmax([tr, M[0, 0], M[1, 1], M[2, 2]]))
        if piv == 0:
            s = 2.0 * np.sqrt(1.0 + tr)
            q[k] = [0.25 * s, (M[2, 1] - M[1, 2]) / s, (M[0, 2] - M[2, 0]) / s, (M[1, 0] - M[0, 1]) / s]
        elif piv == 1:
            s = 2.0 * np.sqrt(max(1.0 + M[0, 0] - M[1, 1] - M[2, 2], 0.0))
            q[k] = [(M[2, 1] - M[1, 2]) / s, 0.25 * s, (M[0, 1] + M[1, 0]) / s, (M[0, 2] + M[2, 0]) / s]
        elif piv == 2:
            s = 2.0 * np.sqrt(max(1.0 + M[1, 1] - M[0, 0] - M[2, 2], 0.0))
            q[k] = [(M[0, 2] - M[2, 0]) / s, (M[0, 1] + M[1, 0]) / s, 0.25 * s, (M[1, 2] + M[2, 1]) / s]
        else:
            s = 2.0 * np.sqrt(max(1.0 + M[2, 2] - M[0, 0] - M[1, 1], 0.0))
            q[k] = [(M[1, 0] - M[0, 1]) / s, (M[0, 2] + M[2, 0]) / s, (M[1, 2] + M[2, 1]) / s, 0.25 * s]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return _quat_to_su2(q).reshape(R.shape[:-2] + (2, 2))


def su2_to_rotation(U: np.ndarray) -> np.ndarray:
    """Rotation matrix ``R`` of a unitary Möbius matrix (inverse of :func:`rotation_to_su2`).

    ``U`` is normalised to ``det U = 1``; a non-unitary input (a transform that is not a
    rotation) raises ``ValueError``.
    """
    U = normalize_sl2(U)
    if not np.allclose(U @ np.conj(np.swapaxes(U, -1, -2)), _I2, atol=1e-6):
        raise ValueError("su2_to_rotation needs a unitary matrix (a rotation of the sphere)")
    w = 0.5 * (U[..., 0, 0] + U[..., 1, 1]).real
    z = 0.5 * (U[..., 0, 0] - U[..., 1, 1]).imag
    x = 0.5 * (U[..., 0, 1] + U[..., 1, 0]).imag
    y = 0.5 * (U[..., 1, 0] - U[..., 0, 1]).real
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    R = np.empty(U.shape[:-2] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def mobius_boost(c: np.ndarray) -> np.ndarray:
    """SL(2, C) matrix of the boost (hyperbolic translation) moving the ball's origin to ``c``, ``|c| < 1``.

    On the sphere this is ``x ↦ (1 − |c|²)(x + c)/|x + c|² + c``: it expands the
    neighbourhood of ``−c/|c|`` by ``(1 + |c|)/(1 − |c|)`` and contracts that of ``c/|c|``
    by the inverse factor. Its rapidity (hyperbolic distance moved) is ``2 artanh |c|``.
    ``c`` may be a stack ``(..., 3)``.
    """
    c = np.asarray(c, dtype=np.float64)
    s = np.linalg.norm(c, axis=-1)
    if np.any(s >= 1.0):
        raise ValueError(f"a boost needs |c| < 1, got |c| = {np.max(s):.6g}")
    out = np.empty(c.shape[:-1] + (2, 2), dtype=np.complex128)
    out[...] = _I2
    nz = s > 0
    if np.any(nz):
        n = c[nz] / s[nz, None]
        lam = np.sqrt((1.0 + s[nz]) / (1.0 - s[nz]))
        # Along +z the boost is ζ ↦ λζ, λ = (1+s)/(1−s). For axis n it is the Hermitian matrix
        # cosh(r/2) I + sinh(r/2) (n_x σ_x − n_y σ_y + n_z σ_z) with e^{r} = λ, which reduces to
        # diag(√λ, 1/√λ) for n = z; the y sign follows the north-pole projection (see rotation_to_su2).
        ch = 0.5 * (lam + 1.0 / lam)
        sh = 0.5 * (lam - 1.0 / lam)
        B = np.empty((len(n), 2, 2), dtype=np.complex128)
        B[:, 0, 0] = ch + sh * n[:, 2]
        B[:, 1, 1] = ch - sh * n[:, 2]
        B[:, 0, 1] = sh * (n[:, 0] + 1j * n[:, 1])
        B[:, 1, 0] = sh * (n[:, 0] - 1j * n[:, 1])
        out[nz] = B
    return out


def random_rotation(rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Haar-uniform rotation(s) of SO(3) as SU(2) matrices (a uniform unit quaternion)."""
    q = rng.normal(size=(1 if size is None else size, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    U = _quat_to_su2(q)
    return U[0] if size is None else U


def random_mobius(rng: np.random.Generator, boost: float = 0.2, size: int | None = None) -> np.ndarray:
    """Random Möbius transformation(s): a Haar-random rotation composed with a random boost.

    ``A = R ∘ B(c)`` (boost first, as in the official ``xform_mobius``): the boost point
    ``c`` has a uniformly random direction and norm ``|c| ~ U[0, boost]``, so ``boost``
    (in ``[0, 1)``) bounds its strength: the local scale factor stays within
    ``[(1 − boost)/(1 + boost), (1 + boost)/(1 − boost)]`` (1.5× for the default).

    The default 0.2 is the ``SHIFT`` of the official cshrec11 config and the default of its
    (unused) ``xform_mobius``, the only boost strength the official code states; the 30
    Möbius views of its pre-computed SHREC_11_CONF data came without their parameters
    (docs/algorithm.md §4.5). Unlike ``xform_mobius``, the rotation here is Haar-uniform
    and the boost direction uniform on the sphere. Returns ``(2, 2)`` or ``(size, 2, 2)``.
    """
    if not 0.0 <= boost < 1.0:
        raise ValueError(f"boost must lie in [0, 1), got {boost}")
    n = 1 if size is None else size
    R = random_rotation(rng, n)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    c = d * (boost * rng.uniform(size=(n, 1)))
    A = normalize_sl2(R @ mobius_boost(c))
    return A[0] if size is None else A


def mobius_conformal_factor(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Conformal factor (linear scale, ``(N,)``) of ``A`` at the points ``X`` (``(N, 3)``) of the unit sphere.

    With ``p`` the unit spinor of ``x`` and ``det A = 1``, the round metric is pulled back by
    ``|p|⁴ / |Ap|⁴``, so the linear scale at ``x`` is ``1 / |A p|²``.
    """
    A = normalize_sl2(A)
    AP = sphere_to_spinor(X) @ A.T
    return 1.0 / np.sum(np.abs(AP) ** 2, axis=-1)


def mobius_max_scale(A: np.ndarray) -> np.ndarray | float:
    """Largest linear scale factor ``k`` of ``A`` on the sphere (``(..., 2, 2)`` → ``(...)``): ``1 / σ_min(A)²``.

    For ``det A = 1``, :func:`mobius_conformal_factor` is ``1 / |A p|²`` over unit spinors, so it
    ranges over ``[1/σ_max², 1/σ_min²] = [1/k, k]`` with ``k = σ_max² = 1/σ_min²``; ``k = 1``
    exactly for rotations, ``(1 + |c|)/(1 − |c|)`` for the boost by ``c``. ``A`` and ``A⁻¹`` have
    the same ``k``.
    """
    s = np.linalg.svd(normalize_sl2(A), compute_uv=False)
    k = s[..., 0] / s[..., -1]  # σ_max / σ_min = σ_max² when det = 1, and robust to rounding
    return float(k) if np.ndim(k) == 0 else k


def mobius_polar(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``A = U @ P`` into a rotation ``U ∈ SU(2)`` and a boost ``P`` (Hermitian positive, det 1)."""
    A = normalize_sl2(A)
    W, s, Vh = np.linalg.svd(A)
    U = normalize_sl2(W @ Vh)
    P = normalize_sl2((np.conj(np.swapaxes(Vh, -1, -2)) * s[..., None, :]) @ Vh)
    return U, P


def hermitian_power(P: np.ndarray, t: float) -> np.ndarray:
    w, Q = np.linalg.eigh(P)
    return normalize_sl2((Q * (w**t)[None, :]) @ np.conj(Q.T))


def mobius_center(
    X: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Möbius transformation that moves the weighted centroid of ``X`` (``(N, 3)``, on the sphere) to the origin.

    This is the conformal (Douady–Earle) barycentre: repeatedly take the weighted
    centroid ``c`` of the current points and apply the boost that sends ``c`` to the
    origin, ``x ↦ (1 − |c|²)(x − c)/|x − c|² − c``, with step halving whenever the
    centroid would grow. The centred configuration is unique up to a rotation.

    Returns ``(A, A·X)`` with ``A`` in SL(2, C), the product of the boosts applied (a
    product of boosts along different axes carries a small rotation; ``mobius_polar``
    separates it).
    """
    Y = _unit(X)
    w = np.ones(len(Y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(Y),) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be a non-negative finite (N,) vector with positive sum")
    w = w / w.sum()
    A = _I2.copy()
    c = w @ Y
    nc = np.linalg.norm(c)
    alpha = 1.0
    for _ in range(max_iter):
        if nc < tol:
            break
        step = -alpha * c
        ns = np.linalg.norm(step)
        if ns > 0.95:
            step *= 0.95 / ns
        B = mobius_boost(step)
        Yn = mobius_apply(B, Y)
        cn = w @ Yn
        ncn = np.linalg.norm(cn)
        if ncn < nc:
            Y, c, nc, A = Yn, cn, ncn, B @ A
            alpha = min(1.0, 2.0 * alpha)
        else:
            alpha *= 0.5
            if alpha < 1e-12:
                break
    return normalize_sl2(A), Y


def mobius_residual(A: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Great-circle distance (radians, ``(N,)``) between ``A·X`` and ``Y``."""
    Z = mobius_apply(A, X)
    Y = _unit(Y)
    return 2.0 * np.arcsin(np.clip(0.5 * np.linalg.norm(Z - Y, axis=-1), 0.0, 1.0))


def fit_mobius(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    refine: bool = True,
    return_residual: bool = False,
):
    """Least-squares Möbius transformation ``A`` with ``A·X ≈ Y`` from correspondences on the sphere.

    1. Linear (DLT) fit in homogeneous stereographic coordinates: with unit spinors
       ``p`` of ``X`` and ``q`` of ``Y``, each correspondence gives the linear equation
       ``q₀ (A p)₁ − q₁ (A p)₀ = 0`` in the four entries of ``A``; the smallest right
       singular vector of the stacked system is the fit. Because unit spinors are used,
       points at or near the poles enter with the same weight as any other (no point is
       dropped or zeroed). The residual of a row is ``|Ap| · sin(d/2)`` for a great-circle
       error ``d``, so a few re-weighting passes by ``1/|Ap|`` turn the fit into a chordal
       least-squares fit.
    2. ``refine=True``: Levenberg–Marquardt on the 3-D chordal residuals ``A·X − Y``.

    ``X``, ``Y``: ``(N, 3)`` with ``N ≥ 3``; ``weights``: optional ``(N,)``. Returns ``A``
    (normalised to det 1), and with ``return_residual=True`` also the RMS great-circle
    error in radians.
    """
    X = _unit(X)
    Y = _unit(Y)
    if X.shape != Y.shape or X.ndim != 2 or len(X) < 3:
        raise ValueError(f"fit_mobius needs two (N, 3) arrays with N >= 3, got {X.shape} and {Y.shape}")
    w = np.ones(len(X)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(X),) or np.any(w < 0) or not np.isfinite(w).all():
        raise ValueError("weights must be a non-negative finite (N,) vector")
    sw = np.sqrt(w)
    P = sphere_to_spinor(X)
    Q = sphere_to_spinor(Y)
    rows = np.stack([-Q[:, 1] * P[:, 0], -Q[:, 1] * P[:, 1], Q[:, 0] * P[:, 0], Q[:, 0] * P[:, 1]], axis=1)
    rw = np.ones(len(X))
    A = _I2.copy()
    for _ in range(4):
        _, _, Vh = np.linalg.svd(rows * (sw * rw)[:, None], full_matrices=False)
        h = np.conj(Vh[-1])
        A = h.reshape(2, 2)
        AP = P @ A.T
        nrm = np.linalg.norm(AP, axis=1)
        if np.any(nrm == 0):
            break
        rw = 1.0 / nrm
    A = normalize_sl2(A)
    if refine:
        from scipy.optimize import least_squares

        def res(p):
            M = (p[:4] + 1j * p[4:]).reshape(2, 2)
            return ((mobius_apply(M, X) - Y) * sw[:, None]).ravel()

        p0 = np.concatenate([A.ravel().real, A.ravel().imag])
        sol = least_squares(res, p0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200 * 8)
        A1 = normalize_sl2((sol.x[:4] + 1j * sol.x[4:]).reshape(2, 2))
        if np.sum(res(sol.x) ** 2) <= np.sum(res(p0) ** 2):
            A = A1
    if return_residual:
        d = mobius_residual(A, X, Y)
        return A, float(np.sqrt(np.sum(w * d * d) / max(w.sum(), 1e-300)))
    return A
