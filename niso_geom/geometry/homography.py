"""Planar homographies as elements of SL(3): the sl(3) basis, samplers, and the projective action.

Conventions (shared with ``niso_geom.data.homnist`` and the NIso reference code):

* **Basis.** ``SL3_BASIS[k]`` is B_{k+1} of the reference (homConv's ``lie.py`` order):
  B1 = e1e1ᵀ − I/3, B2 = e1e2ᵀ, B3 = e1e3ᵀ, B4 = e2e1ᵀ, B5 = e2e2ᵀ − I/3, B6 = e2e3ᵀ,
  B7 = e3e1ᵀ, B8 = e3e2ᵀ. A homography is A = expm(Σ c_i B_i), so det A = 1.
* **Coordinates.** Pixel (i, j) of an H×W image (row i, column j) has normalized homogeneous
  coordinates p = [2i/(H−1) − 1, 2j/(W−1) − 1, 1]: **row coordinate first**, pixel centres
  at ±1 on the border (see :func:`pixel_grid`).
* **Action.** A maps p to the point (q₀/q₂, q₁/q₂) with q = A p (:func:`apply_homography`).
  Images are warped by pull-back, (T_A x)(p) = x(A p), hence T_B T_A = T_{AB}: warping by A
  and then by B equals one warp by ``compose(A, B) = A @ B``.

Two samplers are provided:

* :func:`sample_homographies`: c_i ~ N(0, (scale·σ_i)²) i.i.d., A = expm(Σ c_i B_i). This is the
  NIso pre-training sampler (``xforms.Homographies`` of the official code) with σ =
  :data:`HOMCONV_SCALES`.
* :func:`sample_homographies_metropolis`: the sampler that produced the original homNIST test
  set (lemacdonald/equivariant-convolutions, ``generate_haar_imgs``), re-implemented from what
  that code does: a random walk in exponential coordinates with Gaussian steps of std
  0.5·scale·σ_i, weighted by the Haar density, stopped at the first Metropolis acceptance.
  Its coefficients are *not* N(0, σ²); see the function's docstring.

NumPy only (no torch, no SciPy).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HOMCONV_SCALES",
    "SL3_BASIS",
    "adjoint_matrix",
    "apply_homography",
    "compose",
    "expm",
    "haar_density",
    "invert",
    "normalize_det",
    "normalized_to_pixel",
    "pixel_grid",
    "pixel_to_normalized",
    "sample_homographies",
    "sample_homographies_metropolis",
    "sample_sl3_coefficients",
    "sl3_coordinates",
    "sl3_exp",
    "sl3_matrix",
]

#: Per-generator standard deviations σ_1..σ_8 of homConv and NIso (``hmnist_encode``), in the
#: order of :data:`SL3_BASIS`.
HOMCONV_SCALES: np.ndarray = np.array([0.15, 0.35, 0.17, 0.35, 0.15, 0.17, 0.15, 0.15])
HOMCONV_SCALES.setflags(write=False)


def _make_basis() -> np.ndarray:
    e = np.eye(3)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    basis = np.stack([np.outer(e[a], e[b]) for a, b in pairs])
    basis[0] -= np.eye(3) / 3.0
    basis[4] -= np.eye(3) / 3.0
    basis.setflags(write=False)
    return basis


#: The sl(3) basis B1..B8, shape (8, 3, 3), in the reference order (read-only).
SL3_BASIS: np.ndarray = _make_basis()


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return np.random.default_rng(rng)


def _scales(scales: np.ndarray | None, scale: float) -> np.ndarray:
    s = HOMCONV_SCALES if scales is None else np.asarray(scales, dtype=np.float64)
    if s.shape != (8,):
        raise ValueError(f"scales must have shape (8,), got {s.shape}")
    return float(scale) * s


# ----------------------------------------------------------------------------- algebra


def sl3_matrix(coeffs: np.ndarray) -> np.ndarray:
    """Σ c_i B_i.

    Parameters
    ----------
    coeffs : (..., 8) array

    Returns
    -------
    (..., 3, 3) float64 traceless matrix.
    """
    c = np.asarray(coeffs, dtype=np.float64)
    if c.shape[-1] != 8:
        raise ValueError(f"sl(3) coefficients need a last axis of 8, got {c.shape}")
    return np.einsum("...k,kij->...ij", c, SL3_BASIS)


def sl3_coordinates(X: np.ndarray) -> np.ndarray:
    """Coefficients c with Σ c_i B_i = X − tr(X)/3·I (the inverse of :func:`sl3_matrix`).

    Parameters
    ----------
    X : (..., 3, 3) array

    Returns
    -------
    (..., 8) float64
    """
    X = np.asarray(X, dtype=np.float64)
    d = X[..., 2, 2]
    return np.stack(
        [X[..., 0, 0] - d, X[..., 0, 1], X[..., 0, 2], X[..., 1, 0],
         X[..., 1, 1] - d, X[..., 1, 2], X[..., 2, 0], X[..., 2, 1]],
        axis=-1,
    )


def expm(X: np.ndarray) -> np.ndarray:
    """Matrix exponential of a batch of small matrices, (..., n, n) -> (..., n, n) float64.

    Scaling and squaring with a degree-12 Taylor polynomial (‖X/2^s‖₁ ≤ 1/4, truncation error
    below 1e-17 relative), vectorized over the batch. For large batches of 3×3 matrices it is
    much faster than ``scipy.linalg.expm``, which loops over the batch in Python.
    """
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("expm: non-finite input")
    n = X.shape[-1]
    norm = np.abs(X).sum(axis=-2).max(axis=-1)
    with np.errstate(divide="ignore"):
        s = np.ceil(np.log2(norm / 0.25))
    s = np.clip(np.nan_to_num(s, neginf=0.0), 0, 1023).astype(np.int64)
    Y = X * np.ldexp(1.0, -s)[..., None, None]
    eye = np.eye(n)
    E = eye + Y / 12.0
    for k in range(11, 0, -1):
        E = eye + (Y @ E) / k
    for k in range(int(s.max(initial=0))):
        E = np.where((k < s)[..., None, None], E @ E, E)
    return E


def sl3_exp(coeffs: np.ndarray) -> np.ndarray:
    """expm(Σ c_i B_i): (..., 8) coefficients -> (..., 3, 3) homographies with det 1."""
    return expm(sl3_matrix(coeffs))


def _structure_constants() -> np.ndarray:
    # ad[i, :, j] = coordinates of [B_i, B_j]
    B = SL3_BASIS
    comm = np.einsum("iab,jbc->ijac", B, B) - np.einsum("jab,ibc->ijac", B, B)
    ad = np.transpose(sl3_coordinates(comm), (0, 2, 1))
    ad.setflags(write=False)
    return ad


_AD = _structure_constants()


def adjoint_matrix(coeffs: np.ndarray) -> np.ndarray:
    """Matrix of ad_X = [X, ·] in the basis B1..B8, for X = Σ c_i B_i.

    Parameters
    ----------
    coeffs : (..., 8)

    Returns
    -------
    (..., 8, 8), column j holding the coordinates of [X, B_j].
    """
    return np.einsum("...i,iaj->...aj", np.asarray(coeffs, dtype=np.float64), _AD)


def haar_density(coeffs: np.ndarray) -> np.ndarray:
    """Density of the Haar measure of SL(3) in exponential coordinates, |det φ(−ad_X)|.

    φ(M) = Σ_k M^k/(k+1)! = (e^M − I)/M is the derivative of the exponential map. The eigenvalues
    of ad_X are the differences μ_ab = λ_a − λ_b of the eigenvalues of X = Σ c_i B_i (and two
    zeros), and φ(μ)φ(−μ) = (sinh(μ/2)/(μ/2))², so the density is
    Π_{a<b} |sinh(μ_ab/2)/(μ_ab/2)|²: even in X, equal to 1 at X = 0.

    Parameters
    ----------
    coeffs : (..., 8)

    Returns
    -------
    (...) float64
    """
    lam = np.linalg.eigvals(sl3_matrix(coeffs))
    out = np.ones(lam.shape[:-1])
    for a, b in ((0, 1), (0, 2), (1, 2)):
        half = 0.5 * (lam[..., a] - lam[..., b])
        small = np.abs(half) < 1e-6
        safe = np.where(small, 1.0, half)
        f = np.where(small, 1.0 + half * half / 6.0, np.sinh(safe) / safe)
        out = out * np.abs(f) ** 2
    return out


# ----------------------------------------------------------------------------- samplers


def sample_sl3_coefficients(n: int, rng: np.random.Generator | int | None = None,
                            scale: float = 1.0, *, scales: np.ndarray | None = None) -> np.ndarray:
    """c ~ N(0, diag(scale·σ)²), shape (n, 8); σ defaults to :data:`HOMCONV_SCALES`."""
    return _rng(rng).standard_normal((int(n), 8)) * _scales(scales, scale)


def sample_homographies(n: int, rng: np.random.Generator | int | None = None, scale: float = 1.0,
                        *, scales: np.ndarray | None = None, return_coefficients: bool = False):
    """Random homographies A = expm(Σ c_i B_i), c_i ~ N(0, (scale·σ_i)²) (NIso pre-training).

    This is the sampler of the NIso reference (``xforms.Homographies``). The original homNIST
    *test set* was drawn differently (see :func:`sample_homographies_metropolis`): its
    coefficient spread is about 0.7·σ instead of σ.

    Parameters
    ----------
    n : number of homographies.
    rng : numpy Generator, seed or None.
    scale : global factor on σ (1.0 reproduces the reference).
    scales : (8,) per-generator σ; default :data:`HOMCONV_SCALES`.
    return_coefficients : also return the (n, 8) coefficients.

    Returns
    -------
    A : (n, 3, 3) float64, det A = 1 (and c : (n, 8) if requested).
    """
    c = sample_sl3_coefficients(n, rng, scale, scales=scales)
    A = sl3_exp(c)
    return (A, c) if return_coefficients else A


def sample_homographies_metropolis(n: int, rng: np.random.Generator | int | None = None,
                                   scale: float = 1.0, *, scales: np.ndarray | None = None,
                                   max_steps: int = 10_000, return_coefficients: bool = False):
    """Random homographies from the homNIST test-set sampler (homConv's ``generate_haar_imgs``).

    Each sample is a random walk in exponential coordinates with Gaussian steps of std
    s_i = 0.5·scale·σ_i: x⁰ ~ N(0, s²); then repeatedly x' = x + N(0, s²), α = h(x')/h(x) with h
    the Haar density (:func:`haar_density`), u ~ U(0, 1); the walk **moves to x' whether or not
    it is accepted** and stops at the first step with α ≥ u. This is what the reference code does
    (it is not a textbook Metropolis–Hastings chain, whose target, the Haar measure of the
    non-compact SL(3), would be improper). Near the identity h ≈ 1, so most walks stop after one
    step and the coefficient std is about √2·s_i ≈ 0.71·scale·σ_i (slightly more in practice).

    The reference warps digits by the pull-back of u⁻¹, (Tx)(p) = x(u⁻¹p); with this module's
    pull-back convention the matrix to warp with is therefore ``invert(u)``. The distribution is
    symmetric under inversion (Gaussian steps are symmetric and h is even), so u and u⁻¹ are
    equally distributed.

    Parameters
    ----------
    n : number of homographies.
    rng : numpy Generator, seed or None.
    scale : global factor on σ.
    scales : (8,) per-generator σ; default :data:`HOMCONV_SCALES`.
    max_steps : raise RuntimeError if some walk has not stopped after this many steps.
    return_coefficients : also return the (n, 8) exponential coordinates.

    Returns
    -------
    u : (n, 3, 3) float64, det u = 1 (and x : (n, 8) if requested).
    """
    gen = _rng(rng)
    step = 0.5 * _scales(scales, scale)
    x = gen.standard_normal((int(n), 8)) * step
    dens = haar_density(x)
    active = np.arange(int(n))
    for _ in range(max_steps):
        if active.size == 0:
            break
        prop = x[active] + gen.standard_normal((active.size, 8)) * step
        dprop = haar_density(prop)
        alpha = dprop / dens[active]
        accept = alpha >= gen.random(active.size)
        x[active] = prop
        dens[active] = dprop
        active = active[~accept]
    else:
        if active.size:
            raise RuntimeError(f"{active.size} Metropolis walks did not stop "
                               f"within {max_steps} steps")
    u = sl3_exp(x)
    return (u, x) if return_coefficients else u


# ----------------------------------------------------------------------------- group helpers


def compose(*mats: np.ndarray) -> np.ndarray:
    """Matrix product A₁ A₂ ⋯ A_k (broadcast over leading axes).

    With pull-back warps, warping by A₁, then by A₂, ..., then by A_k equals one warp by
    ``compose(A₁, ..., A_k)``.
    """
    if not mats:
        return np.eye(3)
    out = np.asarray(mats[0], dtype=np.float64)
    for m in mats[1:]:
        out = out @ np.asarray(m, dtype=np.float64)
    return out


def normalize_det(A: np.ndarray) -> np.ndarray:
    """Rescale (..., 3, 3) matrices to det 1 (A / cbrt(det A)); raises on singular input."""
    A = np.asarray(A, dtype=np.float64)
    det = np.linalg.det(A)
    if np.any(np.abs(det) < 1e-300):
        raise ValueError("singular matrix: not a homography")
    return A / np.cbrt(det)[..., None, None]


def invert(A: np.ndarray) -> np.ndarray:
    """Inverse homography, renormalized to det 1; shape (..., 3, 3)."""
    return normalize_det(np.linalg.inv(np.asarray(A, dtype=np.float64)))


def apply_homography(A: np.ndarray, points: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Projective action on normalized coordinates.

    Parameters
    ----------
    A : (..., 3, 3)
    points : (..., P, 2) Euclidean or (..., P, 3) homogeneous normalized coordinates (row first).
    eps : |q₂| below this maps to a point at infinity (returned as inf).

    Returns
    -------
    (..., P, 2) float64: (q₀/q₂, q₁/q₂) with q = A p.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1] == 2:
        p = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], axis=-1)
    q = np.einsum("...ij,...pj->...pi", np.asarray(A, dtype=np.float64), p)
    w = q[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = q[..., :2] / w
    return np.where(np.abs(w) > eps, out, np.inf)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """Normalized homogeneous coordinates of every pixel centre.

    Returns
    -------
    (height, width, 3) float64 with [i, j] = [2i/(H−1) − 1, 2j/(W−1) − 1, 1].
    """
    if height < 2 or width < 2:
        raise ValueError(f"images need at least 2x2 pixels, got {height}x{width}")
    r = np.linspace(-1.0, 1.0, height)
    c = np.linspace(-1.0, 1.0, width)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return np.stack([rr, cc, np.ones_like(rr)], axis=-1)


def normalized_to_pixel(uv: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 2) normalized (u, v) -> (..., 2) pixel (row, col) = ((u+1)(H−1)/2, (v+1)(W−1)/2)."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[..., 0] + 1.0) * (0.5 * (height - 1)),
                     (uv[..., 1] + 1.0) * (0.5 * (width - 1))], axis=-1)


def pixel_to_normalized(ij: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 2) pixel (row, col) -> (..., 2) normalized coordinates (inverse of the above)."""
    ij = np.asarray(ij, dtype=np.float64)
    return np.stack([ij[..., 0] * (2.0 / (height - 1)) - 1.0,
                     ij[..., 1] * (2.0 / (width - 1)) - 1.0], axis=-1)
