"""Baselines: rotation invariance of the SH power spectrum and of the e3nn network (exact
Wigner-D rotations of band-limited signals, float64), shapes of the CNN and AE heads."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from niso_geom.baselines.ae_aug import LatentCNN, build_autoencoder, grid_latents
from niso_geom.baselines.cnn_aug import SphereCNN
from niso_geom.baselines.e3nn_sh import E3nnSHClassifier
from niso_geom.baselines.sh_power import SHPowerMLP, SHTransform, power_spectrum
from niso_geom.domains.sphere import SphereGrid
from niso_geom.harmonics.sphere import num_harmonics
from niso_geom.harmonics.wigner import random_rotation, wigner_D_blocks


@contextlib.contextmanager
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _bandlimited_pair(grid: SphereGrid, lmax: int, channels: int, rng: np.random.Generator):
    """Images (2, C, H, W) of a random band-limited signal and of its exact rotation, plus (c, D c)."""
    c = rng.standard_normal((num_harmonics(lmax), channels)) / (1 + np.sqrt(np.arange(num_harmonics(lmax))))[:, None]
    D = wigner_D_blocks(lmax, random_rotation(rng))
    Y = grid.harmonics(lmax)
    imgs = np.stack([grid.to_grid(Y @ c), grid.to_grid(Y @ (D @ c))])
    return torch.from_numpy(imgs), torch.from_numpy(np.stack([c, D @ c]))


def test_sh_transform_is_exact_and_power_is_rotation_invariant(rng):
    grid = SphereGrid.equiangular(16, 32)  # both poles, the dataset's layout; bandlimit 7
    lmax = 6
    imgs, coeffs = _bandlimited_pair(grid, lmax, 3, rng)
    sht = SHTransform(grid, grid.bandlimit).double()
    c = sht(imgs)
    assert c.shape == (2, num_harmonics(grid.bandlimit), 3)
    torch.testing.assert_close(c[:, : num_harmonics(lmax)], coeffs, atol=1e-12, rtol=0)
    assert float(c[:, num_harmonics(lmax):].abs().max()) < 1e-12
    p = power_spectrum(c)
    assert p.shape == (2, 3, grid.bandlimit + 1)
    torch.testing.assert_close(p[0], p[1], atol=1e-12, rtol=0)
    assert not torch.allclose(coeffs[0], coeffs[1], atol=1e-3)  # the rotation did move the coefficients

    p = power_spectrum(c, lmax)  # the signal's band: beyond it the power is 0 up to rounding
    with float64():
        mlp = SHPowerMLP(3, lmax, 5, hidden=16)
    mlp.fit_standardizer(power_spectrum(torch.from_numpy(rng.standard_normal((8, num_harmonics(lmax), 3)))))
    out = mlp(p)
    torch.testing.assert_close(out[0], out[1], atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="lmax"):
        SHTransform(grid, grid.bandlimit + 1)


def test_e3nn_classifier_is_invariant_to_rotations_of_its_sh_input(rng):
    lmax, channels = 4, 3
    with float64():
        net = E3nnSHClassifier(channels, lmax, 5, mul=4, lmax_hidden=3, layers=2, mlp_hidden=16)
    c = torch.from_numpy(rng.standard_normal((6, num_harmonics(lmax), channels)))
    net.fit_scale(c)
    assert not torch.allclose(net.scale, torch.ones_like(net.scale))
    Ds = torch.from_numpy(np.stack([wigner_D_blocks(lmax, random_rotation(rng)) for _ in range(len(c))]))
    out, rotated = net(c), net(torch.einsum("bij,bjc->bic", Ds, c))
    assert out.shape == (6, 5)
    torch.testing.assert_close(out, rotated, atol=1e-10, rtol=0)
    # not invariant to an arbitrary orthogonal map of the same size (so the check has teeth)
    Q, _ = torch.linalg.qr(torch.from_numpy(rng.standard_normal((num_harmonics(lmax),) * 2)))
    assert float((net(torch.einsum("ij,bjc->bic", Q, c)) - out).detach().abs().max()) > 1e-4


def test_e3nn_classifier_keeps_its_activations_at_unit_scale_through_depth(rng):
    # each tensor square raises the scale to a power; the equivariant normalization after every
    # block keeps the invariant scalars O(1) at initialization, so the logits start near ln(classes)
    lmax, channels = 4, 3
    torch.manual_seed(0)
    net = E3nnSHClassifier(channels, lmax, 5, mul=8, lmax_hidden=3, layers=3, mlp_hidden=16)
    c = torch.from_numpy(3.0 * rng.standard_normal((64, num_harmonics(lmax), channels))).float()
    net.fit_scale(c)
    with torch.no_grad():
        scalars = net.invariants(c)
    assert torch.isfinite(scalars).all()
    assert float(scalars.square().mean().sqrt()) < 3.0
    net.eval()  # running statistics instead of the batch's: still finite
    with torch.no_grad():
        assert torch.isfinite(net(c)).all()


def test_cnn_and_autoencoder_heads_shapes():
    torch.manual_seed(0)
    cnn = SphereCNN(4, (16, 32), (4, 8, 8), (1, 1, 1), 8, 3, lift=4, width=8)
    assert cnn(torch.zeros(2, 4, 16, 32)).shape == (2, 3)
    ae = build_autoencoder(4, (16, 32), (4, 8, 8), (1, 1, 1), 8, (8, 8, 4), (1, 1, 1), lift=4)
    z = grid_latents(ae, torch.zeros(2, 4, 16, 32))
    assert z.shape == (2, 8, 4, 8)
    assert LatentCNN(8, (4, 8), width=8, num_classes=3)(z).shape == (2, 3)
    assert ae.step_loss((torch.zeros(2, 4, 16, 32),))["loss"].ndim == 0
