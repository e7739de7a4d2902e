"""niso_geom.threads: one thread budget for torch and NumPy's BLAS (through threadpoolctl)."""

import os

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's own BLAS too)
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from niso_geom.threads import (
    BLAS_ENV,
    blas_libraries,
    blas_threads,
    limit_threads,
    set_blas_threads,
    set_threads,
)


def _counts() -> list[int]:
    return [lib["num_threads"] for lib in blas_libraries()]


def _openmp_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"]


def test_numpy_blas_is_found_and_set_and_restored():
    np.ones((4, 4)) @ np.ones((4, 4))  # make sure the library is loaded and initialized
    assert blas_libraries(), "threadpoolctl found no BLAS under NumPy"
    before = _counts()
    with blas_threads(1):
        assert _counts() == [1] * len(before)
        with blas_threads(2):
            assert _counts() == [2] * len(before)
        assert _counts() == [1] * len(before)
    assert _counts() == before


def test_blas_limits_leave_openmp_alone():
    before = _openmp_counts()
    with blas_threads(1):
        assert _openmp_counts() == before


def test_blas_environment_is_set_inside_and_restored(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    with blas_threads(1):
        assert all(os.environ[k] == "1" for k in BLAS_ENV)
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    assert os.environ["MKL_NUM_THREADS"] == "7"


def test_limit_threads_sets_torch_and_restores_it_after_an_error():
    previous = torch.get_num_threads()
    target = 2 if previous == 1 else 1
    with pytest.raises(RuntimeError, match="inside"), limit_threads(target):
        assert torch.get_num_threads() == target
        raise RuntimeError("inside")
    assert torch.get_num_threads() == previous
    with limit_threads(None):  # None leaves everything alone
        assert torch.get_num_threads() == previous


def test_set_threads_sets_torch_blas_and_the_environment(monkeypatch):
    for k in BLAS_ENV:
        monkeypatch.delenv(k, raising=False)
    previous = torch.get_num_threads()
    target = 2 if previous == 1 else 1
    with threadpool_limits(limits=None, user_api="blas"):  # restores the BLAS counts on exit
        try:
            set_threads(target)
            assert torch.get_num_threads() == target
            assert _counts() == [target] * len(_counts())
            assert all(os.environ[k] == str(target) for k in BLAS_ENV)
        finally:
            torch.set_num_threads(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        set_blas_threads(bad)
    with pytest.raises((ValueError, TypeError)):
        set_threads(bad)
    with pytest.raises((ValueError, TypeError)), blas_threads(bad):
        pass
