"""niso_geom.threads: one thread budget for torch and NumPy's BLAS."""

import os
import sys

import numpy as np
import pytest
import torch

from niso_geom.threads import BLAS_ENV, blas_threads, limit_threads, openblas_setters, set_blas_threads, set_threads


def _numpy_uses_openblas() -> bool:
    config = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.26.0" else None
    if not config:
        return False
    return "openblas" in str(config.get("Build Dependencies", {}).get("blas", {}).get("name", "")).lower()


def _counts() -> list[int]:
    return [get() for get, _ in openblas_setters()]


@pytest.mark.skipif(sys.platform != "linux" or not _numpy_uses_openblas(), reason="needs NumPy on OpenBLAS, Linux")
def test_numpy_openblas_is_found_and_set_and_restored():
    np.ones((4, 4)) @ np.ones((4, 4))  # make sure the library is loaded and initialized
    assert openblas_setters(), "NumPy's OpenBLAS was not found in /proc/self/maps"
    before = _counts()
    with blas_threads(1):
        assert _counts() == [1] * len(before)
        with blas_threads(2):
            assert _counts() == [2] * len(before)
        assert _counts() == [1] * len(before)
    assert _counts() == before


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
    with pytest.raises(RuntimeError, match="inside"):
        with limit_threads(target):
            assert torch.get_num_threads() == target
            raise RuntimeError("inside")
    assert torch.get_num_threads() == previous
    with limit_threads(None):  # None leaves everything alone
        assert torch.get_num_threads() == previous


def test_set_threads_sets_torch_blas_and_the_environment(monkeypatch):
    for k in BLAS_ENV:
        monkeypatch.delenv(k, raising=False)
    previous, counts = torch.get_num_threads(), _counts()
    target = 2 if previous == 1 else 1
    try:
        set_threads(target)
        assert torch.get_num_threads() == target
        assert _counts() == [target] * len(counts)
        assert all(os.environ[k] == str(target) for k in BLAS_ENV)
    finally:
        torch.set_num_threads(previous)
        for (_, put), n in zip(openblas_setters(), counts):
            put(n)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        set_blas_threads(bad)
    with pytest.raises((ValueError, TypeError)):
        set_threads(bad)
    with pytest.raises((ValueError, TypeError)):
        with blas_threads(bad):
            pass
