"""Schedule, optimizer, gradient accumulation, checkpoints, and a tiny toric-shift training run."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from niso_geom.niso.losses import niso_pair_loss
from niso_geom.niso.operator import LearnedOperator, dense_operator, sample_truncation
from niso_geom.train import (
    WarmupCosine,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    warmup_cosine,
)

H = W = 4
N = H * W




@pytest.fixture(autouse=True)
def _keep_global_rng() -> Iterator[None]:
    """These tests reseed the global RNGs; put them back afterwards."""
    state = rng_state()
    yield
    set_rng_state(state)


def _shift_batch(b: int, c: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Periodic random fields on the 4×4 torus and random circular shifts of them (B, N, C).

    Fields come from ``generator`` (or torch's global RNG), shifts from NumPy's global RNG, so
    that the checkpoint test exercises both."""
    x = torch.randn(b, H, W, c, generator=generator)
    shifts = np.random.randint(0, H, size=(b, 2))
    tx = torch.stack([torch.roll(x[i], (int(shifts[i, 0]), int(shifts[i, 1])), (0, 1)) for i in range(b)])
    return x.reshape(b, N, c), tx.reshape(b, N, c)


def _shift_matrix(dy: int, dx: int) -> torch.Tensor:
    """(N, N) permutation P with P x = roll(x, (dy, dx)) on the flattened grid."""
    eye = torch.eye(N).reshape(N, H, W)
    return torch.roll(eye, (dy, dx), (1, 2)).reshape(N, N).T


def _commutator(op: LearnedOperator) -> float:
    """Relative commutator of the learned Laplacian with the two unit shifts."""
    with torch.no_grad():
        O = dense_operator(op(), "laplacian")
        total = sum(torch.linalg.norm(P @ O - O @ P) for P in (_shift_matrix(1, 0), _shift_matrix(0, 1)))
        return float(total / (2 * torch.linalg.norm(O)))


def test_warmup_cosine_matches_reference_values() -> None:
    # docs/algorithm.md §1.8 (optax 0.2.8): init 1e-8, peak 5e-4, warmup 2000, horizon 1e6, end 5e-5
    assert warmup_cosine(0) == pytest.approx(1e-8)
    assert warmup_cosine(1000) == pytest.approx(0.5 * (1e-8 + 5e-4))
    assert warmup_cosine(2000) == pytest.approx(5e-4)
    assert warmup_cosine(20_000) == pytest.approx(4.996e-4, abs=5e-8)
    assert warmup_cosine(50_000) == pytest.approx(4.974e-4, abs=5e-8)
    assert warmup_cosine(200_000) == pytest.approx(4.577e-4, abs=5e-8)
    assert warmup_cosine(1_000_000) == pytest.approx(5e-5)
    assert warmup_cosine(2_000_000) == pytest.approx(5e-5)
    # pose_pred horizon
    assert warmup_cosine(5000, decay_steps=100_000) == pytest.approx(4.990e-4, abs=5e-8)


def _rates_per_step(opt: torch.optim.Optimizer, sched, steps: int) -> list[list[float]]:
    """Every group's learning rate at each of ``steps`` updates (unit gradients, then step, then schedule)."""
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in opt.param_groups])
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return seen


def test_scheduler_follows_schedule_and_optimizer_defaults() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer([p])
    group = opt.param_groups[0]
    assert group["weight_decay"] == 1e-4 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    sched = make_scheduler(opt, decay_steps=50, warmup=10, init=1e-6, end=1e-5)
    seen = [rates[0] for rates in _rates_per_step(opt, sched, 60)]
    expected = [warmup_cosine(t, peak=5e-4, decay_steps=50, warmup=10, init=1e-6, end=1e-5) for t in range(60)]
    assert seen == pytest.approx(expected, rel=1e-12)


def test_scheduler_groups_follow_their_scale_and_end_rate() -> None:
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    opt = make_optimizer([{"params": [a]}, {"params": [b], "lr_scale": 0.1},
                          {"params": [c], "lr_scale": 3.0, "lr_end": 1.5e-3}], lr=1e-3)
    sched = make_scheduler(opt, decay_steps=30, warmup=5, init=1e-6, end=1e-5)
    seen = _rates_per_step(opt, sched, 40)
    for t, (ra, rb, rc) in enumerate(seen):
        assert ra == pytest.approx(warmup_cosine(t, peak=1e-3, decay_steps=30, warmup=5, init=1e-6, end=1e-5))
        assert rb == pytest.approx(0.1 * ra)
        assert rc == pytest.approx(warmup_cosine(t, peak=3e-3, decay_steps=30, warmup=5, init=3e-6, end=1.5e-3))
    assert seen[-1][2] == pytest.approx(1.5e-3)


def test_scheduler_group_holds_its_after_rate_once_the_decay_is_over() -> None:
    a, b = (torch.nn.Parameter(torch.zeros(2)) for _ in range(2))
    opt = make_optimizer([{"params": [a]}, {"params": [b], "lr_after": 2e-3}], lr=1e-3)
    sched = make_scheduler(opt, decay_steps=20, warmup=5, init=1e-6, end=1e-5)
    seen = _rates_per_step(opt, sched, 30)
    for t, (ra, rb) in enumerate(seen):
        assert ra == pytest.approx(warmup_cosine(t, peak=1e-3, decay_steps=20, warmup=5, init=1e-6, end=1e-5))
        assert rb == (pytest.approx(2e-3) if t >= 20 else pytest.approx(ra))
    state = sched.state_dict()  # the rate is part of the schedule's saved state
    assert state["lr_lambdas"][1]["after"] == 2e-3


