"""Stable linear algebra for NIso: SVD with a safe backward, Procrustes, orthogonal determinant.

The derivative of the SVD contains ``1/(s_j² - s_i²)`` and ``1/s_i``, which blow up for
repeated or vanishing singular values. Those are common in NIso: τ ≈ I, symmetric
transformations, rank-deficient cross-covariances when there are fewer channels than
eigenfunctions. Two remedies are offered, following ``docs/algorithm.md`` §1.4 and §6.2:

* :func:`safe_svd` is the thin SVD whose backward replaces every reciprocal by the
  Lorentzian safe inverse ``x / (x² + eps)`` (the official code's custom JVP, written here as
  a VJP; unlike the official code the ``m != n`` correction terms use it too).
* :func:`procrustes` (``method="polar"``, the default) differentiates the polar factor in
  closed form, ``dR = U D Ω Vᵀ`` with ``Ω_ij = (d_i G_ij - d_j G_ji) / (d_i s_i + d_j s_j)``.
  The ``1/(s_i² - s_j²)`` terms cancel analytically, so the result is exact (not merely
  regularized) for repeated singular values; only ``d_i s_i + d_j s_j = 0`` (rank loss, or
  a repeated smallest value under the SO(K) flip, where the optimum is not unique) is
  regularized with the safe inverse.

The two differ where singular values are (nearly) repeated: through U and V the safe inverse
turns ``(s_j - s_i)/(s_j² - s_i²)`` into ≈ 0 instead of ``1/(s_i + s_j)``, so the safe-SVD
route drops that part of the gradient (at X = I its Procrustes gradient is 0, the true one is
the skew part of the upstream gradient). It does the same for near-null singular pairs of a
rank-deficient X, where the exact polar derivative is large (``~1/(s_i + s_j)``).

Linear algebra never runs under autocast; ``compute_dtype`` lets it run in float64.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch.autograd.function import once_differentiable

from niso_geom.errors import NumericalError

__all__ = [
    "DEFAULT_EPS",
    "ProcrustesMethod",
    "det_value",
    "flush_floor",
    "flush_tiny",
    "has_tiny",
    "no_autocast",
    "ortho_det",
    "procrustes",
    "resolve_compute_dtype",
    "safe_inverse",
    "safe_svd",
]

DEFAULT_EPS = 1e-8

ProcrustesMethod = Literal["polar", "svd", "torch"]


def check_finite(X: torch.Tensor, what: str) -> None:
    """Raise :class:`~niso_geom.errors.NumericalError` naming the first non-finite entry of X
    (meta tensors carry no values and pass)."""
    if X.device.type == "meta":
        return
    bad = ~torch.isfinite(X.detach())
    if bool(bad.any()):
        first = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise NumericalError(f"{what} has {int(bad.sum())} non-finite entr(ies) (NaN or inf), first at index"
                             f" {first} of shape {tuple(X.shape)}: {float(X.detach()[first])}")


def safe_inverse(x: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Lorentzian regularized reciprocal ``x / (x² + eps)``; 0 at 0, bounded by ``1/(2√eps)``."""
    return x / (x * x + eps)


def flush_floor(dtype: torch.dtype) -> float:
    """``tiny^(1/3)`` of ``dtype`` (2⁻⁴² ≈ 2.3e-13 for float32 and bfloat16, 2⁻³⁴⁰ for float64): the
    magnitude below which :func:`flush_tiny` and the τ mask give exactly 0.

    Why the cube root: arithmetic on subnormal floats (below ``tiny`` = 2⁻¹²⁶ ≈ 1.18e-38) is
    10–100× slower on x86. A step multiplies up to three small factors before it sums (the mask ×
    the gradient of the masked cross-covariance × a coefficient, in the backward of τ's solve);
    with every one of them either 0 or ≥ ``tiny^(1/3)``, no such product can be subnormal. The
    dropped values are ≤ 2.3e-13 relative to the mask's diagonal (1) or to a unit singular vector,
    far below float32's rounding (6e-8), so the results are unchanged at float32 precision.
    """
    return float(torch.finfo(dtype).tiny) ** (1.0 / 3.0)


