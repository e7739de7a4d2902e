"""The learned operator (Φ, Λ, M) of Neural Isometries (``docs/algorithm.md`` §1.1-1.2, §1.7).

Raw parameters and their transforms, as the official ``operator_iso``:

* mass ``M = mass_raw² + 1e-8`` (N,), ``mass_raw`` initialized to 1;
* eigenvalues ``Λ = cumsum(evals_raw²)`` with ``evals_raw ~ N(0, (1/K)²)`` (default), or
  ``Λ = evals_raw²`` with ``evals_raw ~ N(0, 1)`` (``eigenvalue_param="square"``, the
  laplacian experiment's "clustered" init); sorted ascending every forward;
* eigenfunctions ``Φ = M^{-1/2} polar(M^{1/2} Φ_raw)`` with ``Φ_raw ~ N(0, 0.01²)`` (N,K), so
  that ``Φᵀ M Φ = I_K``.

The implied operator is self-adjoint in the M inner product: stiffness ``S = M Φ Λ Φᵀ M``,
Laplacian ``M⁻¹ S = Φ Λ Φᵀ M``, generalized eigenpairs ``S Φ = M Φ Λ`` (exact when K = N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from niso_geom.niso.linalg import DEFAULT_EPS, ProcrustesMethod, procrustes

__all__ = [
    "LearnedOperator",
    "OperatorState",
    "apply_left",
    "dense_operator",
    "m_orthonormalize",
    "orthonormality_error",
    "project",
    "project_moment",
    "sample_truncation",
    "spectral_dropout",
    "synthesize_truncated",
    "truncation_mask",
    "unproject",
]

MASS_EPS = 1e-8
EigenvalueParam = Literal["cumsum", "square"]


@dataclass(frozen=True)
class OperatorState:
    """A realized operator: eigenfunctions, eigenvalues and mass.

    Attributes
    ----------
    phi : Tensor (N, K), M-orthonormal columns (``phiᵀ diag(mass) phi = I``).
    evals : Tensor (K,), ascending.
    mass : Tensor (N,), positive.
    """

    phi: torch.Tensor
    evals: torch.Tensor
    mass: torch.Tensor

    @property
    def n(self) -> int:
        return self.phi.shape[-2]

    @property
    def k(self) -> int:
        return self.phi.shape[-1]

    def to(self, *args, **kwargs) -> OperatorState:
        """A copy with every tensor moved/cast by ``Tensor.to(*args, **kwargs)``."""
        return OperatorState(self.phi.to(*args, **kwargs), self.evals.to(*args, **kwargs),
                             self.mass.to(*args, **kwargs))

    def detach(self) -> OperatorState:
        return OperatorState(self.phi.detach(), self.evals.detach(), self.mass.detach())

    def truncate(self, k: int) -> OperatorState:
        """The lowest ``k`` eigenpairs."""
        return OperatorState(self.phi[:, :k], self.evals[:k], self.mass)


def m_orthonormalize(phi_raw: torch.Tensor, mass: torch.Tensor, *, method: ProcrustesMethod = "polar",
                     eps: float = DEFAULT_EPS, compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``M^{-1/2} polar(M^{1/2} Φ_raw)``: the M-orthonormal matrix nearest Φ_raw (N,K) -> (N,K).

    Parameters
    ----------
    phi_raw : Tensor (N, K) with K <= N.
    mass : Tensor (N,), positive.
    """
    root = mass.sqrt().unsqueeze(-1)
    return procrustes(root * phi_raw, method=method, eps=eps, compute_dtype=compute_dtype) / root


def orthonormality_error(state: OperatorState) -> torch.Tensor:
    """max |Φᵀ M Φ - I| (a 0-d tensor)."""
    gram = state.phi.mT @ (state.mass.unsqueeze(-1) * state.phi)
    eye = torch.eye(state.k, dtype=gram.dtype, device=gram.device)
    return (gram - eye).abs().max()


