"""LearnedOperator, OperatorState and the projection / dropout helpers."""

from __future__ import annotations

import pytest
import torch

from niso_geom.niso.operator import (
    LearnedOperator,
    OperatorState,
    apply_left,
    dense_operator,
    m_orthonormalize,
    orthonormality_error,
    project,
    sample_truncation,
    spectral_dropout,
    synthesize_truncated,
    unproject,
)

F64 = torch.float64




def _operator(n: int, k: int, *, seed: int = 0, param: str = "cumsum", random_mass: bool = True,
              **kw) -> LearnedOperator:
    op = LearnedOperator(n, k, eigenvalue_param=param, generator=torch.Generator().manual_seed(seed),
                         dtype=F64, **kw)
    if random_mass:
        with torch.no_grad():
            op.mass_raw.copy_(0.5 + torch.rand(n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64))
    return op


@pytest.mark.parametrize("n,k", [(20, 8), (16, 16), (64, 64)])
@pytest.mark.parametrize("param", ["cumsum", "square"])
def test_phi_is_m_orthonormal(n: int, k: int, param: str) -> None:
    state = _operator(n, k, param=param)()
    gram = state.phi.mT @ (state.mass[:, None] * state.phi)
    assert (gram - torch.eye(k, dtype=F64)).abs().max() < 1e-10
    assert orthonormality_error(state) < 1e-10
    assert state.mass.min() > 0.2  # the random mass really is non-uniform
    assert state.mass.max() / state.mass.min() > 2


def test_initialization_matches_reference() -> None:
    n, k = 400, 200
    op = LearnedOperator(n, k, generator=torch.Generator().manual_seed(0))
    assert torch.equal(op.mass_raw.detach(), torch.ones(n))
    assert torch.allclose(op.mass(), torch.full((n,), 1 + 1e-8))
    assert abs(op.phi_raw.std().item() - 0.01) < 5e-4
    assert abs(op.evals_raw.std().item() - 1 / k) < 0.15 / k
    state = op()
    assert state.evals.max() < 5.0 / k  # cumsum of k values ~ 1/k²: clustered near 0
    sq = LearnedOperator(n, k, eigenvalue_param="square", generator=torch.Generator().manual_seed(0))
    assert abs(sq.evals_raw.std().item() - 1.0) < 0.15


def test_generator_makes_init_reproducible() -> None:
    a = LearnedOperator(10, 4, generator=torch.Generator().manual_seed(3))
    b = LearnedOperator(10, 4, generator=torch.Generator().manual_seed(3))
    c = LearnedOperator(10, 4, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.phi_raw, c.phi_raw)


def test_evals_sorted_and_phi_permuted_consistently() -> None:
    op = _operator(12, 6, param="square", seed=5)
    raw = op.eigenvalues().detach()
    assert not torch.equal(raw, raw.sort().values)  # the "square" init is unsorted
    state = op()
    assert (state.evals[1:] >= state.evals[:-1]).all()
    order = torch.argsort(raw)
    phi_unsorted = m_orthonormalize(op.phi_raw.detach(), op.mass().detach())
    assert torch.allclose(state.phi, phi_unsorted[:, order], atol=1e-12)
    assert torch.allclose(state.evals, raw[order])


def test_cumsum_evals_nondecreasing_and_nonnegative() -> None:
    state = _operator(30, 10, param="cumsum")()
    assert (state.evals >= 0).all()
    assert torch.allclose(state.evals, torch.cumsum(_operator(30, 10).evals_raw.detach().square(), 0))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LearnedOperator(4, 5)
    with pytest.raises(ValueError):
        LearnedOperator(4, 2, eigenvalue_param="log")


def test_gradients_reach_every_parameter() -> None:
    op = _operator(10, 5, seed=2)
    state = op()
    x = torch.randn(3, 10, 4, dtype=F64)
    loss = (unproject(state, project(state, x)) - x).square().mean() + state.evals.sum()
    loss.backward()
    for name, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_project_unproject_round_trip_full_rank() -> None:
    state = _operator(16, 16, seed=3)()
    x = torch.randn(2, 5, 16, 7, dtype=F64)
    c = project(state, x)
    assert c.shape == (2, 5, 16, 7)
    assert torch.allclose(unproject(state, c), x, atol=1e-10)


def test_project_is_m_orthogonal_projection_when_k_lt_n() -> None:
    state = _operator(20, 6, seed=4)()
    x = torch.randn(3, 20, 2, dtype=F64)
    px = unproject(state, project(state, x))
    # idempotent, and the residual is M-orthogonal to the basis
    assert torch.allclose(unproject(state, project(state, px)), px, atol=1e-10)
    assert project(state, x - px).abs().max() < 1e-10
    assert not torch.allclose(px, x)


def test_unproject_with_fewer_rows_uses_lowest_eigenpairs() -> None:
    state = _operator(10, 6, seed=5)()
    c = torch.randn(3, 6, 2, dtype=F64)
    assert torch.allclose(unproject(state, c[:, :4]), state.phi[:, :4] @ c[:, :4])
    assert torch.allclose(unproject(state.truncate(4), c[:, :4]), unproject(state, c[:, :4]))


@pytest.mark.parametrize("k", [5, 12])
def test_dense_operator_forms(k: int) -> None:
    state = _operator(12, k, seed=6, param="square")()
    M = torch.diag(state.mass)
    S = dense_operator(state, "stiffness")
    L = dense_operator(state, "laplacian")
    O = dense_operator(state, "plain")
    assert torch.allclose(S, S.mT, atol=1e-12)
    assert torch.linalg.eigvalsh(S).min() > -1e-10  # PSD: Λ >= 0
    # generalized eigenpairs S Φ = M Φ Λ, Laplacian M⁻¹S, plain ΦΛΦᵀ
    assert torch.allclose(S @ state.phi, M @ state.phi * state.evals, atol=1e-10)
    assert torch.allclose(L, torch.linalg.solve(M, S), atol=1e-10)
    assert torch.allclose(O, state.phi @ torch.diag(state.evals) @ state.phi.mT, atol=1e-12)
    with pytest.raises(ValueError):
        dense_operator(state, "weak")


