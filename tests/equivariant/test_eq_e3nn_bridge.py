"""e3nn bridge: the change of basis, commutation with Wigner-D, real e3nn modules downstream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from torch import nn

from niso_geom.equivariant import SpectralType, assert_equivariant, random_rotation, rotation_action
from niso_geom.equivariant.e3nn_bridge import (
    E3nnAdapter,
    E3nnBridge,
    e3nn_change_of_basis,
    irreps_from_type,
    to_e3nn_rotation,
)
from niso_geom.harmonics.sphere import real_sph_harm
from niso_geom.harmonics.wigner import wigner_D

LMAX = 3
S = SpectralType.sphere(LMAX)


def _points(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _wigner_from_harmonics(l: int, R: np.ndarray) -> np.ndarray:
    """D with Y_l(R v) = D Y_l(v), fitted on our harmonics alone (no e3nn involved)."""
    v = _points(200, seed=l)
    Y = real_sph_harm(l, v)[:, l * l :]
    YR = real_sph_harm(l, v @ R.T)[:, l * l :]
    Dt, *_ = np.linalg.lstsq(Y, YR, rcond=None)
    return Dt.T


@pytest.mark.parametrize("l", range(7))
def test_change_of_basis_is_orthogonal_and_identity(l):
    q = e3nn_change_of_basis(l, dtype=torch.float64)
    assert torch.allclose(q @ q.T, torch.eye(2 * l + 1, dtype=torch.float64), atol=1e-12)
    # e3nn 0.6 at P v = (y, z, x) coincides with our convention: Q_l is exactly the identity
    assert torch.equal(q, torch.eye(2 * l + 1, dtype=torch.float64))


def test_bridge_maps_our_harmonics_to_e3nn_harmonics():
    v = _points(50)
    Y = torch.from_numpy(real_sph_harm(LMAX, v))  # (N, K)
    bridge = E3nnBridge(S, 1)
    u = torch.from_numpy(v[:, [1, 2, 0]])  # e3nn's frame: (y, z, x)
    expected = o3.spherical_harmonics(list(range(LMAX + 1)), u, True, normalization="integral")
    assert torch.allclose(bridge.to_e3nn(Y[..., None]), expected, atol=1e-12)


def test_to_e3nn_rotation_permutes_axes(gen):
    R = random_rotation(generator=gen, dtype=torch.float64)
    v = torch.randn(3, dtype=torch.float64)
    assert torch.allclose(to_e3nn_rotation(R) @ v[[1, 2, 0]], (R @ v)[[1, 2, 0]])


def test_project_wigner_D_matches_harmonics(gen):
    R = random_rotation(generator=gen, dtype=torch.float64).numpy()
    for l in range(LMAX + 1):
        assert np.allclose(wigner_D(l, R), _wigner_from_harmonics(l, R), atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_bridge_commutes_with_wigner_D(gen, float64_default, channels):
    bridge = E3nnBridge(S, channels)
    x = S.randn(4, -1, channels, generator=gen, dtype=torch.float64)
    for _ in range(3):
        R = random_rotation(generator=gen, dtype=torch.float64)
        D_ours = torch.from_numpy(
            np.asarray(S.rotation_action(R, lambda l, r: _wigner_from_harmonics(l, r.numpy())))
        )
        D_e3nn = bridge.irreps.D_from_matrix(to_e3nn_rotation(R))  # (irreps.dim, irreps.dim)
        lhs = bridge.to_e3nn(torch.einsum("ij,bjc->bic", D_ours, x))
        rhs = bridge.to_e3nn(x) @ D_e3nn.T
        assert torch.allclose(lhs, rhs, atol=1e-10)


def test_round_trip_and_layout():
    t = SpectralType("2x1+1x3+2x5")
    bridge = E3nnBridge(t, 3)
    assert bridge.irreps == o3.Irreps("3x0e+3x0e+3x1o+3x2e+3x2e")
    assert bridge.irreps == irreps_from_type(t, 3)
    x = t.randn(2, 5, -1, 3, dtype=torch.float64)
    y = bridge(x)
    assert y.shape == (2, 5, bridge.irreps.dim)
    assert torch.equal(bridge.from_e3nn(y), x)
    # multiplicity-major inside a block: channel c of the l = 1 block is y[..., 6 + 3c : 9 + 3c]
    assert torch.equal(y[..., 6 + 3 : 9 + 3], x[..., 2:5, 1])
    with pytest.raises(ValueError, match="SH-aligned"):
        E3nnBridge(SpectralType("1x2"), 3)
    with pytest.raises(ValueError):
        bridge.to_e3nn(torch.zeros(2, t.dim, 4))


def test_e3nn_linear_through_bridge_is_equivariant(float64_default):
    lin = o3.Linear(irreps_from_type(S, 4), irreps_from_type(S, 5))
    net = E3nnAdapter(lin, S, 4, out_type=S, out_channels=5)
    err = assert_equivariant(net, S, S, action=rotation_action(S, wigner_D), perturb_params=0.1)
    assert err < 1e-9


class _Square(nn.Module):
    """x -> x ⊗ x through an e3nn tensor product: couples degrees with e3nn's CG tables."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> None:
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_in, irreps_out)
        self.irreps_in, self.irreps_out = self.tp.irreps_in1, self.tp.irreps_out

    def forward(self, x):
        return self.tp(x, x)


def test_e3nn_tensor_product_through_bridge_is_equivariant(float64_default):
    # A Linear commutes with any per-degree change of basis; a tensor product does not,
    # so this test is the one that pins the basis down.
    net = E3nnAdapter(_Square(irreps_from_type(S, 2), irreps_from_type(S, 2)), S, 2, out_type=S)
    assert assert_equivariant(net, S, S, action=rotation_action(S, wigner_D)) < 1e-9
    # negative control: skip the (y, z, x) axis permutation on the l = 1 block
    wrong = torch.eye(S.dim, dtype=torch.float64)
    wrong[1:4, 1:4] = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    net.bridge_in.Q = wrong
    net.bridge_out.Q = wrong
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(net, S, S, action=rotation_action(S, wigner_D))


def test_invariant_e3nn_readout(float64_default):
    norm = o3.Norm(irreps_from_type(S, 3))
    net = E3nnAdapter(norm, S, 3)
    assert net(S.randn(2, -1, 3, dtype=torch.float64)).shape == (2, (LMAX + 1) * 3)
    assert assert_equivariant(net, S, None, action=rotation_action(S, wigner_D)) < 1e-9


def test_adapter_checks_irreps():
    with pytest.raises(ValueError, match="irreps_in"):
        E3nnAdapter(o3.Linear("3x0e", "3x0e"), S, 3)
