"""Training step INCLUDING sampling, one thread, against this project's step of before issue 22.

Each timed step is: draw the batch, operator forward, masked SO(K) Procrustes solves, the loss
(reconstruction, β·multiplicity, spectral dropout), backward, AdamW. Two variants run in lockstep
(alternating steps, so both see the same machine load) from the same initial operator:

* ``ours``  — the library as it is: ``SpectraBatches`` (torch samplers), the closed-form polar
  backward, the τ mask and singular vectors flushed below tiny^(1/3), sign det(τ) from an LU of X;
* ``peer``  — the step of before (kept here as the in-run peer): plain ``torch.linalg.svd``
  autograd for both polar factors, the unflushed mask ``exp(−|λi − λj|)``, and the samplers of
  before as a verbatim copy below (NumPy FFT fields, ``np.roll`` shifts, Wigner-D by an einsum on
  a quadrature grid rebuilt every call).

Configurations: the official one (torus 16×16, K = 256, batch 16, 267 channels, β = 0.5) and
8×8 / K = 64 at the same batch and channels; ``--spread`` adds the torus cpu preset (batch 4, 128
channels) at its initial spectrum and with Λ = linspace(0, 250, K), the spread of the end of a run,
where the peer's mask holds subnormal numbers.

Usage::

    python benchmarks/step_speed.py                         # official + 8x8, 8 timed steps each
    python benchmarks/step_speed.py --steps 12 --spread     # also start vs end of a run
    python benchmarks/step_speed.py --configs official --profile   # torch.profiler table of ours
    python benchmarks/step_speed.py --compile --warm 3        # ours through torch.compile (compiled while warming up)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Iterator

import numpy as np
import torch

import niso_geom.experiments.spectra.objective as objective_module
import niso_geom.niso.extras as extras_module
import niso_geom.niso.isometry as isometry_module
import niso_geom.niso.losses as losses_module
from niso_geom.data.signals import SpherePairs, TorusPairs, sh_power
from niso_geom.experiments.spectra import (
    SpectraBatches,
    SpectraObjective,
    build_problem,
    make_operator,
    operator_param_groups,
    preset,
    signal_moment,
)
from niso_geom.experiments.spectra.config import SpectraConfig
from niso_geom.geometry.quadrature import gauss_legendre
from niso_geom.harmonics.sphere import angles_to_xyz, real_sph_harm
from niso_geom.harmonics.wigner import random_rotation
from niso_geom.niso.operator import spectral_dropout
from niso_geom.runio import write_json
from niso_geom.threads import limit_threads
from niso_geom.train import make_optimizer

# ------------------------------------------------------------------------------------------------
# the samplers of before issue 22, verbatim (the library's have changed)
# ------------------------------------------------------------------------------------------------


def peer_torus_random_fields(h, w, n, rng, *, alpha=1.0, bandlimit=None):
    fy = np.fft.fftfreq(h) * h
    fx = np.fft.fftfreq(w) * w
    r = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = np.where(r > 0, np.maximum(r, 1e-12) ** (-alpha), 0.0)
    if bandlimit is not None:
        amp = np.where(r <= bandlimit, amp, 0.0)
    noise = np.fft.fft2(rng.standard_normal((n, h, w)))
    x = np.real(np.fft.ifft2(noise * amp[None]))
    x /= x.reshape(n, -1).std(axis=1)[:, None, None] + 1e-12
    return x.reshape(n, h * w)


def peer_torus_sample(p: TorusPairs, batch, rng):
    x = peer_torus_random_fields(p.h, p.w, batch * p.channels, rng, alpha=p.alpha, bandlimit=p.bandlimit)
    x = x.reshape(batch, p.channels, p.h, p.w)
    shifts = np.stack([rng.integers(p.h, size=batch), rng.integers(p.w, size=batch)], 1)
    tx = np.stack([np.roll(x[b], (int(shifts[b, 0]), int(shifts[b, 1])), axis=(-2, -1)) for b in range(batch)])
    flat = lambda a: a.reshape(batch, p.channels, -1).transpose(0, 2, 1)
    return flat(x), flat(tx), shifts


def peer_wigner_D_all(lmax, R):
    R = np.asarray(R, dtype=np.float64)
    theta, wlat = gauss_legendre(lmax + 1)
    nlon = 2 * lmax + 2
    lon = 2 * np.pi * np.arange(nlon) / nlon
    T, Pp = np.meshgrid(theta, lon, indexing="ij")
    P = angles_to_xyz(T.ravel(), Pp.ravel())  # (Q, 3)
    W = np.repeat(wlat, nlon) * (2 * np.pi / nlon)
    YW = real_sph_harm(lmax, P) * W[:, None]  # (Q, K)
    batch = R.shape[:-2]
    Rf = R.reshape(-1, 3, 3)
    Q = P.shape[0]
    Yr = real_sph_harm(lmax, np.einsum("qi,bij->bqj", P, Rf).reshape(-1, 3))
    out = np.einsum("qk,bql->bkl", YW, Yr.reshape(len(Rf), Q, -1))
    return out.reshape(*batch, *out.shape[-2:])


def peer_sphere_sample(p: SpherePairs, batch, rng):
    Y = real_sph_harm(p.lmax, p.points)
    std = np.sqrt(sh_power(p.lmax, p.alpha))
    Rs = random_rotation(rng, size=batch)
    c = rng.standard_normal((batch, Y.shape[1], p.channels)) * std[None, :, None]
    Dc = peer_wigner_D_all(p.lmax, Rs) @ c
    return Y @ c, Y @ Dc, Rs


class PeerBatches(SpectraBatches):
    """SpectraBatches of before: NumPy pairs from the stream [seed, step]; keep and jitter as ours."""

    def __call__(self):
        cfg, step = self.cfg, self.step
        self.step += 1
        sampler = self.problem.sampler
        rng = np.random.default_rng([cfg.seed, step])
        sample = peer_torus_sample if isinstance(sampler, TorusPairs) else peer_sphere_sample
        x, tx, _ = sample(sampler, cfg.batch, rng)
        keep = torch.full((cfg.batch,), cfg.k, dtype=torch.long)
        if cfg.dropout and step >= cfg.extras.dropout_warmup and cfg.k > 1:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            keep = torch.randint(1, cfg.k + 1, (cfg.batch,), generator=gen)
        jitter = torch.zeros(cfg.batch, cfg.k)  # no preset timed here jitters the mask
        return torch.from_numpy(x).float(), torch.from_numpy(tx).float(), keep, jitter


def _peer_delta_mask(evals: torch.Tensor, width: float = 1.0) -> torch.Tensor:
    """The mask of before: exp(−|λi − λj| / width), subnormals included."""
    return torch.exp(-(evals.unsqueeze(-1) - evals.unsqueeze(-2)).abs() / width)


def _peer_project(state, x):
    """Φᵀ M x as before: one broadcast matmul (transposes x into a copy each way)."""
    return state.phi.mT @ (state.mass.unsqueeze(-1) * x)


def _peer_unproject(state, coeffs):
    k = coeffs.shape[-2]
    phi = state.phi if k == state.k else state.phi[:, :k]
    return phi @ coeffs


def _peer_objective(state, latents, targets=None, *, alpha=0.0, beta=0.5, topology="pair", decoder=None,
                    keep=None, mask=True, mask_evals=None, mask_width=1.0, method="polar", eps=1e-12,
                    compute_dtype=None, recon_dtype=None):
    """niso_objective of before, verbatim but for the names (per-view indexing out[n] of the stack);
    ``recon_dtype`` is accepted and must be None (the step of before had no reduced precision)."""
    if recon_dtype is not None:
        raise ValueError("the peer step has no reduced-precision path")
    targets = latents if targets is None else targets
    coeffs = [_peer_project(state, z) for z in latents]
    evals = (state.evals if mask_evals is None else mask_evals) if mask else None
    edges = losses_module.solve_edges(coeffs, evals, topology, mask_width=mask_width, method=method, eps=eps,
                                      compute_dtype=compute_dtype)
    preds, recon_targets, equiv_terms = [], [], []
    trains_equiv = torch.is_grad_enabled() and alpha != 0
    for i, j, tau in edges:
        to_j, to_i = tau @ coeffs[i], tau.mT @ coeffs[j]
        with torch.set_grad_enabled(trains_equiv):
            equiv_terms.append(losses_module.l1(coeffs[j], to_j) + losses_module.l1(coeffs[i], to_i))
        preds += [to_i, to_j]
        recon_targets += [targets[i], targets[j]]
    pred = torch.stack(preds)
    if keep is not None:
        pred = spectral_dropout(pred, keep=keep)
    synth = _peer_unproject(state, pred)
    out = synth if decoder is None else decoder(synth.flatten(0, 1)).unflatten(0, synth.shape[:2])
    recon = sum(losses_module.l1(t, out[n]) for n, t in enumerate(recon_targets)) / len(edges)
    equiv = sum(equiv_terms) / len(edges)
    mult = losses_module.multiplicity_loss(state.evals)
    loss = recon + alpha * equiv + beta * mult if alpha != 0 else recon + beta * mult
    return losses_module.NIsoOutput({"loss": loss, "recon": recon, "equiv": equiv, "mult": mult}, coeffs, edges)


@contextlib.contextmanager
def peer_mask() -> Iterator[None]:
    """The step of before: the unflushed mask in the τ solve, the multiplicity loss and the
    decorrelation; the objective with broadcast-matmul projection/synthesis and indexed views."""
    saved = [(m, "delta_mask", m.delta_mask) for m in (isometry_module, losses_module, extras_module)]
    saved += [(objective_module, "niso_objective", objective_module.niso_objective)]
    for m, name, _ in saved:
        setattr(m, name, _peer_delta_mask if name == "delta_mask" else _peer_objective)
    try:
        yield
    finally:
        for m, name, f in saved:
            setattr(m, name, f)


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------


def spread_spectrum(op: torch.nn.Module, top: float) -> None:
    """Set Λ = linspace(0, top, K) (the spread of a long run's learned spectrum)."""
    k = op.k
    target = torch.linspace(0, top, k, dtype=op.evals_raw.dtype)
    with torch.no_grad():
        if op.eigenvalue_param == "square":
            op.evals_raw.copy_(target.sqrt())
        else:
            op.evals_raw.copy_(torch.cat([target[:1], target.diff()]).sqrt())


def _finite(op: torch.nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in op.parameters())


def time_config(cfg: SpectraConfig, steps: int, warm: int = 2, spread: float | None = None,
                recon_dtype: str = "float32", compile: bool = False) -> dict:
    """Median ms per step (sampling included) of ours and of the peer, alternating, and their ratio.

    ``compile``: ours runs its objective through ``torch.compile`` (as ``niso spectra --compile``);
    the compilation happens in the untimed warm-up steps.
    """
    problem = build_problem(cfg)
    moment = signal_moment(problem, cfg)
    base = make_operator(cfg, problem.domain.n)
    if spread is not None:
        spread_spectrum(base, spread)
    sides = {}
    for name, method, source in (("ours", "polar", SpectraBatches), ("peer", "torch", PeerBatches)):
        op = copy.deepcopy(base)
        op.method = method
        opt = make_optimizer(operator_param_groups(op, cfg), lr=cfg.lr)
        side_cfg = dataclasses.replace(cfg, recon_dtype=recon_dtype) if name == "ours" else cfg
        objective = SpectraObjective(side_cfg, moment, method=method)
        objective.on_fit_start(op, opt)
        loss_fn = torch.compile(objective.__call__) if compile and name == "ours" else objective
        sides[name] = {"op": op, "opt": opt, "objective": objective, "loss_fn": loss_fn, "batches": source(problem, cfg),
                       "times": [], "sample": [], "nonfinite": 0}
    for step in range(steps + warm):
        for name, s in sides.items():
            if spread is not None:  # hold the spread spectrum: time the end of a run, not a relaxation
                spread_spectrum(s["op"], spread)
            ctx = peer_mask() if name == "peer" else contextlib.nullcontext()
            with ctx:
                t0 = time.perf_counter()
                s["objective"].on_step_start(step)
                batch = s["batches"]()
                t1 = time.perf_counter()
                s["opt"].zero_grad(set_to_none=True)
                s["loss_fn"](s["op"], batch)["loss"].backward()
                if _finite(s["op"]):
                    s["opt"].step()
                else:
                    s["nonfinite"] += 1
                t2 = time.perf_counter()
            if step >= warm:
                s["times"].append(t2 - t0)
                s["sample"].append(t1 - t0)
    med = {n: 1e3 * statistics.median(s["times"]) for n, s in sides.items()}
    ratios = [a / b for a, b in zip(sides["ours"]["times"], sides["peer"]["times"])]
    return {"n": problem.domain.n, "k": cfg.k, "batch": cfg.batch, "channels": cfg.channels,
            "spread": spread, "recon_dtype": recon_dtype, "compile": compile, "ours_ms": med["ours"], "peer_ms": med["peer"],
            "ratio": med["ours"] / med["peer"], "ratio_iqr": [float(np.percentile(ratios, 25)),
                                                          float(np.percentile(ratios, 75))],
            "ours_sample_ms": 1e3 * statistics.median(sides["ours"]["sample"]),
            "peer_sample_ms": 1e3 * statistics.median(sides["peer"]["sample"]),
            "peer_nonfinite": sides["peer"]["nonfinite"], "timed": steps}


def configs(names: list[str], spread: bool) -> list[tuple[str, SpectraConfig, float | None]]:
    official = preset("paper", "torus")  # 16×16, K = 256, batch 16, 267 channels, β = 0.5
    out = []
    if "official" in names:
        out.append(("official 16x16 K=256", official, None))
    if "small" in names:
        out.append(("8x8 K=64", preset("paper", "torus", res=8, k=64), None))
    if spread:
        cpu = preset("cpu", "torus")  # batch 4, 128 channels, K = 256, with its decorrelation
        out.append(("cpu torus, start of run", cpu, None))
        out.append(("cpu torus, end of run (λ to 250)", cpu, 250.0))
    return out


def profile_ours(cfg: SpectraConfig, steps: int = 3) -> str:
    """torch.profiler table (self CPU time) of ``steps`` of our step, sampling included."""
    problem = build_problem(cfg)
    op = make_operator(cfg, problem.domain.n)
    opt = make_optimizer(operator_param_groups(op, cfg), lr=cfg.lr)
    objective = SpectraObjective(cfg, None)
    batches = SpectraBatches(problem, cfg)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for step in range(steps):
            objective.on_step_start(step)
            opt.zero_grad(set_to_none=True)
            objective(op, batches())["loss"].backward()
            opt.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="official,small", help="comma list of official, small")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side and configuration")
    parser.add_argument("--spread", action="store_true", help="also the cpu torus step at the start and end of a run")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of ours")
    parser.add_argument("--recon-dtype", default="float32", choices=["float32", "bfloat16"],
                        help="ours with the opt-in bfloat16 reconstruction (SpectraConfig.recon_dtype)")
    parser.add_argument("--compile", action="store_true",
                        help="ours through torch.compile (compiled in the warm-up steps, which are not timed)")
    parser.add_argument("--warm", type=int, default=2, help="untimed warm-up steps per side and configuration")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = []
    with limit_threads(1):
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
        for label, cfg, spread in configs(args.configs.split(","), args.spread):
            r = time_config(cfg, args.steps, warm=args.warm, spread=spread, recon_dtype=args.recon_dtype,
                            compile=args.compile)
            r["config"] = label
            rows.append(r)
            print(json.dumps(r), flush=True)
        if args.profile:
            print(profile_ours(configs(args.configs.split(","), False)[0][1]))
    print(f"\n{'configuration':<36} {'ours ms':>8} {'peer ms':>8} {'ours/peer':>10} {'IQR':>13} "
          f"{'ours smp':>9} {'peer smp':>9}")
    for r in rows:
        print(f"{r['config']:<36} {r['ours_ms']:8.1f} {r['peer_ms']:8.1f} {r['ratio']:10.2f} "
              f"{r['ratio_iqr'][0]:6.2f}-{r['ratio_iqr'][1]:<6.2f} {r['ours_sample_ms']:9.1f} {r['peer_sample_ms']:9.1f}")
    print("\nms = median wall ms per step, sampling included, one thread; 'ours/peer' < 1 is faster; IQR of the "
          "per-step ratios;\n'smp' = the sampling part of the step.")
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
