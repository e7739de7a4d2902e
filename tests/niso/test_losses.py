"""l1, multiplicity, equivariance and reconstruction losses, niso_pair_loss."""

from __future__ import annotations

import math

import pytest
import torch

from niso_geom.niso.isometry import iso_solve
from niso_geom.niso.losses import (
    decorrelation_loss,
    equivariance_loss,
    l1,
    multiplicity_loss,
    niso_pair_loss,
    reconstruction_loss,
    spectral_pair,
)
from niso_geom.niso.operator import LearnedOperator, OperatorState, unproject

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
    terms, tau = niso_pair_loss(state, z0, tz0, beta=0.25, return_tau=True)
    assert set(terms) == {"loss", "recon", "mult"}
    assert torch.allclose(tau, iso_solve(state, z0, tz0))
    phi, m = state.phi, state.mass[:, None]
    tz0_p = phi @ tau @ phi.mT @ (m * z0)
    z0_p = phi @ tau.mT @ phi.mT @ (m * tz0)
    recon = (z0 - z0_p).abs().mean() + (tz0 - tz0_p).abs().mean()
    assert torch.allclose(terms["recon"], recon)
    assert torch.allclose(terms["loss"], recon + 0.25 * multiplicity_loss(state.evals))


def test_equivariance_loss() -> None:
    state = _torus_state(4, 4)
    z0, tz0 = _shift_pairs(4, 4, b=3, c=20, seed=3)
    tau = iso_solve(state, z0, tz0, mask=False)
    assert equivariance_loss(spectral_pair(state, tau, z0, tz0)) < 1e-10
    wrong = torch.eye(16, dtype=F64).expand(3, 16, 16)
    pair = spectral_pair(state, wrong, z0, tz0)
    expected = (pair.tz0_b - pair.z0_b).abs().mean() * 2  # τ = I: both directions compare z0_b and tz0_b
    assert torch.allclose(equivariance_loss(pair), expected) and expected > 0.1


def test_reconstruction_loss_with_decoder_and_dropout() -> None:
    state = _torus_state(4, 4)
    z0, tz0 = _shift_pairs(4, 4, b=3, c=20, seed=4)
    tau = iso_solve(state, z0, tz0, mask=False)
    pair = spectral_pair(state, tau, z0, tz0)
    calls = []

    def decoder(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape)
        return 2.0 * z + 1.0

    loss = reconstruction_loss(state, pair, (2 * z0 + 1, 2 * tz0 + 1), decoder=decoder)
    assert loss < 1e-10 and calls == [(6, 16, 20)]
    full = reconstruction_loss(state, pair, (z0, tz0))
    assert torch.allclose(reconstruction_loss(state, pair, (z0, tz0), keep=16), full)
    dropped = reconstruction_loss(state, pair, (z0, tz0), keep=4)
    manual = (z0 - unproject(state, pair.z0_p[:, :4])).abs().mean() + \
        (tz0 - unproject(state, pair.tz0_p[:, :4])).abs().mean()
    assert torch.allclose(dropped, manual) and dropped > 0.1
    # a per-sample keep is shared by both directions of a pair
    keep = torch.tensor([2, 16, 9])
    per = reconstruction_loss(state, pair, (z0, tz0), keep=keep)
    parts = [reconstruction_loss(state, type(pair)(*(t[i:i + 1] for t in pair)), (z0[i:i + 1], tz0[i:i + 1]),
                                 keep=int(keep[i])) for i in range(3)]
    assert torch.allclose(per, sum(parts) / 3)


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
    assert torch.allclose(niso_pair_loss(pure, z0, tz0, mask_jitter=zero)["loss"],
                          niso_pair_loss(pure, z0, tz0)["loss"])
    jitter = 0.5 * torch.randn(64, 16, generator=g, dtype=F64)
    losses = {}
    for name, state in (("pure", pure), ("mixed", mixed)):
        assert niso_pair_loss(state, z0, tz0)["recon"] < 1e-8
        losses[name] = float(niso_pair_loss(state, z0, tz0, mask_jitter=jitter)["recon"])
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
    on = {name: niso_pair_loss(s, z0, tz0, decorrelation=1.0, mask=False)
          for name, s in (("pure", state), ("mixed", mixed))}
    assert on["pure"]["decor"] < 0.2 * on["mixed"]["decor"], (on["pure"]["decor"], on["mixed"]["decor"])
    # the moment path (Φᵀ M Σ M Φ) with Σ = the batch's own second moments is the batch path
    zz = torch.cat([z0, tz0]).transpose(0, 1).flatten(1)  # (N, 2B·C)
    sigma = zz @ zz.T / zz.shape[1]
    via = niso_pair_loss(mixed, z0, tz0, decorrelation=1.0, mask=False, signal_moment=sigma)
    assert via["decor"].item() == pytest.approx(on["mixed"]["decor"].item(), rel=1e-9)
    assert on["pure"]["loss"].item() == pytest.approx((on["pure"]["recon"] + 0.5 * on["pure"]["mult"]
                                                       + on["pure"]["decor"]).item(), rel=1e-12)
