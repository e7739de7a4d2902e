"""The one NIso objective pinned to its equations: l1, multiplicity, reconstruction through τ,
equivariance, spectral dropout, triplets; and the tie-breakers of niso.extras."""

from __future__ import annotations

import math

import pytest
import torch

from niso_geom.niso.extras import decorrelation_loss, decorrelation_term, jittered_mask_evals
from niso_geom.niso.isometry import iso_solve
from niso_geom.niso.losses import l1, multiplicity_loss, niso_objective, niso_pair_loss, solve_edges
from niso_geom.niso.operator import LearnedOperator, OperatorState, project, unproject

F64 = torch.float64




def _torus_state(h: int, w: int, scale: float = 1.0) -> OperatorState:
    """Exact eigenbasis of the periodic 5-point Laplacian (unit mass)."""
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


def _shift_pairs(h: int, w: int, b: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, h, w, c, generator=g, dtype=F64)
    s = torch.randint(0, h, (b, 2), generator=g)
    tx = torch.stack([torch.roll(x[i], (int(s[i, 0]), int(s[i, 1])), (0, 1)) for i in range(b)])
    return x.reshape(b, h * w, c), tx.reshape(b, h * w, c)


def test_l1_is_mean_absolute_difference() -> None:
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    assert l1(x, torch.zeros_like(x)).item() == pytest.approx(6.5 / 4)


@pytest.mark.parametrize("k", [2, 8, 32, 256])
def test_multiplicity_all_equal_is_sqrt_k_minus_1(k: int) -> None:
    value = multiplicity_loss(torch.full((k,), 0.7, dtype=F64)).item()
    # L = K·I - 11ᵀ: Σ L² = K²(K-1), plus the 1e-8 inside the root
    assert value == pytest.approx(math.sqrt(k * k * (k - 1) + 1e-8) / k, rel=1e-12)
    assert value == pytest.approx(math.sqrt(k - 1), rel=1e-8)


def test_multiplicity_reference_values() -> None:
    assert multiplicity_loss(torch.zeros(32)).item() == pytest.approx(5.57, abs=5e-3)
    assert multiplicity_loss(torch.zeros(256)).item() == pytest.approx(15.97, abs=5e-3)


def test_multiplicity_two_eigenvalues_closed_form() -> None:
    # L = [[g, -g], [-g, g]] with g = exp(-d): sqrt(4 g² + 1e-8) / 2
    for d in (0.1, 1.0, 3.0):
        g = math.exp(-d)
        value = multiplicity_loss(torch.tensor([0.0, d], dtype=F64)).item()
        assert value == pytest.approx(math.sqrt(4 * g * g + 1e-8) / 2, rel=1e-12)


def test_multiplicity_far_apart_is_tiny_and_decreases_with_spread() -> None:
    far = multiplicity_loss(100.0 * torch.arange(16, dtype=F64))
    assert far.item() == pytest.approx(math.sqrt(1e-8) / 16, rel=1e-6)
    values = [multiplicity_loss(s * torch.arange(10, dtype=F64)).item() for s in (0.0, 0.1, 0.5, 2.0)]
    assert values == sorted(values, reverse=True)


def test_multiplicity_batched_and_differentiable() -> None:
    ev = torch.rand(3, 6, dtype=F64, requires_grad=True)
    out = multiplicity_loss(ev)
    assert out.shape == (3,)
    assert torch.allclose(out[1], multiplicity_loss(ev[1]))
    (g,) = torch.autograd.grad(out.sum(), ev)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_exact_operator_has_zero_laplacian_loss() -> None:
    """The true torus eigenbasis reproduces every shift: recon ≈ 0 with and without the mask."""
    state = _torus_state(4, 4, scale=100.0)
    z0, tz0 = _shift_pairs(4, 4, b=5, c=24, seed=0)
    for mask in (False, True):
        terms = niso_pair_loss(state, z0, tz0, beta=0.5, mask=mask)
        assert terms["recon"] < 1e-8
        assert torch.allclose(terms["loss"], terms["recon"] + 0.5 * terms["mult"])
    # a random operator cannot
    rand = LearnedOperator(16, 16, eigenvalue_param="square", generator=torch.Generator().manual_seed(0),
                           dtype=F64)()
    assert niso_pair_loss(rand, z0, tz0)["recon"] > 0.1


