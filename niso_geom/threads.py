"""One thread budget for torch and for the BLAS that NumPy and SciPy call.

``torch.set_num_threads`` bounds torch's own pool only. NumPy's and SciPy's OpenBLAS keep one
thread per core, so a run started with ``--threads 1`` still put a second busy thread on the
other core whenever it sampled signals with NumPy: on the 2-core machine a torus run beside a
sphere run fell from 10 to 5.5 steps/s, and a sphere batch took 27 ms instead of 12 (measured
in docs/spectra.md, "Threads"), and the cSHREC'11 builder's small dense eigenproblems took 1.1 s
instead of 8 ms (252 vertices). Small dense products and eigenproblems, which is all this project
asks of NumPy, are fastest on one thread on a busy machine.

:func:`blas_threads` sets every OpenBLAS loaded in the process (found through
``/proc/self/maps``, Linux; elsewhere only the environment variables below, which processes
spawned meanwhile read at start-up) and :func:`limit_threads` does that and torch together;
:func:`set_blas_threads` and :func:`set_threads` do the same for the rest of the process.
No torch import at module level: the data builders use :func:`blas_threads` alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["BLAS_ENV", "openblas_setters", "set_blas_threads", "blas_threads", "set_threads", "limit_threads"]

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def openblas_setters() -> list[tuple[Any, Any]]:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process (Linux; else [])."""
    import ctypes

    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and "openblas" in os.path.basename(parts[-1]).lower():
                    paths.add(parts[-1])
    except OSError:
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    out.append((get, put))
    return out


def _check(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"thread count must be an integer >= 1, got {n!r}")
    return int(n)


def set_blas_threads(n: int) -> None:
    """For the rest of the process: ``n`` threads in every loaded OpenBLAS, and ``n`` in the
    environment variables that processes started later read."""
    n = _check(n)
    os.environ.update({k: str(n) for k in BLAS_ENV})
    for _, put in openblas_setters():
        put(n)


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """``n`` BLAS threads in this process and in processes spawned meanwhile; restored on exit."""
    n = _check(n)
    saved_env = {k: os.environ.get(k) for k in BLAS_ENV}
    setters = openblas_setters()
    saved = [get() for get, _ in setters]
    set_blas_threads(n)
    try:
        yield
    finally:
        for (_, put), count in zip(setters, saved):
            put(count)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def set_threads(n: int) -> None:
    """For the rest of the process: ``n`` torch intra-op threads and ``n`` BLAS threads."""
    import torch

    n = _check(n)
    torch.set_num_threads(n)
    set_blas_threads(n)


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads and the BLAS threads both ``n`` inside; None changes nothing."""
    if n is None:
        yield
        return
    import torch

    n = _check(n)
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        torch.set_num_threads(previous)