def apply_left(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``a @ x`` for one matrix a (P, Q) and a stack x (..., Q, C) -> (..., P, C).

    Computed as a batched product with ``a`` broadcast (stride 0) over x's leading dimensions:
    ``a @ x`` folds the batch into one GEMM by transposing x, a full copy of x each way
    (forward and backward), which at the spectra sizes costs more than the product itself
    (``docs/performance.md``). Equal to ``a @ x`` up to float rounding: the GEMM kernels differ
    (the forward and x's gradient happened to be bit-identical at the spectra sizes, 64 and 256
    rows by 267 columns); a's gradient is summed per batch entry, so it differs in the last bits.
    """
    if x.dim() <= 2:
        return a @ x
    xb = x.reshape(-1, *x.shape[-2:])
    return torch.bmm(a.expand(xb.shape[0], *a.shape), xb).reshape(*x.shape[:-2], a.shape[0], x.shape[-1])


def project(state: OperatorState, x: torch.Tensor) -> torch.Tensor:
    """Spectral coefficients ``Φᵀ M x``: x (..., N, C) -> (..., K, C).

    Computed as ``(M Φ)ᵀ x``: the mass scales the (N, K) basis, not the (..., N, C) stack, which
    saves an elementwise product of the stack forward and one backward (the mass gradient).
    Equal to ``Φᵀ (M x)`` up to float rounding.
    """
    return apply_left(_mass_basis(state).mT, x)


def project_moment(state: OperatorState, moment: torch.Tensor) -> torch.Tensor:
    """Second moments of the coefficients, ``Φᵀ M Σ M Φ`` (K, K), from those of the signals Σ (N, N)."""
    mphi = _mass_basis(state)
    return mphi.mT @ moment.to(mphi) @ mphi


def unproject(state: OperatorState, coeffs: torch.Tensor) -> torch.Tensor:
    """Synthesis ``Φ c``: coeffs (..., K, C) -> (..., N, C). ``K' < K`` rows use the lowest K'."""
    return apply_left(_lowest_basis(state, coeffs.shape[-2]), coeffs)


def synthesize_truncated(state: OperatorState, coeffs: torch.Tensor, keep: int | torch.Tensor) -> torch.Tensor:
    """Synthesis after spectral dropout, ``Φ (m ⊙ c)`` with m the rows below ``keep``:
    coeffs (..., B, K, C), keep an int or a (B,) tensor -> (..., B, N, C).

    The 0/1 truncation is applied to the columns of Φ ((B, N, K), small) instead of the stack of
    coefficients (large), forward and backward. The same products as
    ``unproject(state, spectral_dropout(coeffs, keep=keep))`` (multiplying by 0 or 1 is exact);
    Φ's gradient is summed in another order, a rounding-level difference.
    """
    k = coeffs.shape[-2]
    mask = truncation_mask(k, keep, coeffs.device).to(state.phi.dtype)  # (K,) or (B, K)
    phi_kept = _lowest_basis(state, k) * mask.unsqueeze(-2)  # (N, K) or (B, N, K)
    if phi_kept.dim() == 2:
        return apply_left(phi_kept, coeffs)
    return torch.matmul(phi_kept, coeffs)


def _mass_basis(state: OperatorState) -> torch.Tensor:
    """``M Φ`` (N, K): the basis scaled by the mass."""
    return state.mass.unsqueeze(-1) * state.phi


def _lowest_basis(state: OperatorState, k: int) -> torch.Tensor:
    """The ``k`` lowest eigenvectors Φ[:, :k] (N, k); Φ itself when k = K."""
    return state.phi if k == state.k else state.phi[:, :k]


def dense_operator(state: OperatorState, kind: Literal["stiffness", "plain", "laplacian"] = "stiffness"
                   ) -> torch.Tensor:
    """The operator as a dense (N, N) matrix.

    ``"stiffness"``: ``M Φ Λ Φᵀ M`` (symmetric, the weak form S);
    ``"plain"``: ``Φ Λ Φᵀ`` (what the official code visualizes);
    ``"laplacian"``: ``Φ Λ Φᵀ M`` (= M⁻¹ S, self-adjoint in the M inner product).
    """
    phi_l = state.phi * state.evals
    if kind == "plain":
        return phi_l @ state.phi.mT
    if kind == "laplacian":
        return phi_l @ (state.phi * state.mass.unsqueeze(-1)).mT
    if kind == "stiffness":
        mphi = _mass_basis(state)
        return (state.mass.unsqueeze(-1) * phi_l) @ mphi.mT
    raise ValueError(f"kind must be 'stiffness', 'plain' or 'laplacian', got {kind!r}")


# --------------------------------------------------------------------------------------------
# spectral dropout (random truncation of the basis before unprojection)
# --------------------------------------------------------------------------------------------


def sample_truncation(k: int, *, size: tuple[int, ...] = (), generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Integers ``i ~ U{1, ..., k-1}`` (how many of the lowest eigenpairs to keep), shape ``size``.

    ``k = 1`` gives 1 (nothing can be dropped).
    """
    if k <= 1:
        return torch.ones(size, dtype=torch.long, device=device)
    return torch.randint(1, k, size, generator=generator, device=device)


def spectral_dropout(coeffs: torch.Tensor, *, keep: int | torch.Tensor | None = None, per_sample: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero all but the lowest ``keep`` spectral coefficients: (..., K, C) -> (..., K, C).

    Parameters
    ----------
    coeffs : Tensor (..., K, C), coefficients ordered by ascending eigenvalue.
    keep : number of rows to keep; an int, or a tensor broadcastable to ``coeffs.shape[:-2]``.
        If None it is drawn from U{1..K-1} (paper §4.2 spectral dropout), once for the whole
        call, or once per leading index when ``per_sample``.
    generator : RNG for the draw (its device must match ``coeffs``); the global RNG if None.
    """
    k = coeffs.shape[-2]
    if keep is None:
        size = tuple(coeffs.shape[:-2]) if per_sample else ()
        gen_device = generator.device if generator is not None else coeffs.device
        keep = sample_truncation(k, size=size, generator=generator, device=gen_device).to(coeffs.device)
    mask = truncation_mask(k, keep, coeffs.device)  # (..., K)
    return coeffs * mask.unsqueeze(-1).to(coeffs.dtype)


def truncation_mask(k: int, keep: int | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean mask of the lowest ``keep`` of ``k`` rows: keep an int or a tensor (...,) -> (..., k)."""
    keep = torch.as_tensor(keep, device=device)
    return torch.arange(k, device=device) < keep.unsqueeze(-1)


# --------------------------------------------------------------------------------------------
# module
# --------------------------------------------------------------------------------------------


class LearnedOperator(nn.Module):
    """Learnable (Φ, Λ, M) on N points with K eigenpairs; ``forward()`` returns an :class:`OperatorState`.

    Parameters
    ----------
    n, k : number of points and of eigenpairs (``k <= n``).
    eigenvalue_param : ``"cumsum"`` (Λ = cumsum(raw²), raw ~ N(0, 1/K²); the default of the
        encode experiments) or ``"square"`` (Λ = raw², raw ~ N(0, 1); the laplacian
        experiment's clustered init).
    generator : RNG for the initialization (on ``device``).
    spectral_dropout : if True, :meth:`unproject` truncates the basis at random in training mode.
    method, eps, compute_dtype : passed to :func:`procrustes` for the M-orthonormal projection.
    dtype, device : of the parameters.
    """

    def __init__(self, n: int, k: int, *, eigenvalue_param: EigenvalueParam = "cumsum",
                 generator: torch.Generator | None = None, spectral_dropout: bool = False,
                 method: ProcrustesMethod = "polar", eps: float = DEFAULT_EPS,
                 compute_dtype: torch.dtype | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
        if eigenvalue_param not in ("cumsum", "square"):
            raise ValueError(f"eigenvalue_param must be 'cumsum' or 'square', got {eigenvalue_param!r}")
        self.n, self.k = n, k
        self.eigenvalue_param = eigenvalue_param
        self.spectral_dropout = spectral_dropout
        self.method = method
        self.eps = eps
        self.compute_dtype = compute_dtype
        kw = {"dtype": dtype, "device": device}
        self.mass_raw = nn.Parameter(torch.ones(n, **kw))
        self.phi_raw = nn.Parameter(0.01 * torch.randn(n, k, generator=generator, **kw))
        std = 1.0 / k if eigenvalue_param == "cumsum" else 1.0
        self.evals_raw = nn.Parameter(std * torch.randn(k, generator=generator, **kw))

    def extra_repr(self) -> str:
        return (f"n={self.n}, k={self.k}, eigenvalue_param={self.eigenvalue_param!r}, "
                f"spectral_dropout={self.spectral_dropout}, method={self.method!r}")

    def mass(self) -> torch.Tensor:
        """M (N,) = mass_raw² + 1e-8."""
        return self.mass_raw.square() + MASS_EPS

    def eigenvalues(self) -> torch.Tensor:
        """Unsorted Λ (K,)."""
        sq = self.evals_raw.square()
        return torch.cumsum(sq, dim=-1) if self.eigenvalue_param == "cumsum" else sq

    def forward(self) -> OperatorState:
        mass = self.mass()
        evals = self.eigenvalues()
        order = torch.argsort(evals.detach(), stable=True)
        phi = m_orthonormalize(self.phi_raw, mass, method=self.method, eps=self.eps,
                               compute_dtype=self.compute_dtype)
        return OperatorState(phi=phi[:, order], evals=evals[order], mass=mass)

    def unproject(self, state: OperatorState, coeffs: torch.Tensor, *,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """``Φ c`` (..., K, C) -> (..., N, C), with spectral dropout when enabled and training."""
        if self.training and self.spectral_dropout:
            coeffs = spectral_dropout(coeffs, generator=generator)
        return unproject(state, coeffs)
