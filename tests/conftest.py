"""Shared fixtures: an isolated cache directory, the shared data root, seeded RNGs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from niso_geom.shared_data import data_root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its cache entries to a fresh temporary folder, never the user's cache."""
    monkeypatch.setenv("NISO_GEOM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def shared_root():
    """The shared data folder (../shared/data or $NISO_GEOM_DATA)."""
    return data_root()


@pytest.fixture
def rng():
    seed = int(os.environ.get("NISO_GEOM_TEST_SEED", "0"))
    return np.random.default_rng(seed)


CLOSED_MESHES = ["armadillo.off", "blobby.off", "bull.off", "bunny00.off", "cow.off", "dino.off", "ellipsoid.off",
                 "fandisk.off", "hand.off", "homer.off", "man.off", "sphere966.off", "spot.obj"]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small linear algebra runs fastest on one thread; two threads on a busy 2-core CI box were
    up to 35× slower (see docs/spectra.md)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
