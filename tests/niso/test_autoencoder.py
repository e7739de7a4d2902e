"""NIsoAutoencoder objectives, frozen-kernel coefficients, mixed precision and the pretrain loop."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from niso_geom.niso.autoencoder import NIsoAutoencoder, PlainAutoencoder, encode_coefficients
from niso_geom.niso.isometry import iso_solve_coeffs
from niso_geom.niso.losses import l1, multiplicity_loss
from niso_geom.niso.models import GridDecoder, GridEncoder, from_flat, to_flat
from niso_geom.niso.operator import LearnedOperator, project, unproject
from niso_geom.train import pretrain, resolve_amp_dtype, rng_state, set_rng_state

K = 6




@pytest.fixture(autouse=True)
def _keep_global_rng() -> Iterator[None]:
    state = rng_state()
    yield
    set_rng_state(state)


def _model(dtype=torch.float32, *, alpha=0.5, beta=0.1, dropout=False, seed=0) -> NIsoAutoencoder:
    torch.manual_seed(seed)
    enc = GridEncoder(1, (4, 8), (1, 1), 5, lift=4)
    dec = GridDecoder(5, (8, 4), (1, 1), 1)
    op = LearnedOperator(16, K, spectral_dropout=dropout)
    return NIsoAutoencoder(enc, dec, op, alpha=alpha, beta=beta).to(dtype)


def _images(b: int, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 8, 8, generator=g, dtype=dtype) * 2 - 1


def test_pair_loss_is_the_reference_objective():
    """recon + α equiv + β mult, assembled here from the core functions (float64)."""
    model = _model(torch.float64, alpha=0.7, beta=0.3)
    x, tx = _images(3, 1, torch.float64), _images(3, 2, torch.float64)
    terms = model.pair_loss(x, tx)

    state = model.operator()
    z0, z1 = to_flat(model.encoder(x)), to_flat(model.encoder(tx))
    c0, c1 = project(state, z0), project(state, z1)
    tau = iso_solve_coeffs(c0, c1, state.evals)
    decode = lambda c: model.decoder(from_flat(unproject(state, c), 4, 4))  # noqa: E731
    recon = l1(x, decode(tau.mT @ c1)) + l1(tx, decode(tau @ c0))
    equiv = l1(c1, tau @ c0) + l1(c0, tau.mT @ c1)
    mult = multiplicity_loss(state.evals)
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["equiv"], equiv)
    torch.testing.assert_close(terms["mult"], mult)
    torch.testing.assert_close(terms["loss"], recon + 0.7 * equiv + 0.3 * mult)


def test_ablation_weights_drop_their_terms():
    x, tx = _images(2, 1), _images(2, 2)
    for alpha, beta in ((0.0, 0.1), (0.5, 0.0)):
        terms = _model(alpha=alpha, beta=beta).pair_loss(x, tx)
        expected = terms["recon"] + alpha * terms["equiv"] + beta * terms["mult"]
        torch.testing.assert_close(terms["loss"].detach(), expected)
        assert terms["equiv"] > 0 and terms["mult"] > 0  # still computed and logged


def test_identical_views_give_identity_tau_and_zero_equivariance():
    model = _model(torch.float64)
    x = _images(2, 3, torch.float64)
    assert model.pair_loss(x, x)["equiv"] < 1e-10


def test_triplet_loss_uses_the_composed_map_and_trains_everything():
    model = _model()
    x0, x1, x2 = _images(2, 1), _images(2, 2), _images(2, 3)
    terms = model.step_loss((x0, x1, x2))
    terms["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.operator.parameters())
    # x0 = x1 = x2: all three maps are the identity
    same = _model(torch.float64).triplet_loss(*(3 * [_images(2, 4, torch.float64)]))
    assert same["equiv"] < 1e-10
    with pytest.raises(ValueError, match="pair or a triplet"):
        model.step_loss((x0,))


def test_spectral_dropout_only_in_training():
    model = _model(dropout=True)
    x, tx = _images(2, 1), _images(2, 2)
    torch.manual_seed(0)
    a = model.pair_loss(x, tx)["recon"]
    torch.manual_seed(1)
    b = model.pair_loss(x, tx)["recon"]
    assert not torch.allclose(a, b)  # different random truncations
    model.eval()
    assert torch.equal(model.pair_loss(x, tx)["recon"], model.pair_loss(x, tx)["recon"])


def test_encode_coefficients_freezes_the_kernel_unless_asked():
    model = _model()
    x = _images(5, 1)
    coeffs = encode_coefficients(model, x, batch_size=2)
    assert coeffs.shape == (5, K, 5) and not coeffs.requires_grad
    with torch.no_grad():
        expected = project(model.operator(), to_flat(model.encoder(x)))
    torch.testing.assert_close(coeffs, expected)

    trained = encode_coefficients(model, x, train_kernel=True)
    trained.square().sum().backward()
    assert model.operator.phi_raw.grad is not None and model.operator.phi_raw.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.parameters())  # the encoder never trains here
    assert model.operator.evals_raw.grad is None  # Λ does not enter Φᵀ M z


def test_autocast_keeps_the_spectral_part_in_float32():
    """bfloat16 autocast (CPU here, CUDA in practice) for the networks only: the latents,
    τ and the loss terms are float32 and close to the full-precision ones."""
    model = _model()
    x, tx = _images(2, 1), _images(2, 2)
    ref = model.pair_loss(x, tx)
    model.amp_dtype = resolve_amp_dtype("bf16", "cpu")
    seen = []
    handle = model.operator.register_forward_hook(lambda m, i, out: seen.append(out.phi.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside an outer autocast region
        assert model.encode(x).dtype == torch.float32
        amp = model.pair_loss(x, tx)
    handle.remove()
    assert seen and all(d == torch.float32 for d in seen)
    for key in ("loss", "recon", "equiv", "mult"):
        assert amp[key].dtype == torch.float32
        torch.testing.assert_close(amp[key], ref[key], rtol=0.05, atol=1e-3)
    amp["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_resolve_amp_dtype():
    assert resolve_amp_dtype(None, "cpu") is None
    assert resolve_amp_dtype("off", "cuda") is None
    assert resolve_amp_dtype(True, "cpu") == torch.bfloat16
    assert resolve_amp_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError):
        resolve_amp_dtype("fp8", "cpu")


class _Pairs:
    """A resumable source of fixed-size random pairs (NumPy Generator state in state_dict)."""

    def __init__(self, b: int, seed: int = 0):
        self.b, self.rng = b, np.random.default_rng(seed)

    def __call__(self):
        x = torch.from_numpy(self.rng.uniform(-1, 1, (self.b, 1, 8, 8)).astype(np.float32))
        return x, torch.roll(x, 1, dims=-1)

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_pretrain_writes_metrics_and_resumes_exactly(tmp_path):
    kw = dict(lr=1e-3, warmup=2, device="cpu", progress=False, log_every=2, checkpoint_every=2)
    straight = _model(dropout=True)
    pretrain(straight, _Pairs(2), 4, out_dir=tmp_path / "a", **kw)

    torch.manual_seed(123)
    part = _model(dropout=True)
    pretrain(part, _Pairs(2), 2, decay_steps=4, out_dir=tmp_path / "b", **kw)
    torch.manual_seed(999)  # the resumed run must restore the RNG itself
    resumed = _model(dropout=True, seed=5)
    res = pretrain(resumed, _Pairs(2), 4, out_dir=tmp_path / "b", **kw)
    assert res.resumed_from == 2 and res.steps == 4
    torch.testing.assert_close(_params(resumed), _params(straight), rtol=0, atol=0)

    lines = [json.loads(s) for s in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    assert {"loss", "recon", "equiv", "mult", "lr"} <= set(lines[0])
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("step_*.pt")) == [
        "step_000000002.pt", "step_000000004.pt"]
    again = pretrain(resumed, _Pairs(2), 4, out_dir=tmp_path / "b", **kw)  # finished: nothing to do
    assert again.resumed_from == 4 and again.final["loss"] == lines[-1]["loss"]


def test_gradient_accumulation_matches_the_full_batch():
    """Two micro-batches of 2 with accum=2 = one batch of 4 (every term is a per-sample mean)."""
    x = _images(4, 7, torch.float64)
    tx = torch.flip(x, dims=[-1])
    halves = iter([(x[:2], tx[:2]), (x[2:], tx[2:])])
    a, b = _model(torch.float64), _model(torch.float64)
    kw = dict(lr=1e-3, warmup=0, device="cpu", progress=False, out_dir=None)
    pretrain(a, lambda: next(halves), 1, accum=2, **kw)
    pretrain(b, lambda: (x, tx), 1, **kw)
    torch.testing.assert_close(_params(a), _params(b), rtol=1e-9, atol=1e-12)


def test_plain_autoencoder_reconstructs_every_view():
    torch.manual_seed(0)
    ae = PlainAutoencoder(GridEncoder(1, (4, 8), (1, 1), 5, lift=4), GridDecoder(5, (8, 4), (1, 1), 1))
    x, tx = _images(2, 1), _images(2, 2)
    terms = ae.step_loss((x, tx))
    both = torch.cat([x, tx])
    torch.testing.assert_close(terms["loss"], (ae.decoder(ae.encoder(both)) - both).abs().mean())
    assert ae.encode(x).shape == (2, 16, 5) and ae.latent_shape == (4, 4)


def test_wrong_latent_size_is_a_clear_error():
    torch.manual_seed(0)
    model = NIsoAutoencoder(GridEncoder(1, (4, 8), (1, 1), 5, lift=4), GridDecoder(5, (8, 4), (1, 1), 1),
                            LearnedOperator(25, K))
    with pytest.raises(ValueError, match="N = 16"):
        model.encode(_images(1))


def test_latent_scale_norm_fixes_the_scale_per_sample():
    from niso_geom.niso.autoencoder import LatentScaleNorm

    z = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    z[1] *= 1e-3
    out = LatentScaleNorm(eps=0.0)(z)
    torch.testing.assert_close(out.square().mean(dim=(1, 2, 3)), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(LatentScaleNorm(eps=0.0)(7.0 * z), out)
    assert LatentScaleNorm()(z.to(torch.bfloat16)).dtype == torch.float32
