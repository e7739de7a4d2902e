"""Time a laplacian-experiment training step with the three Procrustes backwards.

Variants (``niso_geom.niso.linalg.procrustes(method=...)``):

* ``polar``: closed-form derivative of the polar factor (the library default);
* ``safe_svd``: U, S, Vh through ``safe_svd`` (safe-inverse backward, the official JAX route);
* ``torch``: plain ``torch.linalg.svd`` autograd;
* ``polar-f64``: ``polar`` with the linear algebra in float64 (``compute_dtype``).

One step = operator forward (M-orthonormal projection, one N×K polar), B masked SO(K)
Procrustes solves, the laplacian reconstruction + multiplicity loss, backward, AdamW update.
Data: C random periodic channels per sample and a random circular shift. Steps whose gradients
are not finite are counted (and their update skipped, so timing continues on finite weights).

Usage::

    python benchmarks/svd_backward.py            # 16×16 K=256 and 8×8 K=64, B=16, C=64
    python benchmarks/svd_backward.py --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from niso_geom.niso.losses import niso_pair_loss
from niso_geom.niso.operator import LearnedOperator
from niso_geom.train import make_optimizer

# variant -> (procrustes method, compute dtype of the linear algebra)
VARIANTS = {
    "polar": ("polar", None),
    "polar-f64": ("polar", torch.float64),
    "safe_svd": ("svd", None),
    "torch": ("torch", None),
}


@dataclass
class Result:
    grid: int
    k: int
    init: str
    method: str
    fwd_ms: float
    step_ms: float
    nonfinite: int
    steps: int
    loss: float
    grad_err: float


def shift_batch(h: int, b: int, c: int, gen: torch.Generator, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(b, h, h, c, generator=gen, device=device)
    shifts = torch.randint(0, h, (b, 2), generator=gen, device=device).tolist()
    tx = torch.stack([torch.roll(x[i], tuple(shifts[i]), (0, 1)) for i in range(b)])
    return x.reshape(b, h * h, c), tx.reshape(b, h * h, c)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_operator(n: int, k: int, init: str, variant: str, device: torch.device) -> LearnedOperator:
    """``init``: an eigenvalue parameterization ("cumsum", "square"), or "warm": cumsum with
    Φ_raw set to orthonormal columns (a warm start from a known basis; all singular values of
    the M-orthonormal projection are then exactly equal)."""
    method, compute = VARIANTS[variant]
    gen = torch.Generator(device=device).manual_seed(0)
    op = LearnedOperator(n, k, eigenvalue_param="cumsum" if init == "warm" else init, method=method,
                         compute_dtype=compute, generator=gen, device=device)
    if init == "warm":
        q, _ = torch.linalg.qr(torch.randn(n, k, generator=gen, device=device))
        with torch.no_grad():
            op.phi_raw.copy_(q)
    return op


def first_step_grad(h: int, k: int, b: int, c: int, init: str, variant: str, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gradient (flattened, float64) of the first step's loss w.r.t. all operator parameters."""
    method, compute = VARIANTS[variant]
    op = make_operator(h * h, k, init, variant, device).to(dtype)  # same draws, then cast
    z0, tz0 = shift_batch(h, b, c, torch.Generator(device=device).manual_seed(1), device)
    terms = niso_pair_loss(op(), z0.to(dtype), tz0.to(dtype), beta=0.5, method=method, compute_dtype=compute)
    grads = torch.autograd.grad(terms["loss"], list(op.parameters()))
    return torch.cat([g.reshape(-1) for g in grads]).double()