def test_pair_loss_matches_manual_formula() -> None:
    state = LearnedOperator(12, 8, eigenvalue_param="square", generator=torch.Generator().manual_seed(1),
                            dtype=F64)()
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(3, 12, 4, generator=g, dtype=F64)
    tz0 = torch.randn(3, 12, 4, generator=g, dtype=F64)
    out = niso_objective(state, [z0, tz0], beta=0.25)
    terms, tau = out.terms, out.tau
    assert set(terms) == {"loss", "recon", "equiv", "mult"}
    assert torch.allclose(tau, iso_solve(state, z0, tz0))
    assert terms.keys() == niso_pair_loss(state, z0, tz0).keys()
    phi, m = state.phi, state.mass[:, None]
    tz0_p = phi @ tau @ phi.mT @ (m * z0)
    z0_p = phi @ tau.mT @ phi.mT @ (m * tz0)
    recon = (z0 - z0_p).abs().mean() + (tz0 - tz0_p).abs().mean()
    assert torch.allclose(terms["recon"], recon)
    assert torch.allclose(terms["loss"], recon + 0.25 * multiplicity_loss(state.evals))
    assert not terms["equiv"].requires_grad  # reported, not trained, at α = 0


def test_objective_with_alpha_decoder_and_dropout_is_the_paper_equation() -> None:
    """recon = L1(x0, D(Φ keep(τᵀ ẑ1))) + L1(x1, D(Φ keep(τ ẑ0))), equiv = L1(ẑ1, τ ẑ0) + L1(ẑ0, τᵀ ẑ1),
    loss = recon + α equiv + β mult; one decoder call for both directions."""
    state = LearnedOperator(12, 8, eigenvalue_param="cumsum", generator=torch.Generator().manual_seed(3),
                            dtype=F64)()
    g = torch.Generator().manual_seed(4)
    z0, z1 = torch.randn(2, 3, 12, 5, generator=g, dtype=F64)
    x0, x1 = torch.randn(2, 3, 12, 2, generator=g, dtype=F64)
    lin = torch.randn(5, 2, generator=g, dtype=F64)
    calls = []

    def decoder(z: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(z.shape))
        return torch.tanh(z @ lin)

    keep = torch.tensor([2, 8, 5])
    out = niso_objective(state, [z0, z1], [x0, x1], alpha=0.7, beta=0.3, decoder=decoder, keep=keep)
    assert calls == [(6, 12, 5)]
    c0, c1 = project(state, z0), project(state, z1)
    tau = out.tau
    rows = (torch.arange(8)[None, :] < keep[:, None]).to(F64)[..., None]  # (B, K, 1)
    x0_rec = decoder(unproject(state, rows * (tau.mT @ c1)))
    x1_rec = decoder(unproject(state, rows * (tau @ c0)))
    recon = l1(x0, x0_rec) + l1(x1, x1_rec)
    equiv = l1(c1, tau @ c0) + l1(c0, tau.mT @ c1)
    torch.testing.assert_close(out.terms["recon"], recon)
    torch.testing.assert_close(out.terms["equiv"], equiv)
    torch.testing.assert_close(out.terms["loss"], recon + 0.7 * equiv + 0.3 * multiplicity_loss(state.evals))


def test_exact_maps_have_zero_equivariance_and_the_identity_map_does_not() -> None:
    state = _torus_state(4, 4)
    z0, tz0 = _shift_pairs(4, 4, b=3, c=20, seed=3)
    assert niso_objective(state, [z0, tz0], mask=False).terms["equiv"] < 1e-10
    same = niso_objective(state, [z0, z0], mask=False).terms
    assert same["equiv"] < 1e-10 and same["recon"] < 1e-10
    c0, c1 = project(state, z0), project(state, tz0)
    identity_equiv = 2 * l1(c1, c0)  # what τ = I would leave
    assert identity_equiv > 0.1


def test_triplets_use_the_composed_map_on_the_chain_edge() -> None:
    state = _torus_state(4, 4, scale=100.0)
    z0, z1 = _shift_pairs(4, 4, b=2, c=20, seed=6)
    z2 = z1.reshape(2, 4, 4, 20).roll(1, dims=2).reshape(z1.shape)
    out = niso_objective(state, [z0, z1, z2], topology="triplet", alpha=1.0)
    (i0, j0, t01), (i1, j1, t12), (i2, j2, t02) = out.edges
    assert [(i0, j0), (i1, j1), (i2, j2)] == [(0, 1), (1, 2), (0, 2)]
    torch.testing.assert_close(t02, t12 @ t01)
    assert out.terms["recon"] < 1e-8 and out.terms["equiv"] < 1e-8
    with pytest.raises(ValueError, match="a triplet has 3 views"):
        solve_edges(out.coeffs[:2], None, "triplet")
    with pytest.raises(ValueError, match="targets"):
        niso_objective(state, [z0, z1], [z0])