def test_sample_truncation_range() -> None:
    draws = sample_truncation(8, size=(4000,), generator=torch.Generator().manual_seed(0))
    assert draws.min() == 1 and draws.max() == 7
    assert set(draws.tolist()) == set(range(1, 8))
    assert sample_truncation(1, size=(3,)).tolist() == [1, 1, 1]


def test_spectral_dropout_keeps_lowest_rows() -> None:
    c = torch.randn(4, 10, 3, dtype=F64)
    out = spectral_dropout(c, keep=3)
    assert torch.equal(out[:, :3], c[:, :3]) and (out[:, 3:] == 0).all()
    keep = torch.tensor([1, 4, 9, 10])
    out = spectral_dropout(c, keep=keep)
    for b, kb in enumerate(keep.tolist()):
        assert torch.equal(out[b, :kb], c[b, :kb]) and (out[b, kb:] == 0).all()
    # random: one draw for the call, or one per sample
    out = spectral_dropout(c, generator=torch.Generator().manual_seed(1))
    kept = (out.abs().sum(-1) > 0).sum(-1)
    assert (kept == kept[0]).all() and 1 <= kept[0] <= 9
    out = spectral_dropout(torch.ones(200, 10, 1), per_sample=True, generator=torch.Generator().manual_seed(2))
    kept = out.sum((-2, -1))
    assert kept.min() >= 1 and kept.max() <= 9 and len(set(kept.tolist())) > 5


def test_module_dropout_only_when_enabled_and_training() -> None:
    c = torch.randn(64, 8, 2, dtype=F64)
    op = _operator(8, 8, seed=7, spectral_dropout=True)
    state = op()
    full = unproject(state, c)
    op.train()
    dropped = op.unproject(state, c, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(dropped, full)
    op.eval()
    assert torch.equal(op.unproject(state, c), full)
    off = _operator(8, 8, seed=7)
    off.train()
    assert torch.equal(off.unproject(state, c), full)


def test_state_helpers() -> None:
    state = _operator(9, 4, seed=8)()
    s32 = state.to(torch.float32)
    assert s32.phi.dtype == s32.evals.dtype == s32.mass.dtype == torch.float32
    assert (state.n, state.k) == (9, 4)
    assert not state.detach().phi.requires_grad
    st = OperatorState(torch.eye(3, dtype=F64), torch.arange(3.0, dtype=F64), torch.ones(3, dtype=F64))
    assert orthonormality_error(st) == 0


def test_compute_dtype_float64_for_float32_parameters() -> None:
    op = LearnedOperator(32, 32, generator=torch.Generator().manual_seed(0), compute_dtype=F64)
    state = op()
    assert state.phi.dtype == torch.float32
    assert orthonormality_error(state.to(F64)) < 1e-5


@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7), (2, 3, 5, 7)])
def test_apply_left_is_the_matmul(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 5, generator=gen, requires_grad=True)
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    g = torch.randn(*shape[:-2], 4, shape[-1], generator=gen)
    ref, ours = a @ x, apply_left(a, x)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref)
    for mine, theirs in zip(torch.autograd.grad(ours, (a, x), g), torch.autograd.grad(ref, (a, x), g)):
        torch.testing.assert_close(mine, theirs)
    torch.testing.assert_close(apply_left(a.mT.contiguous().mT, x), ref)  # a strided a, as Φᵀ is


@pytest.mark.parametrize("keep", ["int", "per_sample"])
def test_truncated_synthesis_is_dropout_then_synthesis(keep: str) -> None:
    # the truncation folded into Φ's columns: the same values and gradients (float64) as masking
    # the coefficient stack first, for an int and a per-sample (B,) truncation, K' < K rows too
    gen = torch.Generator().manual_seed(1)
    op = _operator(12, 8)
    b, c = 3, 5
    keep_v = 5 if keep == "int" else torch.tensor([1, 8, 4])
    for rows in (8, 6):
        coeffs = torch.randn(2, b, rows, c, generator=gen, dtype=F64, requires_grad=True)
        ours = synthesize_truncated(op(), coeffs, keep_v)
        ref = unproject(op(), spectral_dropout(coeffs, keep=keep_v))  # its own graph of the state
        assert ours.shape == ref.shape == (2, b, 12, c)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        g = torch.randn(ours.shape, generator=gen, dtype=F64)
        params = [coeffs, *op.parameters()]
        for mine, theirs in zip(torch.autograd.grad(ours, params, g, allow_unused=True),
                                torch.autograd.grad(ref, params, g, allow_unused=True)):
            if theirs is None:
                assert mine is None or not mine.abs().any()
            else:
                torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


def test_project_scales_the_basis_not_the_stack() -> None:
    # (M Φ)ᵀ x against Φᵀ (M x): equal (float64), values and gradients
    gen = torch.Generator().manual_seed(2)
    op = _operator(12, 8)
    x = torch.randn(2, 3, 12, 5, generator=gen, dtype=F64, requires_grad=True)
    ours = project(op(), x)
    state = op()  # its own graph
    ref = state.phi.mT @ (state.mass.unsqueeze(-1) * x)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn(ours.shape, generator=gen, dtype=F64)
    params = [x, *op.parameters()]
    for mine, theirs in zip(torch.autograd.grad(ours, params, g, allow_unused=True),
                            torch.autograd.grad(ref, params, g, allow_unused=True)):
        if theirs is not None:
            torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