def flush_tiny(x: torch.Tensor) -> torch.Tensor:
    """x with every entry of magnitude below :func:`flush_floor` of its dtype set to exactly 0.

    Applied to singular vectors, the polar factor and its gradient: for a nearly block-diagonal X
    (the τ mask of a spread spectrum) the singular vectors are localized, with entries decaying
    far below float32's normal range, and so are the products made from them.
    """
    floor = flush_floor(x.dtype)
    return x.masked_fill((x < floor) & (x > -floor), 0.0)  # no abs(): it would copy the subnormals


def has_tiny(x: torch.Tensor) -> bool:
    """Whether x holds a nonzero entry of magnitude below :func:`flush_floor` (what :func:`flush_tiny` changes)."""
    if x.is_meta:  # no data: nothing to flush (shape-only runs)
        return False
    floor = flush_floor(x.dtype)
    return bool(((x < floor) & (x > -floor) & (x != 0)).any())


def no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """A context that disables autocast on ``device_type`` (a no-op where autocast does not exist)."""
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:  # pragma: no cover - device types without autocast support
        return contextlib.nullcontext()


def resolve_compute_dtype(dtype: torch.dtype, compute_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype linear algebra runs in: ``compute_dtype`` if given, else ``dtype`` promoted to ≥ float32."""
    if compute_dtype is not None:
        if not compute_dtype.is_floating_point:
            raise TypeError(f"compute_dtype must be a real floating dtype, got {compute_dtype}")
        return compute_dtype
    if dtype.is_complex or not dtype.is_floating_point:
        raise TypeError(f"expected a real floating-point tensor, got {dtype}")
    return torch.promote_types(dtype, torch.float32)


def det_value(X: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.det`` (no autograd) that is safe on multi-threaded CPU builds.

    torch's batched CPU LU runs MKL's threaded ``getrf`` inside its own parallel loop; with more
    than one thread and matrices larger than ~128 this deadlocks or is extremely slow
    (pytorch/pytorch#141358, #142815). On CPU the LU therefore runs with one intra-op thread
    (restored afterwards). NumPy is no way out: its own BLAS threads oversubscribe a busy
    machine (a 4×256×256 determinant took 1.1 s instead of 3 ms on 2 loaded cores).
    """
    X = X.detach()
    if X.device.type != "cpu" or torch.get_num_threads() == 1:
        return torch.linalg.det(X)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.det(X)
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# safe SVD
# --------------------------------------------------------------------------------------------


class _SafeSVD(torch.autograd.Function):
    """Thin SVD ``A = U diag(S) Vh`` whose backward uses safe inverses."""

    @staticmethod
    def forward(ctx, A: torch.Tensor, eps: float):  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        if has_tiny(U) or has_tiny(Vh):  # localized singular vectors: no subnormals downstream
            U, Vh = flush_tiny(U), flush_tiny(Vh)
        ctx.eps = eps
        ctx.save_for_backward(U, S, Vh)
        return U, S, Vh

    @staticmethod
    @once_differentiable
    def backward(ctx, gU: torch.Tensor, gS: torch.Tensor, gVh: torch.Tensor):  # type: ignore[override]
        U, S, Vh = ctx.saved_tensors
        eps = ctx.eps
        m, n = U.shape[-2], Vh.shape[-1]
        k = S.shape[-1]
        V = Vh.mT
        # F_ij = 1/(s_j² - s_i²) off the diagonal, 0 on it (the official code gets ≈ 0 there too).
        s2 = S * S
        eye = torch.eye(k, dtype=S.dtype, device=S.device)
        F = (safe_inverse(s2.unsqueeze(-2) - s2.unsqueeze(-1) + eye, eps) - eye) * (1.0 - eye)
        UtgU = U.mT @ gU
        VtgV = Vh @ gVh.mT  # Vᵀ gV with gV = gVhᵀ
        J = F * (UtgU - UtgU.mT)
        K = F * (VtgV - VtgV.mT)
        inner = J * S.unsqueeze(-2) + S.unsqueeze(-1) * K + torch.diag_embed(gS)
        gA = U @ inner @ Vh
        if m > k or n > k:
            s_inv = safe_inverse(S, eps)
            if m > k:  # (I - UUᵀ) gU S⁻¹ Vᵀ
                gA = gA + ((gU - U @ UtgU) * s_inv.unsqueeze(-2)) @ Vh
            if n > k:  # U S⁻¹ gVᵀ (I - VVᵀ)
                gA = gA + U @ (s_inv.unsqueeze(-1) * (gVh - (gVh @ V) @ Vh))
        return gA, None


def safe_svd(A: torch.Tensor, eps: float = DEFAULT_EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched thin SVD with a backward that stays finite for (near-)repeated singular values.

    Parameters
    ----------
    A : Tensor (..., m, n), real.
    eps : regularizer of the safe inverse ``x/(x²+eps)`` used for ``1/(s_j²-s_i²)`` and ``1/s``.

    Returns
    -------
    U (..., m, k), S (..., k) descending, Vh (..., k, n), with ``k = min(m, n)``; the same
    values as ``torch.linalg.svd(A, full_matrices=False)``. For distinct, well-separated
    singular values the gradient equals torch's up to a relative ``O(eps / gap²)``.
    """
    return _SafeSVD.apply(A, float(eps))


# --------------------------------------------------------------------------------------------
# determinant of an orthogonal matrix
# --------------------------------------------------------------------------------------------


class _OrthoDet(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X: torch.Tensor):  # type: ignore[override]
        d = det_value(X)
        ctx.save_for_backward(X, d)
        return d

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        X, d = ctx.saved_tensors
        # d det = det · tr(X⁻¹ dX) = det · tr(Xᵀ dX) for orthogonal X.
        return (g * d).unsqueeze(-1).unsqueeze(-1) * X


def ortho_det(X: torch.Tensor) -> torch.Tensor:
    """Determinant (...,) of orthogonal matrices X (..., n, n), with the gradient ``det(X)·X``.

    The backward assumes ``X⁻¹ = Xᵀ`` (no LU, no inverse); it is only correct for orthogonal X.
    """
    return _OrthoDet.apply(X)


# --------------------------------------------------------------------------------------------
# Procrustes / polar factor
# --------------------------------------------------------------------------------------------


def _lu_sign(X: torch.Tensor) -> torch.Tensor:
    """sign det(X) (...,) from one LU (``slogdet``), on one CPU thread like :func:`det_value`."""
    X = X.detach()
    if X.device.type != "cpu" or torch.get_num_threads() == 1:
        return torch.linalg.slogdet(X).sign
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.slogdet(X).sign
    finally:
        torch.set_num_threads(previous)


def _flip_signs(X: torch.Tensor, U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, special: bool) -> torch.Tensor:
    """(..., k) vector d: all ones, or ones with d_k = sign det(U Vh) when ``special``.

    sign det(U Vh) = sign det(X) when X = U S Vh is square and nonsingular, so one LU of X gives
    it without forming U Vh (one batched GEMM less). Where X is too close to singular for the LU's
    sign to be trusted (``s_min ≤ 8·K·ε·s_max``, rounding could flip it) the sign comes from
    det(U Vh) as before, for those matrices only.
    """
    d = torch.ones(U.shape[:-2] + (Vh.shape[-2],), dtype=U.dtype, device=U.device)
    if special:
        sign = _lu_sign(X)
        k = S.shape[-1]
        unsure = S[..., -1] <= 8 * k * torch.finfo(S.dtype).eps * S[..., 0]
        if not X.is_meta and bool(unsure.any()):  # meta tensors hold no data to decide on
            sign = sign.clone()
            sign[unsure] = det_value(U[unsure] @ Vh[unsure]).sign()
        d[..., -1] = torch.where(sign < 0, -1.0, 1.0).to(U.dtype)
    return d


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class _Polar(torch.autograd.Function):
    """Polar factor ``R = U D Vh`` (tall or square input) with the closed-form derivative."""

    @staticmethod
    def forward(ctx, X: torch.Tensor, special: bool, eps: float):  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        # localized singular vectors (a nearly block-diagonal X) decay below float32's normal range,
        # and so do the products made of them: flushed, here and in the backward, when present
        tiny = has_tiny(U) or has_tiny(Vh)
        flush = flush_tiny if tiny else _identity
        U, Vh = flush(U), flush(Vh)
        d = _flip_signs(X, U, S, Vh, special)
        R = flush((U * d.unsqueeze(-2)) @ Vh)
        ctx.flush = flush
        ctx.eps = eps
        ctx.save_for_backward(U, S, Vh, d)
        return R

    @staticmethod
    @once_differentiable
    def backward(ctx, gR: torch.Tensor):  # type: ignore[override]
        U, S, Vh, d = ctx.saved_tensors
        eps = ctx.eps
        m, k = U.shape[-2], S.shape[-1]
        V = Vh.mT
        UtgR = U.mT @ gR
        H = d.unsqueeze(-1) * (UtgR @ V)  # D Uᵀ gR V
        sigma = d * S
        W = safe_inverse(sigma.unsqueeze(-1) + sigma.unsqueeze(-2), eps)
        flush = ctx.flush
        gG = flush(d.unsqueeze(-1) * (W * (H - H.mT)))
        gX = flush(U @ gG) @ Vh
        if m > k:  # (I - UUᵀ) gR V S⁻¹ Vᵀ
            gX = gX + ((gR - U @ UtgR) @ (V * safe_inverse(S, eps).unsqueeze(-2))) @ Vh
        return flush(gX), None, None


def _procrustes_svd(X: torch.Tensor, special: bool, eps: float, plain: bool) -> torch.Tensor:
    if plain:
        U, _, Vh = torch.linalg.svd(X, full_matrices=False)
    else:
        U, _, Vh = safe_svd(X, eps)
    if not special:
        return U @ Vh
    R0 = U @ Vh
    # "torch" uses the plain determinant value: its derivative along the orthogonal group is 0.
    d = det_value(R0) if plain else ortho_det(R0)
    # As the reference: scale the last row of Vh (smallest singular value) by det(U Vh) = ±1.
    Vh = torch.cat([Vh[..., :-1, :], Vh[..., -1:, :] * d.unsqueeze(-1).unsqueeze(-1)], dim=-2)
    return U @ Vh


def procrustes(
    X: torch.Tensor,
    *,
    special: bool = False,
    method: ProcrustesMethod = "polar",
    eps: float = DEFAULT_EPS,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Orthogonal Procrustes: the polar factor ``R = U Vᵀ`` of ``X = U S Vᵀ``.

    ``R`` maximizes ``tr(Rᵀ X)`` over matrices with orthonormal columns (rows, if X is wide),
    i.e. it is the nearest such matrix to X in Frobenius norm. With ``special=True`` (square
    X only) the maximum is taken over SO(n): the Kabsch fix flips the sign of the singular
    vector of the smallest singular value when ``det(U Vᵀ) = -1``, so ``det R = +1``.

    Parameters
    ----------
    X : Tensor (..., m, n), real.
    special : restrict to SO(n) (requires m == n).
    method : ``"polar"`` closed-form derivative of the polar factor (default; exact and finite
        for repeated singular values), ``"svd"`` through :func:`safe_svd` and
        :func:`ortho_det` (the official code's route; regularized, i.e. biased, near repeated
        singular values: see the module docstring), ``"torch"`` plain ``torch.linalg.svd``
        autograd (reference only: NaN/inf for exactly repeated singular values).
    eps : safe-inverse regularizer.
    compute_dtype : dtype of the SVD (e.g. ``torch.float64``); default X's dtype, at least
        float32. The result is cast back to X's dtype. Autocast is disabled inside.

    Returns
    -------
    R : Tensor (..., m, n), same dtype and device as X.

    Raises
    ------
    NumericalError
        X has a NaN or inf entry: there is no nearest orthogonal matrix to report, and an SVD
        of it would return a made-up one (exactly I, with NaN gradients).
    """
    check_finite(X, "procrustes input")
    m, n = X.shape[-2], X.shape[-1]
    if special and m != n:
        raise ValueError(f"special=True needs square matrices, got shape {tuple(X.shape)}")
    if method not in ("polar", "svd", "torch"):
        raise ValueError(f"method must be 'polar', 'svd' or 'torch', got {method!r}")
    dtype = resolve_compute_dtype(X.dtype, compute_dtype)
    with no_autocast(X.device.type):
        Xc = X.to(dtype)
        wide = m < n
        if wide:
            Xc = Xc.mT
        if method == "polar":
            R = _Polar.apply(Xc, bool(special), float(eps))
        else:
            R = _procrustes_svd(Xc, bool(special), float(eps), plain=(method == "torch"))
        if wide:
            R = R.mT
    return R.to(X.dtype)