def test_spectral_dropout_truncates_each_sample_for_both_directions() -> None:
    state = _torus_state(4, 4)
    z0, tz0 = _shift_pairs(4, 4, b=3, c=20, seed=4)
    full = niso_objective(state, [z0, tz0], mask=False).terms["recon"]
    assert torch.allclose(niso_objective(state, [z0, tz0], mask=False, keep=16).terms["recon"], full)
    keep = torch.tensor([2, 16, 9])
    per = niso_objective(state, [z0, tz0], mask=False, keep=keep).terms["recon"]
    parts = [niso_objective(state, [z0[i:i + 1], tz0[i:i + 1]], mask=False, keep=int(keep[i])).terms["recon"]
             for i in range(3)]
    assert torch.allclose(per, sum(parts) / 3) and per > full + 0.1


def test_pair_loss_backward_finite_with_few_channels() -> None:
    """Fewer channels than K (a rank-deficient cross-covariance, many zero singular values)."""
    op = LearnedOperator(16, 16, generator=torch.Generator().manual_seed(5))
    z0, tz0 = _shift_pairs(4, 4, b=4, c=3, seed=5)
    terms = niso_pair_loss(op(), z0.float(), tz0.float())
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in op.parameters())


def test_mask_jitter_prefers_the_basis_of_irreducible_pairs() -> None:
    """Zero jitter is the paper's loss. With random offsets on Λ in the mask, the real Fourier
    basis (cos/sin pairs, τ block-diagonal in 2×2 blocks) loses less than a basis that mixes the
    pairs inside each eigenspace, although both reproduce every shift without jitter."""
    from niso_geom import TorusGrid

    eb = TorusGrid(4, 4, stencil="5pt").analytic_eigenbasis()
    phi = torch.tensor(eb.evecs)
    pure = OperatorState(phi=phi, evals=torch.tensor(100.0 * eb.evals), mass=torch.tensor(eb.mass))
    g = torch.Generator().manual_seed(3)
    mixed_phi = phi.clone()
    for space in eb.eigenspaces():
        idx = torch.as_tensor(space)
        q, _ = torch.linalg.qr(torch.randn(len(idx), len(idx), generator=g, dtype=F64))
        mixed_phi[:, idx] = phi[:, idx] @ q
    mixed = OperatorState(phi=mixed_phi, evals=pure.evals, mass=pure.mass)
    z0, tz0 = _shift_pairs(4, 4, b=64, c=16, seed=4)
    zero = torch.zeros(64, 16, dtype=F64)
    assert torch.allclose(niso_objective(pure, [z0, tz0], mask_evals=jittered_mask_evals(pure.evals, zero)).terms["loss"],
                          niso_pair_loss(pure, z0, tz0)["loss"])
    jitter = 0.5 * torch.randn(64, 16, generator=g, dtype=F64)
    losses = {}
    for name, state in (("pure", pure), ("mixed", mixed)):
        assert niso_pair_loss(state, z0, tz0)["recon"] < 1e-8
        losses[name] = float(niso_objective(state, [z0, tz0],
                                            mask_evals=jittered_mask_evals(state.evals, jitter)).terms["recon"])
    assert 0 < losses["pure"] < 0.8 * losses["mixed"], losses


def test_decorrelation_of_a_mixed_pair_is_its_power_contrast() -> None:
    """Rows with orthogonal samples have no correlation; rotating two rows of powers p1, p2 by
    45° gives ρ = (p1 - p2) / (p1 + p2) on that one pair (two ordered entries of K(K-1))."""
    k, c = 6, 12
    q, _ = torch.linalg.qr(torch.randn(c, c, generator=torch.Generator().manual_seed(0), dtype=F64))
    powers = torch.tensor([4.0, 1.0, 2.0, 3.0, 0.5, 1.5], dtype=F64)
    z = (powers.sqrt().unsqueeze(1) * q[:k] * math.sqrt(c)).unsqueeze(0)  # (1, K, C), z zᵀ/C = diag
    assert decorrelation_loss(z, rel_eps=0.0).item() == pytest.approx(0.0, abs=1e-24)
    mixed = z.clone()
    mixed[0, 0], mixed[0, 1] = (z[0, 0] + z[0, 1]) / math.sqrt(2), (z[0, 0] - z[0, 1]) / math.sqrt(2)
    rho = (4.0 - 1.0) / (4.0 + 1.0)
    assert decorrelation_loss(mixed, rel_eps=0.0).item() == pytest.approx(2 * rho**2 / (k * (k - 1)), rel=1e-10)
    # weights: only the mixed pair counts -> ρ² itself; a zero weight there -> 0
    w = torch.zeros(k, k, dtype=F64)
    w[0, 1] = w[1, 0] = 1.0
    assert decorrelation_loss(mixed, w, rel_eps=0.0).item() == pytest.approx(rho**2, rel=1e-10)
    assert decorrelation_loss(mixed, 1.0 - w, rel_eps=0.0).item() == pytest.approx(0.0, abs=1e-24)
    # a vector with no power is not divided by zero
    dead = mixed.clone()
    dead[0, 2] = 0.0
    assert torch.isfinite(decorrelation_loss(dead))


