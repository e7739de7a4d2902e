"""The torch samplers of training streams draw the same distributions as the NumPy ones.

Torus: the same linear filter of white noise (equal on equal noise), exact shifts, unit-std
fields; sphere: Tx is the field evaluated at Rᵀp (exact Wigner-D), Haar rotations, the same
per-degree power.
"""

import numpy as np
import pytest
import torch

from niso_geom import SphereGrid
from niso_geom.data.signals import (
    SpherePairs,
    TorusPairs,
    normalize_fields,
    sh_power,
    torus_amplitude,
    torus_fields_from_noise,
    torus_filter_matrix,
    torus_random_fields,
)
from niso_geom.harmonics.sphere import real_sph_harm, sh_degrees


@pytest.mark.parametrize("shape,alpha,band", [((16, 16), 1.0, None), ((12, 10), 1.3, 4.0), ((7, 9), 0.5, None)])
def test_torus_fields_are_the_numpy_filter_on_equal_noise(shape, alpha, band):
    h, w = shape
    noise = np.random.default_rng(3).standard_normal((5, h, w))  # what torus_random_fields draws
    ref = torus_random_fields(h, w, 5, np.random.default_rng(3), alpha=alpha, bandlimit=band)
    amp = torch.from_numpy(torus_amplitude(h, w, alpha, band))
    new = torus_fields_from_noise(torch.from_numpy(noise), amp).numpy()
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-12)
    F = torus_filter_matrix(amp)  # the same filter as one matmul
    torch.testing.assert_close(F, F.T)
    by_matrix = normalize_fields(torch.from_numpy(noise.reshape(5, -1)) @ F, -1).numpy()
    np.testing.assert_allclose(by_matrix, ref, rtol=0, atol=1e-12)


def test_torus_torch_pairs_on_a_large_grid_use_the_fft():
    p = TorusPairs(40, 36, 2)
    assert p._filter is None
    x, tx, shifts = p.sample_torch(2, torch.Generator().manual_seed(0))
    for b in range(2):
        np.testing.assert_array_equal(tx[b].numpy(), p.grid.shift(x[b].numpy(), *map(int, shifts[b])))
    torch.testing.assert_close(x.std(1, correction=0), torch.ones(2, 2), rtol=1e-5, atol=1e-5)


def test_torus_torch_pairs_are_exact_shifts_of_unit_fields():
    p = TorusPairs(8, 6, 5, alpha=1.2)
    x, tx, shifts = p.sample_torch(4, torch.Generator().manual_seed(0))
    assert x.shape == tx.shape == (4, 48, 5) and x.dtype == torch.float32 and x.is_contiguous()
    for b in range(4):
        ref = p.grid.shift(x[b].numpy(), int(shifts[b, 0]), int(shifts[b, 1]))
        np.testing.assert_array_equal(tx[b].numpy(), ref)  # bit-identical shift
    torch.testing.assert_close(x.std(1, correction=0), torch.ones(4, 5), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.mean(1), torch.zeros(4, 5), rtol=0, atol=1e-5)
    assert len({tuple(s) for s in shifts.tolist()}) > 1


def test_torus_torch_power_spectrum_matches_the_filter():
    h = w = 8
    p = TorusPairs(h, w, 64)
    x, _, _ = p.sample_torch(32, torch.Generator().manual_seed(1))
    power = (torch.fft.fft2(x.transpose(1, 2).reshape(-1, h, w).double()).abs() ** 2).mean(0).numpy()
    amp2 = torus_amplitude(h, w) ** 2
    expected = amp2 / amp2.sum() * h * w * h * w  # unit variance per field: Σ|X̂|² = N² (Parseval)
    keep = amp2 > 0
    np.testing.assert_allclose(power[keep] / expected[keep], 1.0, atol=0.15)  # 2048 fields
    assert power[0, 0] < 1e-8


def test_torus_torch_digits_come_from_the_bank():
    images = np.random.default_rng(5).uniform(size=(4, 28, 28))
    p = TorusPairs(8, 8, 3, images=images)
    x, _, _ = p.sample_torch(2, torch.Generator().manual_seed(0))
    bank = torch.from_numpy(p._bank.reshape(4, -1)).float()
    for col in x.transpose(1, 2).reshape(-1, 64):
        assert any(torch.equal(col, b) for b in bank)


def test_sphere_torch_pairs_are_exact_rotations_with_the_power_law():
    grid = SphereGrid.driscoll_healy(8)
    p = SpherePairs(grid.points, 16, lmax=5, alpha=1.0)
    x, tx, Rs = p.sample_torch(6, torch.Generator().manual_seed(2))
    assert x.shape == tx.shape == (6, grid.n, 16) and x.dtype == torch.float32
    Y = real_sph_harm(5, p.points)
    for b in range(6):
        c, *_ = np.linalg.lstsq(Y, x[b].double().numpy(), rcond=None)
        np.testing.assert_allclose(real_sph_harm(5, p.points @ Rs[b].numpy()) @ c, tx[b].double().numpy(), atol=2e-4)
        np.testing.assert_allclose(Rs[b].numpy() @ Rs[b].numpy().T, np.eye(3), atol=1e-12)
        assert np.linalg.det(Rs[b].numpy()) == pytest.approx(1.0)
    # per-degree power of the coefficients, as sample(): (l+1)^(−α) normalized
    x, _, _ = p.sample_torch(64, torch.Generator().manual_seed(3))
    c = np.linalg.lstsq(Y, x.double().numpy().transpose(1, 0, 2).reshape(grid.n, -1), rcond=None)[0]
    deg = sh_degrees(5)
    var = np.array([c[deg == l].var() for l in range(6)])
    np.testing.assert_allclose(var, [sh_power(5, 1.0)[deg == l][0] for l in range(6)], rtol=0.1)


def test_sphere_torch_rotations_are_haar():
    p = SpherePairs(SphereGrid.driscoll_healy(4).points, 1, lmax=2)
    _, _, Rs = p.sample_torch(4000, torch.Generator().manual_seed(4))
    tr = np.trace(Rs.numpy(), axis1=1, axis2=2)
    assert abs(tr.mean()) < 0.05 and abs((tr ** 2).mean() - 1.0) < 0.1  # Haar: E tr = 0, E tr² = 1
