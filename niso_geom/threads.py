"""One thread budget for torch and for the BLAS that NumPy and SciPy call.

``torch.set_num_threads`` bounds torch's own pool only. NumPy's and SciPy's OpenBLAS keep one
thread per core, so a run started with ``--threads 1`` still put a second busy thread on the
other core whenever it sampled signals with NumPy: on the 2-core machine a torus run beside a
sphere run fell from 10 to 5.5 steps/s, and a sphere batch took 27 ms instead of 12 (measured
in docs/spectra.md, "Threads"), and the cSHREC'11 builder's small dense eigenproblems took 1.1 s
instead of 8 ms (252 vertices). Small dense products and eigenproblems, which is all this project
asks of NumPy, are fastest on one thread on a busy machine.

:func:`blas_threads` sets every BLAS loaded in the process — OpenBLAS, MKL, BLIS, found by
threadpoolctl on every platform — and the environment variables below, which processes spawned
meanwhile read at start-up; :func:`limit_threads` does that and torch together;
:func:`set_blas_threads` and :func:`set_threads` do the same for the rest of the process. OpenMP
pools are left alone (torch's intra-op pool is torch's to set). No torch import at module level:
the data builders use :func:`blas_threads` alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = ["BLAS_ENV", "blas_libraries", "blas_threads", "limit_threads", "set_blas_threads", "set_threads"]

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def blas_libraries() -> list[dict[str, Any]]:
    """threadpoolctl's description of every BLAS loaded in this process (``internal_api``,
    ``num_threads``, ``filepath``, ...)."""
    return [info for info in threadpool_info() if info["user_api"] == "blas"]


def _check(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"thread count must be an integer >= 1, got {n!r}")
    return int(n)


def set_blas_threads(n: int) -> None:
    """For the rest of the process: ``n`` threads in every loaded BLAS, and ``n`` in the
    environment variables that processes started later read."""
    n = _check(n)
    os.environ.update({k: str(n) for k in BLAS_ENV})
    threadpool_limits(limits=n, user_api="blas")


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """``n`` BLAS threads in this process and in processes spawned meanwhile; restored on exit."""
    n = _check(n)
    saved_env = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update({k: str(n) for k in BLAS_ENV})
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
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
