"""Milliseconds per homNIST pre-training step: today's path against cheaper variants, one thread.

Every variant trains the same NIso autoencoder (same seed, same pre-drawn batches of homography
pairs) with the trainer's step (batch to the device and memory format, ``step_loss``, backward,
AdamW) and differs only in how the step runs: the convolutions' zero padding, ``channels_last``
memory, ``torch.compile`` of the step, bf16 autocast of the encoder/decoder, and (``conv_pad``)
the convolution's own zero padding instead of ``DomainConv2d``'s explicit ``F.pad``. The variants take
their steps **interleaved** (step i of every variant, then step i + 1), so the load of other
processes on a shared machine affects them alike; ms/step is the median after ``--warmup``.

Mathematics: the gradient of the first batch, from the same initial weights, against the first
variant's: ``bit-identical``, or the largest difference relative to the largest gradient entry
(float32 rounding of another convolution algorithm: ~1e-6; bf16: ~1e-2); and the loss after
the last step.

::

    PYTHONPATH=. python benchmarks/homnist_step.py --preset cpu --steps 40
    PYTHONPATH=. python benchmarks/homnist_step.py --preset cpu --set enc_depth=1,3 --variants baseline channels_last
    PYTHONPATH=. python benchmarks/homnist_step.py --preset paper --steps 3 --warmup 1 --variants baseline channels_last
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from niso_geom.cli._common import parse_overrides
from niso_geom.experiments.homnist import build_autoencoder, load_train_digits, preset
from niso_geom.experiments.homnist.data import HomographyViews
from niso_geom.experiments.homnist.models import encoder_cost
from niso_geom.niso.models import DomainConv2d
from niso_geom.runio import write_json
from niso_geom.threads import set_threads
from niso_geom.train import make_optimizer, resolve_amp_dtype

#: name -> trainer settings that differ from the baseline (today's path). ``conv_pad`` replaces
#: ``DomainConv2d``'s explicit zero padding (``F.pad``, then an unpadded convolution) by the
#: convolution's own ``padding=1`` (the same function; measured slower on this CPU).
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "conv_pad": {"conv_pad": True},
    "channels_last": {"channels_last": True},
    "bf16": {"amp": "bf16"},
    "channels_last+bf16": {"channels_last": True, "amp": "bf16"},
    "compile": {"compile": True},
    "channels_last+compile": {"channels_last": True, "compile": True},
    # another encoder, timed in the same interleaved run: two more residual blocks at 20x20 (30 px)
    "enc_depth=1,3": {"config": {"enc_depth": (1, 3)}},
}


def _conv_pad_forward(self: DomainConv2d, x: torch.Tensor) -> torch.Tensor:
    """``DomainConv2d.forward`` for ``mode="zero"`` with the convolution's own zero padding."""
    return F.conv2d(x, self.weight, self.bias, padding=self.kernel_size[0] // 2)


class Variant:
    """One way to run the step, on its own copy of the model (initialized with seed 0)."""

    def __init__(self, base_cfg: Any, kind: str, settings: dict[str, Any]) -> None:
        cfg = base_cfg
        settings = dict(settings)
        cfg = dataclasses.replace(cfg, **settings.pop("config", {}))
        self.other_model = cfg != base_cfg
        torch.manual_seed(0)
        self.model = build_autoencoder(cfg, kind, cfg.alpha, cfg.beta)
        if settings.pop("conv_pad", False):
            for m in self.model.modules():
                if isinstance(m, DomainConv2d) and m.mode == "zero":
                    m.forward = types.MethodType(_conv_pad_forward, m)  # type: ignore[method-assign]
        self.channels_last = bool(settings.get("channels_last", False))
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.amp_dtype = resolve_amp_dtype(settings.get("amp", "off"), "cpu")
        model = self.model

        def step_loss(*batch: torch.Tensor) -> dict[str, torch.Tensor]:
            return model.step_loss(batch)

        self.fn = torch.compile(step_loss) if settings.get("compile", False) else step_loss
        self.optimizer = make_optimizer(self.model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.times: list[float] = []
        self.loss = float("nan")
        self.setup_s = 0.0

    def _batch(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if not self.channels_last:
            return batch
        return tuple(t.contiguous(memory_format=torch.channels_last) for t in batch)

    def gradient(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The flat gradient of the first batch (the parameters do not change)."""
        self.model.zero_grad(set_to_none=False)
        self.fn(*self._batch(batch))["loss"].backward()
        grads = torch.cat([p.grad.reshape(-1) for p in self.model.parameters() if p.grad is not None])
        self.model.zero_grad(set_to_none=True)
        return grads

    def step(self, batch: tuple[torch.Tensor, ...]) -> None:
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.fn(*self._batch(batch))["loss"]
        loss.backward()
        self.optimizer.step()
        self.times.append(time.perf_counter() - t0)
        self.loss = float(loss.detach())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--kind", default="niso", choices=["niso", "ae"])
    p.add_argument("--steps", type=int, default=40, help="timed steps per variant (after --warmup)")
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps (compilation, allocator)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = p.parse_args()
    set_threads(args.threads)
    cfg = preset(args.preset, **parse_overrides(args.overrides))
    digits, _ = load_train_digits()
    views = HomographyViews(digits[:10_000], cfg.batch, 2, seed=0, scale=cfg.homography_scale)
    total = args.warmup + args.steps
    batches = [views() for _ in range(total)]
    cost = encoder_cost(cfg)
    print(f"preset {args.preset} {' '.join(args.overrides)}: encoder {cost['encoder_parameters']:,} parameters, "
          f"{cost['encoder_macs'] / 1e6:.1f} M MACs/image, receptive field {cost['receptive_field']} px; "
          f"decoder {cost['decoder_macs'] / 1e6:.1f} M MACs/image; {args.threads} thread(s), "
          f"{args.steps} timed steps after {args.warmup}, interleaved", flush=True)
    variants: dict[str, Variant] = {}
    errors: dict[str, str] = {}
    grads: dict[str, torch.Tensor] = {}
    for name in args.variants:
        try:
            t0 = time.perf_counter()
            v = Variant(cfg, args.kind, VARIANTS[name])
            grads[name] = v.gradient(batches[0])
            v.setup_s = time.perf_counter() - t0  # the first forward/backward, compilation included
            variants[name] = v
        except Exception as exc:  # noqa: BLE001  (a variant this machine cannot run, e.g. compile without a compiler)
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    for i, batch in enumerate(batches):
        order = list(variants.values())
        shift = i % max(len(order), 1)
        for v in order[shift:] + order[:shift]:
            v.step(batch)
    report: dict[str, Any] = {}
    ref_name = next(iter(variants), None)
    ref_ms = None
    for name in args.variants:
        if name in errors:
            print(f"{name:>22}: failed ({errors[name]})")
            report[name] = {"error": errors[name]}
            continue
        v = variants[name]
        ms = 1000 * statistics.median(v.times[args.warmup:])
        ref_ms = ms if ref_ms is None else ref_ms
        g0, g = grads[ref_name], grads[name]
        if v.other_model or g.shape != g0.shape:
            rel, math_note = float("nan"), "another model"
        else:
            rel = float((g - g0).abs().max() / g0.abs().max())
            math_note = "reference" if name == ref_name else ("bit-identical" if torch.equal(g, g0)
                                                              else f"gradient differs by {rel:.1e} (relative)")
        report[name] = {"ms_per_step": ms, "ratio": ref_ms / ms, "warmup_s": sum(v.times[:args.warmup]),
                        "first_step_s": v.setup_s,
                        "gradient_rel_diff": rel, "bit_identical": bool(g.shape == g0.shape and torch.equal(g, g0)),
                        "final_loss": v.loss}
        print(f"{name:>22}: {ms:8.1f} ms/step  x{ref_ms / ms:.2f} against {ref_name}; "
              f"first step (with compilation) {v.setup_s:.1f} s; {math_note}; "
              f"loss after {total} steps {v.loss:.5f}", flush=True)
    if args.json is not None:
        write_json(args.json, {"preset": args.preset, "overrides": args.overrides, "threads": args.threads,
                               "steps": args.steps, "warmup": args.warmup, "cost": cost, "variants": report,
                               "torch": torch.__version__})


if __name__ == "__main__":
    main()
