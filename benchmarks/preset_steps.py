"""Steps per second of every ``niso spectra`` preset, against plain ``torch.linalg.svd`` autograd.

For each domain × preset: the cpu-preset loop's work per step (draw the batch, operator forward,
masked SO(K) Procrustes solves, loss, backward, AdamW), timed as the median over ``--steps``
steps after two warm-up steps, once with the library's closed-form polar backward and once
with both polar factors (Φ's M-orthonormalization and τ) through plain ``torch.linalg.svd``
autograd, in lockstep on the same operator state; the sampler's share of a step is timed
separately. The periodic cluster rotation of the torus preset (once per 500 steps) is left out.
``est. run`` is the preset's step count at the measured rate.

Usage::

    python benchmarks/preset_steps.py                          # tiny, cpu, paper × torus, sphere, mesh
    python benchmarks/preset_steps.py --presets cpu --domains torus,sphere --steps 30
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from niso_geom.experiments.spectra import (build_problem, make_operator, operator_param_groups, preset,
                                           signal_moment, train_step)
from niso_geom.train import make_optimizer
from niso_geom.threads import limit_threads


def _finite_grads(op: torch.nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in op.parameters())


def time_preset(name: str, domain: str, steps: int) -> dict:
    """Median step times (ms) of the polar and plain-torch variants and of the sampler alone."""
    cfg = preset(name, domain)
    problem = build_problem(cfg)
    moment = signal_moment(problem, cfg)
    base = make_operator(cfg, problem.domain.n)
    variants = {}
    for method in ("polar", "torch"):
        op = copy.deepcopy(base)
        op.method = method
        variants[method] = (op, make_optimizer(operator_param_groups(op, cfg), lr=cfg.lr), [], [0])
    for step in range(steps + 2):
        for method, (op, opt, times, nonfinite) in variants.items():
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            train_step(op, problem, cfg, step, moment, method=method)
            if _finite_grads(op):
                opt.step()
            else:
                nonfinite[0] += 1
            if step >= 2:
                times.append(time.perf_counter() - t0)
    sample = []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        t0 = time.perf_counter()
        problem.sampler.sample(cfg.batch, rng)
        sample.append(time.perf_counter() - t0)
    ms = {m: 1e3 * statistics.median(v[2]) for m, v in variants.items()}
    return {"preset": name, "domain": domain, "n": problem.domain.n, "k": cfg.k, "batch": cfg.batch,
            "channels": cfg.channels, "run_steps": cfg.steps, "polar_ms": ms["polar"], "torch_ms": ms["torch"],
            "torch_nonfinite": variants["torch"][3][0], "sample_ms": 1e3 * statistics.median(sample),
            "timed": steps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,cpu,paper")
    parser.add_argument("--domains", default="torus,sphere,mesh")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (paper presets: a quarter)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1, as niso spectra)")
    args = parser.parse_args(argv)
    rows = []
    with limit_threads(args.threads):
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
        for name in args.presets.split(","):
            for domain in args.domains.split(","):
                steps = max(3, args.steps // 4) if name == "paper" else args.steps
                r = time_preset(name, domain, steps)
                rows.append(r)
                print(f"  {domain} {name}: {r['polar_ms']:.1f} ms/step", flush=True)
    header = (f"{'domain':>7} {'preset':>6} {'N':>5} {'K':>4} {'B':>3} {'C':>4} {'ms/step':>8} {'steps/s':>8} "
              f"{'vs torch':>9} {'sampler':>8} {'run steps':>10} {'est. run':>9}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        minutes = r["run_steps"] * r["polar_ms"] / 6e4
        run = f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.0f} h"
        flag = f" ({r['torch_nonfinite']} nan)" if r["torch_nonfinite"] else ""
        print(f"{r['domain']:>7} {r['preset']:>6} {r['n']:>5} {r['k']:>4} {r['batch']:>3} {r['channels']:>4} "
              f"{r['polar_ms']:8.1f} {1e3 / r['polar_ms']:8.2f} {r['polar_ms'] / r['torch_ms']:8.2f}x "
              f"{100 * r['sample_ms'] / r['polar_ms']:7.0f}% {r['run_steps']:>10} {run:>9}{flag}")
    print("\n'vs torch' = step time / the same step through plain torch.linalg.svd autograd (lower is faster);"
          "\n'sampler' = drawing the batch, as a share of the step; 'est. run' = the preset's steps at this"
          "\nrate (the cluster rotations and the evaluation are not included).")


if __name__ == "__main__":
    main()
