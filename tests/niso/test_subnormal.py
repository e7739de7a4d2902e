"""No subnormal float32 number anywhere in a training step, even for a widely spread spectrum.

Subnormal arithmetic is 10–100× slower on x86; a learned spectrum spread to λ ≈ 250 used to put
~9 % of the τ mask exp(−|λi − λj|) below float32's normal range. Every tensor an operator of a
full step (forward, backward, AdamW) produces is inspected by a dispatch mode.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from niso_geom.experiments.spectra import (
    SpectraBatches,
    SpectraObjective,
    build_problem,
    make_operator,
    operator_param_groups,
    preset,
    signal_moment,
)
from niso_geom.niso.isometry import decay_cutoff, decay_exp, delta_mask
from niso_geom.niso.losses import multiplicity_loss
from niso_geom.train import make_optimizer

TINY32 = torch.finfo(torch.float32).tiny  # 1.1754944e-38
LAPACK = {torch.ops.aten._linalg_svd.default, torch.ops.aten._linalg_slogdet.default,
          torch.ops.aten._linalg_det.default}


def _subnormal_count(t: torch.Tensor) -> int:
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.float32, torch.bfloat16) or t.is_meta:
        return 0
    a = t.detach().abs()
    return int(((a > 0) & (a < TINY32)).sum())


class SubnormalWatch(TorchDispatchMode):
    """Records every op whose inputs or outputs hold a subnormal float32 value.

    The one exception are LAPACK's factorizations (SVD, LU): the singular vectors of a nearly
    block-diagonal matrix decay below the normal range, and so may its LU factors. Their raw
    outputs may hold subnormals, and ops that read them (the flush to zero right after the SVD,
    the sign of the LU's determinant) are accepted; nothing derived from them may hold one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.svd_outputs: set[int] = set()
        self.hits: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        if func in LAPACK:
            self.svd_outputs |= {t.untyped_storage().data_ptr() for t in out}
            return out
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        for t in inputs + [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]:
            n = _subnormal_count(t)
            if n and not (any(t is i for i in inputs) and t.untyped_storage().data_ptr() in self.svd_outputs):
                self.hits.append((str(func), n))
        return out


def _spread_step(method: str) -> tuple[SubnormalWatch, torch.nn.Module]:
    cfg = preset("tiny", "torus", decorrelation=10.0, moment_pairs=32, mask_jitter=0.3,
                 eigenvalue_param="square")
    problem = build_problem(cfg)
    op = make_operator(cfg, problem.domain.n)
    with torch.no_grad():  # Λ = raw² = linspace(0, 300, K): spread as a long run's spectrum
        op.evals_raw.copy_(torch.linspace(0, 300, cfg.k).sqrt())
    moment = signal_moment(problem, cfg)
    objective = SpectraObjective(cfg, moment, method=method)
    opt = make_optimizer(operator_param_groups(op, cfg), lr=cfg.lr)
    objective.on_fit_start(op, opt)
    batches = SpectraBatches(problem, cfg)
    batches.step = cfg.extras.dropout_warmup + 20  # spectral dropout on, jitter on
    objective.on_step_start(batches.step)
    batch = batches()
    watch = SubnormalWatch()
    with watch:
        for _ in range(2):  # two steps: AdamW's moments exist in the second
            opt.zero_grad(set_to_none=True)
            objective(op, batch)["loss"].backward()
            opt.step()
    return watch, op


@pytest.mark.parametrize("method", ["polar"])  # the default; "svd" (the official route) is not covered
def test_training_step_has_no_subnormal(method):
    watch, op = _spread_step(method)
    assert watch.ops > 100  # the mode saw the whole step
    assert watch.hits == [], f"subnormal values in {watch.hits[:10]}"
    for name, p in op.named_parameters():
        assert _subnormal_count(p) == 0 and _subnormal_count(p.grad) == 0, name


def test_decay_exp_cut_and_gradient():
    cut = decay_cutoff(torch.float32)
    assert cut == pytest.approx(42 * math.log(2))
    d = torch.tensor([0.0, 1.0, cut - 1e-3, cut + 1e-3, 87.0, 100.0, 1e4], requires_grad=True)
    v = decay_exp(d)
    assert torch.equal(v[3:], torch.zeros(4))
    torch.testing.assert_close(v[:3], torch.exp(-d[:3].detach()))
    assert v[2] >= 2.0 ** -42 * (1 - 1e-4)
    v.sum().backward()
    torch.testing.assert_close(d.grad[:3], -torch.exp(-d[:3].detach()))
    assert torch.equal(d.grad[3:], torch.zeros(4))  # zero where the value is zero
    # products of three kept values stay normal: the cube of the smallest is >= tiny
    assert float(v[2]) ** 3 >= TINY32 * (1 - 1e-3)


def test_mask_equals_exp_on_a_compact_spectrum_and_float64_keeps_its_range():
    evals = torch.linspace(0, 25, 40)  # compact: every gap below the cut (29.1)
    torch.testing.assert_close(delta_mask(evals), torch.exp(-(evals[:, None] - evals[None]).abs()), rtol=0, atol=0)
    e64 = torch.linspace(0, 200, 40, dtype=torch.float64)  # float64: nothing in 0..200 is cut
    torch.testing.assert_close(delta_mask(e64), torch.exp(-(e64[:, None] - e64[None]).abs()), rtol=0, atol=0)
    spread = torch.linspace(0, 300, 64)
    assert _subnormal_count(delta_mask(spread)) == 0
    assert _subnormal_count(torch.exp(-(spread[:, None] - spread[None]).abs())) > 0  # what the cut prevents
    assert torch.isfinite(multiplicity_loss(spread))
