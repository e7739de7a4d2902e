"""Robust generalized eigensolver for S φ = λ M φ with diagonal M.

Strategy (``method="auto"``): dense ``eigh`` for N ≤ ``dense_max``; otherwise
shift-invert Lanczos (``eigsh`` with σ < 0 so that S − σM is positive definite),
retried with a growing shift, then LOBPCG. Every result is polished by a
Rayleigh–Ritz step so that Φᵀ M Φ = I to rounding, and its residual is recorded.
When every strategy fails an :class:`~niso_geom.errors.EigenSolveError` carries
diagnostics (sizes, mass range, NaNs, asymmetry, and each attempt's error).

S must be positive semidefinite: negative eigenvalues within rounding
(:func:`negative_tolerance`) are set to 0 and counted; one beyond it is an
:class:`~niso_geom.errors.EigenSolveError` naming the fix (on a mesh, the intrinsic-Delaunay
Laplacian ``TriMesh(..., laplacian='robust')``), never a clipped, wrong spectrum.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from niso_geom.errors import EigenSolveError
from niso_geom.spectral.eigenbasis import Eigenbasis

log = logging.getLogger(__name__)

Method = Literal["auto", "dense", "shift-invert", "lobpcg"]


def _check_inputs(S, mass: np.ndarray, k: int) -> tuple[sp.csr_matrix, np.ndarray]:
    mass = np.asarray(mass, dtype=np.float64).ravel()
    S = sp.csr_matrix(S, dtype=np.float64)
    n = mass.shape[0]
    if S.shape != (n, n):
        raise ValueError(f"stiffness has shape {S.shape} but mass has {n} entries")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    bad = np.flatnonzero(~np.isfinite(mass) | (mass <= 0))
    if len(bad):
        raise EigenSolveError(
            f"mass must be positive and finite: {len(bad)} bad entr(ies), first mass[{bad[0]}] = {mass[bad[0]]}"
            " (an unreferenced or isolated vertex gives zero mass)"
        )
    if not np.isfinite(S.data).all():
        rows = np.repeat(np.arange(n), np.diff(S.indptr))[~np.isfinite(S.data)]
        raise EigenSolveError(f"stiffness has {len(rows)} non-finite entr(ies), first in row {rows[0]}")
    return S, mass


def _diagnostics(S: sp.csr_matrix, mass: np.ndarray) -> str:
    asym = abs(S - S.T).max() if S.nnz else 0.0
    rowsum = np.abs(np.asarray(S.sum(axis=1)).ravel()).max()
    return (
        f"N={S.shape[0]}, nnz={S.nnz}, mass in [{mass.min():.3g}, {mass.max():.3g}], "
        f"max|S−Sᵀ|={asym:.3g}, max|S·1|={rowsum:.3g}, min diag(S)={S.diagonal().min():.3g}"
    )


def _dense(S: sp.csr_matrix, mass: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = S.shape[0]
    d = 1.0 / np.sqrt(mass)
    A = S.toarray() * d[:, None] * d[None, :]
    A = 0.5 * (A + A.T)
    if k < n // 4:  # a subset: bisection + inverse iteration is far faster than the full solve
        w, U = scipy.linalg.eigh(A, subset_by_index=[0, k - 1], driver="evx")
    else:
        w, U = scipy.linalg.eigh(A, driver="evd")
        w, U = w[:k], U[:, :k]
    return w, U * d[:, None]


def _shift_invert(S, mass, k, sigma, tol, rng):
    M = sp.diags(mass).tocsc()
    # a seeded start vector: ARPACK's own default draws from a process-wide generator, so
    # results (and cache contents) would depend on what was solved before in the process
    v0 = rng.standard_normal(S.shape[0])
    # no guard vectors: Lanczos converges by the gap after the k-th eigenvalue, and a guard
    # that ends inside a cluster was measured 1.9x slower on armadillo (k = 128 + 8). A k that
    # cuts through a cluster of near-equal eigenvalues can return a copy from either side.
    w, V = spla.eigsh(S.tocsc(), k=k, M=M, sigma=sigma, which="LM", tol=tol, v0=v0)
    return w, V


def _lobpcg(S, mass, k, sigma, tol, rng):
    n = S.shape[0]
    M = sp.diags(mass).tocsr()
    lu = spla.splu((S - sigma * M).tocsc())
    P = spla.LinearOperator((n, n), matvec=lu.solve, matmat=lu.solve, dtype=np.float64)
    X = rng.standard_normal((n, min(n, k + max(10, k // 2))))  # guard vectors past a split cluster
    w, V = spla.lobpcg(S, X, B=M, M=P, largest=False, tol=tol or 1e-10, maxiter=2000)
    order = np.argsort(w)[:k]
    return w[order], V[:, order]


def negative_tolerance(S: sp.csr_matrix, mass: np.ndarray, evals: np.ndarray) -> float:
    """How far below 0 an eigenvalue of a PSD pencil may come out by rounding alone.

    The larger of 1e-8·max(1, max|λ|) over the computed eigenvalues and 1e3·ε·‖M^{-½} S M^{-½}‖
    (its Gershgorin bound), the backward error of a symmetric eigensolver.
    """
    d = 1.0 / np.sqrt(mass)
    gershgorin = float(np.max(d * (abs(S) @ d))) if S.nnz else 0.0
    return max(1e-8 * max(1.0, float(np.abs(evals).max())), 1e3 * np.finfo(np.float64).eps * gershgorin)


def _rayleigh_ritz(S, mass, V):
    """Rotate V's span so the columns are M-orthonormal eigenvectors of the projected pencil."""
    B = V.T @ (mass[:, None] * V)
    A = V.T @ (S @ V)
    w, C = scipy.linalg.eigh(0.5 * (A + A.T), 0.5 * (B + B.T))
    return w, V @ C