def test_scheduler_holds_the_peak_before_the_cosine() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    opt = make_optimizer([a], lr=1e-3)
    sched = make_scheduler(opt, decay_steps=30, warmup=5, init=1e-6, end=1e-4, hold=15)
    seen = [rates[0] for rates in _rates_per_step(opt, sched, 35)]
    assert seen[:5] == pytest.approx([1e-6 + (1e-3 - 1e-6) * t / 5 for t in range(5)])
    assert seen[5:21] == pytest.approx([1e-3] * 16)  # held, and the cosine starts at its peak
    assert 1e-4 < seen[25] < 1e-3 and seen[25] == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half-way: the mean
    assert seen[30:] == pytest.approx([1e-4] * 5)
    assert sched.state_dict()["lr_lambdas"][0]["hold"] == 15  # resumes with the same schedule
    # hold = 0: the cosine starts right after the warmup (step 12 of a 25-step decay from step 5)
    plain = 1e-4 + 0.9e-3 * 0.5 * (1.0 + math.cos(math.pi * 7 / 25))
    assert WarmupCosine(1e-3, 30, 5, 1e-6, 1e-4).lr(12) == pytest.approx(plain, rel=1e-12)


def test_toric_shift_training_lowers_loss_and_commutator() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    op = LearnedOperator(N, N, eigenvalue_param="square", generator=torch.Generator().manual_seed(0))
    opt = make_optimizer(op.parameters(), lr=1e-2)
    sched = make_scheduler(opt, decay_steps=250, warmup=10, init=1e-4, end=1e-3)
    comm0 = _commutator(op)
    recon = []
    for _ in range(250):
        z0, tz0 = _shift_batch(8, 16)
        terms = niso_pair_loss(op(), z0, tz0, beta=0.5)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        sched.step()
        recon.append(terms["recon"].item())
    first, last = np.mean(recon[:10]), np.mean(recon[-20:])
    assert last < 0.3 * first, (first, last)
    comm = _commutator(op)
    assert comm < 0.6 * comm0, (comm0, comm)


def _train(op: LearnedOperator, opt: torch.optim.Optimizer, sched, steps: int, dropout_gen: torch.Generator
           ) -> list[float]:
    losses = []
    for _ in range(steps):
        z0, tz0 = _shift_batch(4, 8)
        keep = sample_truncation(N, generator=dropout_gen)
        terms = niso_pair_loss(op(), z0, tz0, beta=0.5, keep=keep)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        sched.step()
        losses.append(terms["loss"].item())
    return losses


def _fresh(seed: int) -> tuple[LearnedOperator, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    op = LearnedOperator(N, N, eigenvalue_param="square", generator=torch.Generator().manual_seed(seed))
    opt = make_optimizer(op.parameters(), lr=5e-3)
    return op, opt, make_scheduler(opt, decay_steps=40, warmup=5)


def _seed_all(seed: int, gen: torch.Generator) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    gen.manual_seed(seed)


def test_checkpoint_resume_continues_the_same_loss_curve(tmp_path: Path) -> None:
    steps = 20
    gen = torch.Generator()
    _seed_all(1, gen)
    op, opt, sched = _fresh(0)
    straight = _train(op, opt, sched, steps, gen)

    _seed_all(1, gen)
    op, opt, sched = _fresh(0)
    first = _train(op, opt, sched, steps // 2, gen)
    path = save_checkpoint(tmp_path / "ckpt" / "last.pt", op, opt, sched, step=steps // 2,
                           extra={"note": "half", "loss": first[-1]}, generators={"dropout": gen})
    del op, opt, sched

    gen2 = torch.Generator()
    _seed_all(99, gen2)  # scramble every RNG, and build the objects from another init
    op, opt, sched = _fresh(7)
    loaded = load_checkpoint(path, op, opt, sched, generators={"dropout": gen2})
    assert loaded.step == steps // 2 and loaded.extra == {"note": "half", "loss": first[-1]}
    second = _train(op, opt, sched, steps - steps // 2, gen2)

    assert np.max(np.abs(np.array(first + second) - np.array(straight))) < 1e-6
    assert straight[0] != straight[-1]


def test_checkpoint_without_rng_restore_diverges(tmp_path: Path) -> None:
    """Control for the test above: skipping the RNG restore changes the continuation."""
    gen = torch.Generator()
    _seed_all(1, gen)
    op, opt, sched = _fresh(0)
    _train(op, opt, sched, 3, gen)
    path = save_checkpoint(tmp_path / "c.pt", op, opt, sched, step=3, generators={"dropout": gen})
    cont = _train(op, opt, sched, 3, gen)
    op, opt, sched = _fresh(0)
    _seed_all(5, gen)
    load_checkpoint(path, op, opt, sched, restore_rng=False)
    assert _train(op, opt, sched, 3, gen) != cont


def test_checkpoint_is_atomic_and_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op, opt, sched = _fresh(0)
    path = save_checkpoint(tmp_path / "step.pt", op, opt, sched, step=1)
    before = path.read_bytes()
    payload = read_checkpoint(path)
    assert payload["step"] == 1 and set(payload["model"]) == {"mass_raw", "phi_raw", "evals_raw"}

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, op, opt, sched, step=2)
    assert path.read_bytes() == before  # the old checkpoint survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.pt"]  # no temp file left behind


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    op, opt, sched = _fresh(0)
    path = save_checkpoint(tmp_path / "m.pt", op, step=0)
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(path, op, opt)
    with pytest.raises(KeyError):
        load_checkpoint(path, op, generators={"data": torch.Generator()})


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    op = LearnedOperator(4, 2)
    for step in (5, 120, 30):
        save_checkpoint(tmp_path / f"step_{step:09d}.pt", op, step=step)
    (tmp_path / "notes.txt").write_text("x")
    assert latest_checkpoint(tmp_path).name == "step_000000120.pt"