def test_decorrelation_term_prefers_unmixed_shells_and_is_off_by_default() -> None:
    """On stationary fields with a power law, a basis that mixes two Fourier pairs of different
    power scores a larger decorrelation term than the Fourier basis; weight 0 is the paper's loss."""
    from niso_geom import TorusGrid

    eb = TorusGrid(4, 4, stencil="5pt").analytic_eigenbasis()
    phi = torch.tensor(eb.evecs)
    state = OperatorState(phi=phi, evals=torch.tensor(eb.evals), mass=torch.tensor(eb.mass))
    g = torch.Generator().manual_seed(5)
    amp = 1.0 / (1.0 + torch.arange(16, dtype=F64))  # power falls along the eigenbasis
    x = torch.einsum("nk,k,bkc->bnc", phi, amp, torch.randn(128, 16, 64, generator=g, dtype=F64))
    z0, tz0 = x, x.reshape(-1, 4, 4, 64).roll(1, dims=1).reshape(x.shape)  # a row shift
    mixed_phi = phi.clone()
    mixed_phi[:, 1], mixed_phi[:, 5] = (phi[:, 1] + phi[:, 5]) / math.sqrt(2), (phi[:, 1] - phi[:, 5]) / math.sqrt(2)
    mixed = OperatorState(phi=mixed_phi, evals=state.evals, mass=state.mass)
    base = niso_pair_loss(state, z0, tz0)
    assert "decor" not in base
    on = {name: decorrelation_term(s, [project(s, z0), project(s, tz0)], mask=False)
          for name, s in (("pure", state), ("mixed", mixed))}
    assert on["pure"] < 0.2 * on["mixed"], (on["pure"], on["mixed"])
    # the moment path (Φᵀ M Σ M Φ) with Σ = the batch's own second moments is the batch path
    zz = torch.cat([z0, tz0]).transpose(0, 1).flatten(1)  # (N, 2B·C)
    sigma = zz @ zz.T / zz.shape[1]
    via = decorrelation_term(mixed, [project(mixed, z0), project(mixed, tz0)], mask=False, signal_moment=sigma)
    assert via.item() == pytest.approx(on["mixed"].item(), rel=1e-9)


def test_bfloat16_reconstruction_is_opt_in_and_close_to_float32() -> None:
    gen = torch.Generator().manual_seed(3)
    op = LearnedOperator(36, 36, generator=gen)
    x = torch.randn(4, 36, 24, generator=gen)
    tx = x.roll(5, dims=1)
    keep = torch.tensor([36, 20, 9, 30])

    def run(dtype):
        op.zero_grad()
        out = niso_objective(op(), [x, tx], keep=keep, recon_dtype=dtype)
        out.terms["loss"].backward()
        return out, [p.grad.clone() for p in op.parameters()]

    full, g_full = run(None)
    same, g_same = run(torch.float32)  # the latents' own dtype: the float32 path itself
    half, g_half = run(torch.bfloat16)
    assert torch.equal(full.terms["loss"], same.terms["loss"])
    assert all(torch.equal(a, b) for a, b in zip(g_same, g_full))
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in half.terms.values())
    assert half.terms["recon"] != full.terms["recon"]  # the products did run in bfloat16
    torch.testing.assert_close(half.terms["recon"], full.terms["recon"], rtol=2e-2, atol=0)
    half_all, full_all = torch.cat([g.flatten() for g in g_half]), torch.cat([g.flatten() for g in g_full])
    assert float((half_all - full_all).norm() / full_all.norm()) < 0.1  # per parameter: docs/performance.md
