"""assert_equivariant itself: it must fail on broken modules and leave the module untouched."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from niso_geom.equivariant import BlockLinear, SpectralType, assert_equivariant

T = SpectralType("1x1+2x2+1x3")  # K = 8


class MixesK(nn.Module):
    """Deliberately not equivariant: a dense map over the K axis."""

    def __init__(self, k: int, c: int) -> None:
        super().__init__()
        self.in_channels = c
        self.lin = nn.Linear(k, k)

    def forward(self, x):
        return self.lin(x.transpose(-1, -2)).transpose(-1, -2)


class Elementwise(nn.Module):
    """Not equivariant either: a pointwise nonlinearity on the coefficients."""

    in_channels = 2

    def forward(self, x):
        return torch.tanh(x)


@pytest.mark.parametrize(
    "module", [MixesK(T.dim, 2), Elementwise()], ids=lambda m: type(m).__name__
)
def test_detects_non_equivariant_module(module):
    pattern = rf"{type(module).__name__} is not equivariant .* > atol"
    with pytest.raises(AssertionError, match=pattern):
        assert_equivariant(module, T, T)


def test_detects_non_invariant_output():
    with pytest.raises(AssertionError, match="BlockLinear is not invariant"):
        assert_equivariant(BlockLinear(T, 2, 2), T, None)


def test_nan_output_fails():
    class Nan(nn.Module):
        in_channels = 2

        def forward(self, x):
            return x * float("nan")

    with pytest.raises(AssertionError):
        assert_equivariant(Nan(), T, T)


def test_returns_error_and_leaves_module_untouched(caplog):
    lin = BlockLinear(T, 2, 3).train()
    before = lin.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="niso_geom.equivariant.testing"):
        err = assert_equivariant(lin, T, T, n_samples=2, perturb_params=0.5)
    assert isinstance(err, float) and 0 <= err < 1e-12
    assert lin.training and lin.weight.dtype == torch.float32
    assert torch.equal(lin.weight, before)
    assert any("max error" in r.message for r in caplog.records)


def test_callable_action_with_separate_output_matrix(gen):
    t_out = SpectralType("1x1+2x2")  # drop the 3-block

    class Drop3(nn.Module):
        in_channels = 2

        def forward(self, x):
            return x[..., :5, :]

    def action(g: torch.Generator):
        m = T.random_isometry(generator=g, dtype=torch.float64)
        return m, m[:5, :5]

    assert assert_equivariant(Drop3(), T, t_out, action=action) < 1e-12
    with pytest.raises(ValueError, match="out_type == in_type"):
        assert_equivariant(Drop3(), T, t_out, action="block")


def test_argument_errors():
    with pytest.raises(ValueError, match="in_channels"):
        assert_equivariant(lambda x: x, T, T)
    assert assert_equivariant(lambda x: 2 * x, T, T, in_channels=3) < 1e-12
    with pytest.raises(ValueError, match="unknown action"):
        assert_equivariant(lambda x: x, T, T, in_channels=1, action="rotation")
    with pytest.raises(ValueError, match="output has shape"):
        assert_equivariant(lambda x: x[..., :3, :], T, T, in_channels=1)


def test_perturb_params_exposes_hidden_symmetry_breaking():
    lin = BlockLinear(T, 2, 2, bias=True)  # zero-initialised bias: looks equivariant at init
    assert assert_equivariant(lin, T, T) < 1e-12
    with pytest.raises(AssertionError):
        assert_equivariant(lin, T, T, perturb_params=0.1)
