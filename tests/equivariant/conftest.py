"""Fixtures for the equivariant tests: seeded RNGs and a float64 default dtype for e3nn."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

SEED = int(os.environ.get("NISO_GEOM_TEST_SEED", "0"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def float64_default() -> Iterator[None]:
    """e3nn builds Clebsch–Gordan / Wigner tables in the default dtype: make it float64."""
    with default_dtype(torch.float64):
        yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)
