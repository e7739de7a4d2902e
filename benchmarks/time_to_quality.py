"""Wall seconds of one core until a ``niso spectra`` cpu run reaches its quality targets.

Trains exactly as ``niso spectra --domain D`` (the preset's operator, batches, loss, hooks and
schedule through :func:`niso_geom.train.fit`, one thread) and every ``--every`` updates evaluates
the operator as the report does (:func:`niso_geom.experiments.spectra.evaluate`, held-out pairs,
``compare()``); the evaluation's own time is excluded from the clock. It stops at the first
evaluation that meets every target (or at the preset's last step) and prints the training wall
seconds, the training CPU seconds of the (one-thread) process — what one idle core would take,
the figure to read on a loaded machine — and the step at which the targets were met. Targets (the issue's):

* torus: purity ≥ 0.95 and τ block energy ≥ 0.90;
* sphere: purity ≥ 0.98, τ block energy ≥ 0.97 and Wigner-D error ≤ 0.1.

Usage::

    python benchmarks/time_to_quality.py --domain torus            # cpu preset, evaluate every 250 steps
    python benchmarks/time_to_quality.py --domain sphere --every 250 --json out.json
    python benchmarks/time_to_quality.py --domain torus --recon-dtype bfloat16   # the opt-in bf16 path
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch

from niso_geom.experiments.spectra import build_problem, evaluate, preset
from niso_geom.experiments.spectra.run import build_training, settings
from niso_geom.runio import write_json
from niso_geom.threads import limit_threads
from niso_geom.train import Hook, fit

TARGETS = {
    "torus": {"purity_mean": (">=", 0.95), "tau_block_energy": (">=", 0.90)},
    "sphere": {"purity_mean": (">=", 0.98), "tau_block_energy": (">=", 0.97), "wigner_error": ("<=", 0.1)},
}


class TargetsReached(Exception):
    """Raised by the probe to end training once every target is met."""


class QualityProbe(Hook):
    """Every ``every`` updates: evaluate, record (step, training seconds, metrics), stop when met."""

    def __init__(self, op, problem, cfg, targets: dict, every: int) -> None:
        self.op, self.problem, self.cfg, self.targets, self.every = op, problem, cfg, targets, every
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.eval_seconds = self.eval_cpu_seconds = 0.0
        self.history: list[dict] = []
        self.reached: dict | None = None

    def met(self, rep: dict) -> bool:
        ok = True
        for key, (op_, value) in self.targets.items():
            x = rep.get(key)
            ok &= x is not None and (x >= value if op_ == ">=" else x <= value)
        return bool(ok)

    def on_step_end(self, step: int, record: dict[str, float]) -> None:
        if (step + 1) % self.every and step + 1 != self.cfg.steps:
            return
        train_seconds = time.perf_counter() - self.t0 - self.eval_seconds
        train_cpu_seconds = time.process_time() - self.c0 - self.eval_cpu_seconds
        t_eval, c_eval = time.perf_counter(), time.process_time()
        rep = evaluate(self.op, self.problem, self.cfg)
        self.op.train()
        self.eval_seconds += time.perf_counter() - t_eval
        self.eval_cpu_seconds += time.process_time() - c_eval
        row = {"step": step + 1, "train_seconds": round(train_seconds, 2),
               "train_cpu_seconds": round(train_cpu_seconds, 2),
               **{k: rep.get(k) for k in self.targets}}
        self.history.append(row)
        print(json.dumps(row), flush=True)
        if self.met(rep):
            self.reached = row
            raise TargetsReached


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=sorted(TARGETS), default="torus")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--every", type=int, default=250, help="evaluate every this many updates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recon-dtype", choices=("float32", "bfloat16"), default="float32",
                        help="the reconstruction path's precision (SpectraConfig.recon_dtype)")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(preset(args.preset, args.domain, seed=args.seed), recon_dtype=args.recon_dtype)
    with limit_threads(1), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(cfg.seed)
        problem = build_problem(cfg)
        op, batches, objective, hooks, groups = build_training(cfg, problem)
        probe = QualityProbe(op, problem, cfg, TARGETS[args.domain], args.every)
        run_settings = dataclasses.replace(settings(cfg, progress=False), checkpoint_every=cfg.steps + 1)
        probe.t0, probe.c0 = time.perf_counter(), time.process_time()
        try:
            fit(op, batches, run_settings, loss_fn=objective, param_groups=groups, hooks=[*hooks, probe],
                out_dir=tmp, resume=False, config=cfg.identity())
        except TargetsReached:
            pass
    result = {"domain": args.domain, "preset": args.preset, "seed": args.seed,
              "recon_dtype": args.recon_dtype, "targets": TARGETS[args.domain],
              "reached": probe.reached, "history": probe.history}
    print("reached:", json.dumps(probe.reached))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
