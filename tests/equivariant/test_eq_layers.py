"""Block-equivariant layers: equivariance to 1e-9 in float64, and what each layer computes."""

from __future__ import annotations

import pytest
import torch

from niso_geom.equivariant import (
    BlockGramHead,
    BlockLinear,
    InvariantPool,
    NormActivation,
    SpectralType,
    assert_equivariant,
    block_gram,
    block_sq_norms,
    rotation_action,
)
from niso_geom.harmonics.wigner import wigner_D

T = SpectralType("2x1+2x3+1x2+1x5")  # 1-dim, odd and even blocks; K = 15
C = 4


def _layers():
    return [
        BlockLinear(T, C, 6),
        NormActivation(T, C),
        NormActivation(T, C, normalize=False, activation=torch.sigmoid),
        InvariantPool(T, C),
        BlockGramHead(T, C, 5, inter_features=3, hidden=16),
    ]


@pytest.mark.parametrize("layer", _layers(), ids=lambda m: type(m).__name__)
def test_block_equivariance(layer):
    err = assert_equivariant(layer, T, layer.out_type, atol=1e-9, perturb_params=0.1, n_samples=3)
    assert err < 1e-9
    assert layer.check_equivariance(atol=1e-9) < 1e-9


@pytest.mark.parametrize("layer", _layers()[:2], ids=lambda m: type(m).__name__)
def test_block_layers_are_not_O_K_equivariant(layer):
    # separate weights / gates per block: mixing blocks must be detected
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(layer, T, T, action="orthogonal", perturb_params=0.1)


def test_block_gram_head_is_not_O_K_invariant():
    head = BlockGramHead(T, C, 5, inter_features=3, hidden=16)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_equivariant(head, T, None, action="orthogonal")


def test_block_linear_matches_per_block_matmul():
    lin = BlockLinear(T, C, 6).double()
    x = T.randn(3, -1, C, dtype=torch.float64)
    y = lin(x)
    assert y.shape == (3, T.dim, 6)
    for b, sl in enumerate(T.slices()):
        assert torch.allclose(y[:, sl], x[:, sl] @ lin.weight[b], atol=1e-12)
    with pytest.raises(ValueError, match="K=15"):
        lin(torch.zeros(3, 14, C, dtype=torch.float64))


def test_block_linear_bias_only_on_trivial_actions():
    lin = BlockLinear(T, C, 6, bias=True)
    assert lin.bias.shape == (2, 6)  # the two 1-dim blocks only
    # SO(1) = {1} on 1-dim blocks: a bias is equivariant
    assert_equivariant(lin, T, T, action="block_special", perturb_params=0.1)
    # O(1) = {±1}: the sign flip breaks it
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(lin, T, T, action="block", perturb_params=0.1)
    # on the sphere the l = 0 block is trivial under Wigner-D
    s = SpectralType.sphere(2)
    lin = BlockLinear(s, C, 3, bias=True)
    assert_equivariant(lin, s, s, action=rotation_action(s, wigner_D), perturb_params=0.1)


def test_norm_activation_finite_gradient_at_zero():
    act = NormActivation(T, C).double()
    x = torch.zeros(2, T.dim, C, dtype=torch.float64, requires_grad=True)
    y = act(x)
    assert torch.all(y == 0)
    (y.sum() + (y**2).sum()).backward()
    assert torch.isfinite(x.grad).all()
    # a zero block inside a nonzero input
    x = T.randn(2, -1, C, dtype=torch.float64)
    x[:, T.slices()[2]] = 0
    x.requires_grad_(True)
    act(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="eps > 0"):
        NormActivation(T, C, eps=0.0)


def test_norm_activation_value():
    act = NormActivation(T, C, bias=False, eps=1e-12).double()
    x = T.randn(2, -1, C, dtype=torch.float64)
    y = act(x)
    for sl in T.slices():
        n = x[:, sl].norm(dim=1, keepdim=True)
        assert torch.allclose(y[:, sl], x[:, sl] / n * torch.nn.functional.silu(n), atol=1e-10)


def test_invariant_pool_values_and_gradient():
    pool = InvariantPool(T, C, eps=0.0, flatten=False)
    x = T.randn(2, -1, C, dtype=torch.float64)
    n = pool(x)
    assert n.shape == (2, T.num_blocks, C)
    for b, sl in enumerate(T.slices()):
        assert torch.allclose(n[:, b], x[:, sl].norm(dim=1))
    flat = InvariantPool(T, C)
    assert flat(x).shape == (2, flat.out_features) == (2, T.num_blocks * C)
    z = torch.zeros(1, T.dim, C, dtype=torch.float64, requires_grad=True)
    flat(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_block_gram_and_sq_norms():
    x = T.randn(2, -1, 3, dtype=torch.float64)
    g = block_gram(x, T, upper=False)
    assert g.shape == (2, T.num_blocks, 3, 3)
    for b, sl in enumerate(T.slices()):
        assert torch.allclose(g[:, b], x[:, sl].transpose(1, 2) @ x[:, sl])
    assert block_gram(x, T).shape == (2, T.num_blocks, 6)
    assert torch.allclose(block_sq_norms(x, T), torch.diagonal(g, dim1=-2, dim2=-1))


def test_float32_forward_and_check():
    head = BlockGramHead(T, C, 5, inter_features=3, hidden=16)
    x = T.randn(7, -1, C)
    assert head(x).shape == (7, 5) and head(x).dtype == torch.float32
    # the check can also run in float32, with a float32 tolerance
    assert assert_equivariant(head, T, None, dtype=torch.float32, atol=1e-4) < 1e-4
    assert next(head.parameters()).dtype == torch.float32  # the check worked on a copy
