"""The one trainer: every tensor on the chosen device, hooks, resume from the newest intact
checkpoint, refusal to resume another configuration, settings validated by name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from niso_geom.errors import RunDirError
from niso_geom.experiments.spectra import (
    SpectraBatches,
    SpectraObjective,
    build_problem,
    make_operator,
    operator_param_groups,
    preset,
    signal_moment,
)
from niso_geom.runio import read_jsonl
from niso_geom.train import (
    CorruptCheckpointError,
    DeviceUnavailableError,
    Hook,
    TrainSettings,
    fit,
    list_checkpoints,
    make_optimizer,
    make_scheduler,
    read_checkpoint,
    resolve_device,
    save_checkpoint,
)


class _Regression(nn.Module):
    """y = w·x on fixed data: a model with ``step_loss`` whose every step is deterministic."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def step_loss(self, batch):
        x, y = batch
        loss = ((x @ self.w - y) ** 2).mean()
        return {"loss": loss, "w0": self.w[0].detach()}


class _Source:
    def __init__(self) -> None:
        self.gen = torch.Generator().manual_seed(0)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        x = torch.randn(8, 3, generator=self.gen)
        return x, x @ torch.tensor([1.0, -2.0, 0.5])

    def state_dict(self):
        return {"calls": self.calls, "gen": self.gen.get_state().tolist()}

    def load_state_dict(self, state):
        self.calls = state["calls"]
        self.gen.set_state(torch.tensor(state["gen"], dtype=torch.uint8))


def _settings(**kw) -> TrainSettings:
    base = {"steps": 12, "lr": 0.05, "warmup": 0, "checkpoint_every": 4, "log_every": 1, "progress": False,
            "device": "cpu"}
    return TrainSettings(**{**base, **kw})


def test_every_tensor_of_a_spectra_step_reaches_the_device():
    """On the meta device any tensor left on the CPU and mixed into the step raises; two full
    updates (projections, τ, losses, decorrelation with the signal moment, spectral dropout,
    jittered mask, AdamW and the schedule) run there, so every tensor reached the device."""
    cfg = preset("tiny", "torus", steps=2, decorrelation=1.0, moment_pairs=8, mask_jitter=0.3)
    problem = build_problem(cfg)
    op = make_operator(cfg, problem.domain.n)
    moment = signal_moment(problem, cfg).to("meta")
    objective = SpectraObjective(cfg, moment)
    result = fit(op, SpectraBatches(problem, cfg), _settings(steps=2, device="meta"), loss_fn=objective,
                 param_groups=operator_param_groups(op, cfg), hooks=[objective])
    assert result.steps == 2
    assert all(p.device.type == "meta" for p in op.parameters())


def test_cuda_without_a_gpu_is_a_named_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert resolve_device("auto").type == "cpu"


def test_hooks_see_every_step_and_add_to_the_record(tmp_path: Path):
    calls = []

    class Spy(Hook):
        def on_fit_start(self, model, optimizer):
            calls.append(("fit", len(optimizer.param_groups)))

        def on_step_start(self, step):
            calls.append(("start", step))

        def on_step_end(self, step, record):
            calls.append(("end", step))
            record["twice"] = 2.0 * step

    fit(_Regression(), _Source(), _settings(steps=3), hooks=[Spy()], out_dir=tmp_path)
    assert calls == [("fit", 1), ("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3] and [r["twice"] for r in records] == [0.0, 2.0, 4.0]


def test_resume_continues_exactly_and_skips_a_damaged_newest_checkpoint(tmp_path: Path, caplog):
    straight = _Regression()
    fit(straight, _Source(), _settings(), out_dir=tmp_path / "straight")
    resumed = _Regression()
    fit(resumed, _Source(), _settings(), out_dir=tmp_path / "resumed", stop_at=8)
    ckpts = list_checkpoints(tmp_path / "resumed" / "checkpoints")
    assert [p.name for p in ckpts] == ["step_000000004.pt", "step_000000008.pt"]
    data = bytearray(ckpts[-1].read_bytes())  # one flipped bit in the newest checkpoint
    data[len(data) // 2] ^= 0x10
    ckpts[-1].write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(ckpts[-1])
    resumed = _Regression()
    with caplog.at_level(logging.WARNING):
        result = fit(resumed, _Source(), _settings(), out_dir=tmp_path / "resumed")
    assert result.resumed_from == 4 and "step_000000008.pt" in caplog.text
    torch.testing.assert_close(resumed.w, straight.w, rtol=0, atol=0)
    losses = [[r["loss"] for r in read_jsonl(tmp_path / run / "metrics.jsonl")] for run in ("straight", "resumed")]
    assert losses[0] == losses[1]


def test_only_damaged_checkpoints_is_an_error_naming_them(tmp_path: Path):
    fit(_Regression(), _Source(), _settings(steps=4), out_dir=tmp_path)
    for p in list_checkpoints(tmp_path / "checkpoints"):
        p.write_bytes(p.read_bytes()[:100])  # truncated
    with pytest.raises(CorruptCheckpointError, match="every checkpoint is damaged.*step_000000004.pt"):
        fit(_Regression(), _Source(), _settings(steps=8), out_dir=tmp_path)


def test_resuming_another_configuration_is_refused(tmp_path: Path):
    fit(_Regression(), _Source(), _settings(steps=4), out_dir=tmp_path, config={"seed": 0})
    with pytest.raises(RunDirError, match="another configuration"):
        fit(_Regression(), _Source(), _settings(steps=8), out_dir=tmp_path, config={"seed": 1})
    # a checkpoint that does not record its configuration cannot be verified
    model = _Regression()
    opt = make_optimizer(model.parameters())
    save_checkpoint(tmp_path / "checkpoints" / "step_000000009.pt", model, opt, make_scheduler(opt), step=9)
    with pytest.raises(RunDirError, match="cannot be verified"):
        fit(_Regression(), _Source(), _settings(steps=12), out_dir=tmp_path, config={"seed": 0})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("checkpoint_every", 0, "checkpoint_every must be >= 1, got 0"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("lr", -1.0, "lr must be a finite number > 0, got -1.0"),
    ("steps", -5, "steps must be >= 0, got -5"),
    ("accum", 0, "accum must be >= 1, got 0"),
])
def test_settings_name_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _settings(**{field: value})


def test_a_non_finite_loss_names_the_step_and_the_last_checkpoint(tmp_path: Path):
    class Exploding(_Regression):
        def step_loss(self, batch):
            terms = super().step_loss(batch)
            if terms["w0"] > 0.2:
                terms["loss"] = terms["loss"] * float("inf")
            return terms

    with pytest.raises(FloatingPointError, match=r"non-finite loss .* at step \d+; the last checkpoint is .*step_"):
        fit(Exploding(), _Source(), _settings(steps=40, checkpoint_every=2), out_dir=tmp_path)


def test_channels_last_reaches_convolutions_and_their_inputs():
    seen = []

    class Conv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def step_loss(self, batch):
            (x,) = batch
            seen.append((x.is_contiguous(memory_format=torch.channels_last),
                         self.conv.weight.is_contiguous(memory_format=torch.channels_last)))
            return {"loss": self.conv(x).square().mean()}

    fit(Conv(), lambda: (torch.randn(2, 3, 8, 8),), _settings(steps=2, channels_last=True))
    assert seen == [(True, True), (True, True)]
