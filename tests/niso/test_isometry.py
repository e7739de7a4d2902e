"""delta_mask, iso_solve (masked SO(K) Procrustes), transform, IsoSolve."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from niso_geom.niso.isometry import IsoSolve, delta_mask, iso_solve, iso_solve_coeffs, transform
from niso_geom.niso.linalg import procrustes
from niso_geom.niso.operator import LearnedOperator, OperatorState, project

F64 = torch.float64




def _torus_state(h: int, w: int, scale: float = 1.0) -> OperatorState:
    """Exact eigenbasis of the periodic 5-point Laplacian on an h×w grid (unit mass), built here
    so these tests do not depend on the domain classes."""
    n = h * w
    L = torch.zeros(n, n, dtype=F64)
    for i in range(h):
        for j in range(w):
            p = i * w + j
            L[p, p] += 4
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                L[p, ((i + di) % h) * w + (j + dj) % w] -= 1
    evals, phi = torch.linalg.eigh(L)
    return OperatorState(phi=phi, evals=scale * evals.clamp_min(0), mass=torch.ones(n, dtype=F64))


def _shift_pairs(h: int, w: int, b: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, h, w, c, generator=g, dtype=F64)
    shifts = torch.randint(0, max(h, w), (b, 2), generator=g)
    tx = torch.stack([torch.roll(x[i], (int(shifts[i, 0]), int(shifts[i, 1])), (0, 1)) for i in range(b)])
    return x.reshape(b, h * w, c), tx.reshape(b, h * w, c), shifts


def _is_rotation(tau: torch.Tensor, atol: float = 1e-10) -> bool:
    k = tau.shape[-1]
    eye = torch.eye(k, dtype=tau.dtype).expand_as(tau)
    return bool(torch.allclose(tau.mT @ tau, eye, atol=atol)
                and torch.allclose(torch.linalg.det(tau), torch.ones(tau.shape[:-2], dtype=tau.dtype), atol=atol))


def test_delta_mask() -> None:
    ev = torch.tensor([0.0, 0.5, 2.0, 2.0], dtype=F64)
    P = delta_mask(ev)
    assert P.shape == (4, 4)
    assert torch.allclose(P, P.mT) and torch.allclose(torch.diagonal(P), torch.ones(4, dtype=F64))
    assert math.isclose(P[0, 2].item(), math.exp(-2.0)) and P[2, 3] == 1
    assert delta_mask(torch.rand(3, 5)).shape == (3, 5, 5)
    # a width w is the paper's mask on Λ / w
    assert torch.allclose(delta_mask(ev, 0.25), delta_mask(ev / 0.25))
    with pytest.raises(ValueError, match="width"):
        delta_mask(ev, 0.0)


def test_mask_width_scales_like_the_eigenvalues() -> None:
    """τ with mask width w on Λ equals τ with the paper's mask on Λ / w; a narrow width on
    separated torus eigenvalues still recovers the shift."""
    h, w = 4, 6
    state = _torus_state(h, w)
    z0, tz0, _ = _shift_pairs(h, w, b=3, c=40, seed=5)
    narrow = iso_solve(state, z0, tz0, mask_width=0.01)
    scaled = iso_solve(OperatorState(state.phi, state.evals / 0.01, state.mass), z0, tz0)
    assert torch.allclose(narrow, scaled, atol=1e-12)
    assert torch.allclose(transform(state, narrow, z0), tz0, atol=1e-8)


@pytest.mark.parametrize("n,k,c", [(20, 8, 3), (16, 16, 32), (12, 6, 12)])
def test_tau_in_so_k(n: int, k: int, c: int) -> None:
    op = LearnedOperator(n, k, eigenvalue_param="square", generator=torch.Generator().manual_seed(n), dtype=F64)
    state = op()
    g = torch.Generator().manual_seed(1)
    a = torch.randn(32, n, c, generator=g, dtype=F64)
    b = torch.randn(32, n, c, generator=g, dtype=F64)
    tau = iso_solve(state, a, b)
    assert tau.shape == (32, k, k)
    assert _is_rotation(tau)
    # the SO(K) fix was needed for part of the batch
    a_hat, b_hat = project(state, a), project(state, b)
    plain = procrustes(delta_mask(state.evals) * (b_hat @ a_hat.mT))
    assert (torch.linalg.det(plain) < 0).any()


def test_tau_maximizes_masked_objective() -> None:
    """τ is optimal for tr(Rᵀ (P ⊙ B̂Âᵀ)) against rotations near it and random rotations."""
    k = 4
    g = torch.Generator().manual_seed(2)
    a_hat = torch.randn(k, 6, generator=g, dtype=F64)
    b_hat = torch.randn(k, 6, generator=g, dtype=F64)
    evals = torch.tensor([0.0, 0.3, 0.4, 2.0], dtype=F64)
    tau = iso_solve_coeffs(a_hat, b_hat, evals)
    C = delta_mask(evals) * (b_hat @ a_hat.mT)
    value = (tau * C).sum()
    om = torch.randn(400, k, k, generator=g, dtype=F64)
    near = tau @ torch.linalg.matrix_exp(1e-3 * (om - om.mT))
    assert ((near * C).sum((-2, -1)) <= value + 1e-12).all()
    q, _ = torch.linalg.qr(torch.randn(3000, k, k, generator=g, dtype=F64))
    q[torch.linalg.det(q) < 0, :, 0] *= -1
    assert ((q * C).sum((-2, -1)) <= value + 1e-12).all()


def test_unmasked_solve_recovers_torus_shift() -> None:
    """With the exact torus eigenbasis and enough channels, τ is the shift's spectral matrix,
    which commutes with Λ (block-diagonal in eigenspaces), and transform() is the roll."""
    h = w = 4
    state = _torus_state(h, w)
    z0, tz0, _ = _shift_pairs(h, w, b=6, c=24, seed=3)
    tau = iso_solve(state, z0, tz0, mask=False)
    assert _is_rotation(tau)
    assert torch.allclose(transform(state, tau, z0), tz0, atol=1e-10)
    assert torch.allclose(transform(state, tau, tz0, inverse=True), z0, atol=1e-10)
    lam = torch.diag(state.evals)
    assert torch.allclose(tau @ lam, lam @ tau, atol=1e-10)


def test_masked_solve_recovers_torus_shift_with_separated_eigenvalues() -> None:
    """Scaling Λ by 100 makes the mask ≈ the eigenspace indicator; the true τ is block-diagonal
    there, so the masked solve still recovers it."""
    h, w = 4, 6
    state = _torus_state(h, w, scale=100.0)
    z0, tz0, _ = _shift_pairs(h, w, b=4, c=40, seed=4)
    tau = iso_solve(state, z0, tz0, mask=True)
    assert torch.allclose(transform(state, tau, z0), tz0, atol=1e-8)


def test_tau_identity_for_identical_signals_and_finite_gradients() -> None:
    """a == b gives τ = I (P ⊙ ÂÂᵀ is positive semi-definite); the backward through this
    degenerate point, also with fewer channels than K (rank deficient), stays finite."""
    for c in (24, 5):
        op = LearnedOperator(16, 16, eigenvalue_param="square", generator=torch.Generator().manual_seed(5),
                             dtype=F64)
        a = torch.randn(3, 16, c, generator=torch.Generator().manual_seed(6), dtype=F64)
        tau = iso_solve(op(), a, a)
        if c >= 16:
            assert torch.allclose(tau, torch.eye(16, dtype=F64).expand(3, 16, 16), atol=1e-10)
        assert _is_rotation(tau)
        (tau * torch.randn_like(tau)).sum().backward()
        for name, p in op.named_parameters():
            assert torch.isfinite(p.grad).all(), (c, name)


def test_iso_solve_gradcheck() -> None:
    state = LearnedOperator(7, 5, eigenvalue_param="square", generator=torch.Generator().manual_seed(7),
                            dtype=F64)().detach()
    g = torch.Generator().manual_seed(8)
    a = torch.randn(2, 7, 6, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(2, 7, 6, generator=g, dtype=F64, requires_grad=True)
    evals = state.evals.clone().requires_grad_()

    def fn(a_, b_, ev):
        return iso_solve(OperatorState(state.phi, ev, state.mass), a_, b_)

    assert gradcheck(fn, (a, b, evals))


def test_iso_solve_module_and_float32_with_float64_compute() -> None:
    op = LearnedOperator(10, 6, generator=torch.Generator().manual_seed(9))
    module = IsoSolve(op, compute_dtype=F64)
    a = torch.randn(2, 10, 3)
    b = torch.randn(2, 10, 3)
    tau, state = module(a, b)
    assert tau.dtype == torch.float32 and tau.shape == (2, 6, 6)
    assert torch.allclose(tau, iso_solve(state, a, b, compute_dtype=F64))
    assert _is_rotation(tau.double(), atol=1e-6)
