"""The paper's orth_net: O(K)-equivariant parts, O(K)-invariant readout, parameter counts."""

from __future__ import annotations

import pytest
import torch

from niso_geom.equivariant import (
    OrthMLP,
    OrthNet,
    OrthNeuron,
    OrthNorm,
    OrthOut,
    SpectralType,
    assert_equivariant,
    orthogonal_action,
)

T = SpectralType("1x1+1x3+2x2+1x5")  # K = 13; OrthNet ignores the blocks
C = 3


@pytest.mark.parametrize(
    "layer",
    [OrthNeuron(C, 5), OrthNorm(C), OrthMLP(C, 5, 2)],
    ids=lambda m: type(m).__name__,
)
@pytest.mark.parametrize("action", ["orthogonal", "block"])
def test_equivariant_parts(layer, action):
    assert assert_equivariant(layer, T, T, action=action, perturb_params=0.1) < 1e-9


@pytest.mark.parametrize("det", [1, -1])
def test_readouts_invariant_under_full_O_K(det):
    act = orthogonal_action(T.dim, det=det)  # det = −1: reflections, as the paper claims
    out = OrthOut(C, 4, inter_features=6, hidden=32)
    net = OrthNet(8, 2, 4, in_channels=C, inter_features=6, readout_hidden=32)
    assert assert_equivariant(out, T, None, action=act, perturb_params=0.1) < 1e-9
    assert assert_equivariant(net, T, None, action=act, perturb_params=0.1) < 1e-9
    assert assert_equivariant(net, T, None, action="block") < 1e-9


def test_orthogonal_action_determinant(gen):
    for det in (1, -1):
        q = orthogonal_action(5, det=det)(gen)
        assert torch.linalg.det(q).item() == pytest.approx(det)


def test_orthnet_any_K_and_shapes():
    net = OrthNet(8, 4, 3, in_channels=C, inter_features=4, readout_hidden=16).double()
    for k in (1, 7, 30):
        assert net(torch.randn(5, k, C, dtype=torch.float64)).shape == (5, 3)
    assert len(net.mlp0.layers) == 2 * (4 // 2 + 1)
    assert net(torch.randn(2, 6, 7, C, dtype=torch.float64)).shape == (2, 6, 3)


def test_orth_neuron_removes_opposing_component():
    # W_k = −W_q, so k = −q and q·k = −|q|² ≪ 0: the neuron removes q's component along k,
    # which is all of q: the output vanishes.
    n = OrthNeuron(C, C).double()
    with torch.no_grad():
        n.q.weight.copy_(torch.eye(C))
        n.k.weight.copy_(-torch.eye(C))
    x = 10 * torch.randn(2, 9, C, dtype=torch.float64)
    assert n(x).abs().max() < 1e-6 * x.abs().max()
    # aligned q and k (q·k > 0, large) pass q through unchanged
    with torch.no_grad():
        n.k.weight.copy_(torch.eye(C))
    assert torch.allclose(n(x), x, atol=1e-8)


def test_orth_norm_normalises_rms():
    norm = OrthNorm(C).double()
    x = 100 * torch.randn(4, 20, C, dtype=torch.float64)
    assert torch.allclose(norm(x).pow(2).mean(-2), torch.ones(4, C, dtype=torch.float64), atol=1e-6)


def test_gram_readout_is_upper_triangle():
    out = OrthOut(C, 2, inter_features=4, hidden=8).double()
    x = torch.randn(3, 6, C, dtype=torch.float64)
    h = out.neuron(out.norm(x))
    g = h.transpose(-1, -2) @ h
    inv = out.invariants(x)
    assert inv.shape == (3, 10)
    iu = torch.triu_indices(4, 4)
    assert torch.allclose(inv, g[:, iu[0], iu[1]])


@pytest.mark.parametrize(
    "c_in, layers, out_dim, expected",
    [(32, 2, 10, 17_525_194), (64, 4, 25, 17_728_409)],  # homNIST, conformal SHREC'11
)
def test_paper_parameter_counts(c_in, layers, out_dim, expected):
    # docs/algorithm.md §2.2: 17.53 M (hmnist_pred) and 17.73 M (cshrec11_pred)
    with torch.device("meta"):
        net = OrthNet(128, layers, out_dim, in_channels=c_in)
    n = sum(p.numel() for p in net.parameters())
    assert n == expected
    assert round(n / 1e6, 2) == round(expected / 1e6, 2)
    with torch.device("meta"):
        small = OrthNet(128, layers, out_dim, in_channels=c_in, readout_hidden=1024)
    assert sum(p.numel() for p in small.parameters()) < 3_000_000


def test_flax_style_init():
    lin = OrthNet(64, 2, 10, in_channels=32, readout_hidden=64).skip
    w = lin.weight.detach()
    assert w.abs().max() <= 2 / 0.8796 / 32**0.5 + 1e-6  # truncated at 2σ
    assert abs(w.var().item() * 32 - 1.0) < 0.15  # variance 1/fan_in
    assert lin.bias is None