def run_config(h: int, k: int, b: int, c: int, init: str, steps: int, warmup: int,
               device: torch.device) -> list[Result]:
    """All variants of one configuration, stepped in lockstep (variant order rotating each step)
    so that they see the same machine load; times are medians over the timed steps."""
    # reference gradient: everything in float64, closed-form polar derivative
    reference = first_step_grad(h, k, b, c, init, "polar", device, torch.float64)
    names = list(VARIANTS)
    ops = {v: make_operator(h * h, k, init, v, device) for v in names}
    opts = {v: make_optimizer(ops[v].parameters(), lr=5e-4) for v in names}
    gen = torch.Generator(device=device).manual_seed(1)
    batches = [shift_batch(h, b, c, gen, device) for _ in range(warmup + steps)]
    fwd: dict[str, list[float]] = {v: [] for v in names}
    tot: dict[str, list[float]] = {v: [] for v in names}
    nonfinite = dict.fromkeys(names, 0)
    loss = dict.fromkeys(names, float("nan"))
    for i, (z0, tz0) in enumerate(batches):
        for v in names[i % len(names):] + names[:i % len(names)]:
            method, compute = VARIANTS[v]
            op, opt = ops[v], opts[v]
            sync(device)
            t0 = time.perf_counter()
            terms = niso_pair_loss(op(), z0, tz0, beta=0.5, method=method, compute_dtype=compute)
            sync(device)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            finite = all(bool(torch.isfinite(p.grad).all()) for p in op.parameters())
            if finite:
                opt.step()
            sync(device)
            t2 = time.perf_counter()
            if i >= warmup:
                fwd[v].append(t1 - t0)
                tot[v].append(t2 - t0)
                nonfinite[v] += not finite
                loss[v] = terms["loss"].item()
    results = []
    for v in names:
        g = first_step_grad(h, k, b, c, init, v, device)
        grad_err = float(torch.linalg.norm(g - reference) / torch.linalg.norm(reference))
        results.append(Result(h, k, init, v, 1e3 * statistics.median(fwd[v]), 1e3 * statistics.median(tot[v]),
                              nonfinite[v], steps, loss[v], grad_err))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grids", default=None, help="subset of grid sizes, e.g. \"8\"")
    parser.add_argument("--inits", default="cumsum,square,warm",
                        help="operator inits to run: cumsum, square, warm (orthonormal Φ_raw)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    configs = [(16, 256, 3 if args.quick else 8), (8, 64, 10 if args.quick else 40)]
    if args.grids:
        configs = [c for c in configs if str(c[0]) in args.grids.split(",")]
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"B={args.batch}, C={args.channels}")
    results: list[Result] = []
    for h, k, steps in configs:
        for init in args.inits.split(","):
            for r in run_config(h, k, args.batch, args.channels, init, steps, warmup=2, device=device):
                results.append(r)
                print(f"  {h}x{h} K={k} {init:6s} {r.method:9s} {r.step_ms:9.1f} ms/step", flush=True)
    print()
    header = (f"{'grid':>6} {'K':>4} {'init':>6} {'variant':>9} {'fwd ms':>9} {'step ms':>9} {'steps/s':>8} "
              f"{'vs torch':>9} {'non-finite':>11} {'last loss':>10} {'grad err':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        ref = next(x for x in results if (x.grid, x.k, x.init, x.method) == (r.grid, r.k, r.init, "torch"))
        print(f"{r.grid:>4}^2 {r.k:>4} {r.init:>6} {r.method:>9} {r.fwd_ms:9.1f} {r.step_ms:9.1f} "
              f"{1e3 / r.step_ms:8.2f} {r.step_ms / ref.step_ms:8.2f}x {r.nonfinite:>5}/{r.steps:<5} "
              f"{r.loss:10.4f} {r.grad_err:9.2e}")
    print("\ntimes are medians over the timed steps (variants run in lockstep);"
          "\n'vs torch' = step time / plain torch.linalg.svd autograd step time (lower is faster);"
          "\n'non-finite' = timed steps whose gradients had NaN/inf (update skipped);"
          "\n'grad err' = first-step gradient, relative L2 distance to the all-float64 closed-form one"
          "\n(nan: the variant's gradient is not finite).")


if __name__ == "__main__":
    main()