def eigensolve(S, mass: np.ndarray, k: int, *, method: Method = "auto", dense_max: int = 600,
               sigma: float = -1e-8, max_retries: int = 3, tol: float = 0.0,
               seed: int = 0) -> Eigenbasis:
    """The k smallest eigenpairs of S φ = λ M φ.

    Parameters
    ----------
    S : (N, N) symmetric PSD stiffness (sparse or dense).
    mass : (N,) positive diagonal mass.
    k : number of eigenpairs.
    method : "auto" | "dense" | "shift-invert" | "lobpcg".
    sigma : initial shift (negative, relative to the mean mass-normalized diagonal).
    max_retries : shift-invert attempts, the shift growing ×100 each time, before LOBPCG.

    Returns
    -------
    Eigenbasis with evals (k,) ascending (negatives within rounding set to 0 and counted in
    ``info["clipped"]``; beyond :func:`negative_tolerance` an EigenSolveError), evecs (N, k) M-orthonormal, and ``info`` (method, attempts,
    seconds, residual, orthonormality error).
    """
    if method not in ("auto", "dense", "shift-invert", "lobpcg"):
        raise ValueError(f"method must be auto, dense, shift-invert or lobpcg, got {method!r}")
    S, mass = _check_inputs(S, mass, k)
    n = S.shape[0]
    t0 = time.perf_counter()
    scale = float(np.mean(S.diagonal() / mass)) or 1.0
    rng = np.random.default_rng(seed)
    use_dense = method == "dense" or (method == "auto" and (n <= dense_max or k >= n - 1))
    attempts: list[str] = []
    result = None
    if use_dense:
        try:
            result = _dense(S, mass, k)
            used = "dense"
        except (np.linalg.LinAlgError, ValueError, MemoryError) as exc:
            attempts.append(f"dense: {exc}")
    if result is None and method in ("auto", "shift-invert"):
        for attempt in range(max_retries + 1):
            shift = sigma * scale * (100.0**attempt)
            try:
                result = _shift_invert(S, mass, k, shift, tol, rng)
                used = f"shift-invert(sigma={shift:.3g})"
                break
            except (RuntimeError, spla.ArpackError, spla.ArpackNoConvergence, ValueError) as exc:
                attempts.append(f"shift-invert sigma={shift:.3g}: {type(exc).__name__}: {exc}")
                log.info("eigensolve attempt %d failed (%s); retrying with a larger shift", attempt, exc)
    if result is None and method in ("auto", "lobpcg"):
        try:
            result = _lobpcg(S, mass, k, sigma * scale * 1e4, tol, rng)
            used = "lobpcg"
        except Exception as exc:  # noqa: BLE001  lobpcg raises a variety of errors
            attempts.append(f"lobpcg: {type(exc).__name__}: {exc}")
    if result is None or not np.all(np.isfinite(result[0])) or not np.all(np.isfinite(result[1])):
        if result is not None:
            attempts.append(f"{used}: non-finite eigenpairs")
        raise EigenSolveError(
            f"all eigensolver strategies failed for k={k}: " + " | ".join(attempts)
            + f". Diagnostics: {_diagnostics(S, mass)}. Check for NaN/inf vertices, zero-area faces,"
            " unreferenced vertices or a non-manifold mesh (try TriMesh(..., laplacian='robust'))."
        )
    w, V = _rayleigh_ritz(S, mass, result[1])
    order = np.argsort(w)
    w, V = w[order], V[:, order]
    neg = w < 0
    clipped = int(neg.sum())
    if clipped:
        tol = negative_tolerance(S, mass, w)
        if w.min() < -tol:
            raise EigenSolveError(
                f"the operator is not positive semidefinite: {int((w < -tol).sum())} eigenvalue(s) below 0 beyond"
                f" rounding (min {w.min():.3g}, tolerance {tol:.2g}; {used}). A cotan Laplacian is indefinite on"
                " meshes with near-degenerate or badly shaped triangles: use the intrinsic-Delaunay Laplacian,"
                f" TriMesh(..., laplacian='robust'), or remesh. Diagnostics: {_diagnostics(S, mass)}"
            )
        w = np.where(neg, 0.0, w)
    info = {"method": used, "attempts": attempts, "seconds": time.perf_counter() - t0,
            "clipped": clipped, "n": n, "k": k}
    eb = Eigenbasis(w, V, mass, info)
    info["orthonormality_error"] = eb.orthonormality_error()
    info["residual"] = eb.residual(S)
    return eb
