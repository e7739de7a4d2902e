"""Tests for niso_geom.niso.models: domain padding, blocks, encoders/decoders, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from niso_geom.niso.models import (
    PRESETS,
    DomainConv2d,
    DomainPad,
    GridDecoder,
    GridEncoder,
    InstanceNorm,
    ResBlock,
    conv_macs,
    count_parameters,
    from_flat,
    latent_grid_shape,
    latent_sphere_coords,
    pad_domain,
    receptive_field,
    reference_init_,
    to_flat,
)


def _seed(s: int = 0) -> torch.Generator:
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


# --------------------------------------------------------------------------------------------
# padding


def test_sphere_pad_cell_grid_hand_computed():
    x = torch.arange(8.0).reshape(1, 1, 2, 4)  # rows [0 1 2 3], [4 5 6 7]
    # Row beyond the north pole = row 0 rolled by W/2 = [2 3 0 1]; beyond the south pole
    # = row 1 rolled = [6 7 4 5]; then longitude wraps (corners included).
    expected = torch.tensor(
        [
            [1, 2, 3, 0, 1, 2],
            [3, 0, 1, 2, 3, 0],
            [7, 4, 5, 6, 7, 4],
            [5, 6, 7, 4, 5, 6],
        ],
        dtype=torch.float32,
    )
    got = pad_domain(x, 1, "sphere")
    assert torch.equal(got[0, 0], expected)


def test_sphere_pad_cell_grid_two_rows_and_geometry():
    # pad 2 on a 3x6 cell-centred grid: pad rows -1, -2 are rings 0, 1 rolled by 3.
    x = torch.arange(18.0).reshape(3, 6)
    got = pad_domain(x, (2, 0), "sphere")
    assert got.shape == (7, 6)
    assert torch.equal(got[0], torch.tensor([9.0, 10, 11, 6, 7, 8]))  # row -2 <- ring 1
    assert torch.equal(got[1], torch.tensor([3.0, 4, 5, 0, 1, 2]))  # row -1 <- ring 0
    assert torch.equal(got[5], torch.tensor([15.0, 16, 17, 12, 13, 14]))  # row 3 <- ring 2
    assert torch.equal(got[6], torch.tensor([9.0, 10, 11, 6, 7, 8]))  # row 4 <- ring 1
    # Geometric check: the padded point (theta, phi) with theta outside [0, pi] is the grid
    # point (|theta| or 2 pi - theta, phi + pi).
    H, W, p = 5, 8, 2
    y = torch.arange(float(H * W)).reshape(H, W)
    got = pad_domain(y, p, "sphere")
    for a in range(-p, H + p):
        for b in range(-p, W + p):
            theta = np.pi * (a + 0.5) / H
            phi = 2 * np.pi * b / W
            if theta < 0:
                theta, phi = -theta, phi + np.pi
            elif theta > np.pi:
                theta, phi = 2 * np.pi - theta, phi + np.pi
            i = int(round(theta * H / np.pi - 0.5))
            j = int(round(phi * W / (2 * np.pi))) % W
            assert got[a + p, b + p] == y[i, j], (a, b)


def test_sphere_pad_pole_grid_hand_computed():
    x = torch.arange(12.0).reshape(3, 4)  # row 0 and row 2 are the poles
    got = pad_domain(x, (1, 0), "sphere", sphere_grid="poles")
    # Beyond either pole lies ring 1 (the pole row is the mirror), rolled by W/2.
    assert torch.equal(got[0], torch.tensor([6.0, 7, 4, 5]))
    assert torch.equal(got[1:4], x)
    assert torch.equal(got[4], torch.tensor([6.0, 7, 4, 5]))


def test_torus_and_zero_pad():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    t = pad_domain(x, (2, 1), "torus")
    assert torch.equal(t, F.pad(x, (1, 1, 2, 2), mode="circular"))
    z = pad_domain(x, 1, "zero")
    assert z.shape == (2, 3, 7, 9)
    assert torch.equal(z[..., 1:-1, 1:-1], x)
    border = torch.ones_like(z, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    assert torch.count_nonzero(z[border]) == 0
    assert DomainPad(1, "zero")(x).shape == z.shape


def test_pad_errors():
    with pytest.raises(ValueError, match="even"):
        pad_domain(torch.zeros(4, 5), 1, "sphere")
    with pytest.raises(ValueError, match="mode"):
        pad_domain(torch.zeros(4, 4), 1, "klein")
    with pytest.raises(ValueError, match="exceeds"):
        pad_domain(torch.zeros(2, 4), 3, "torus")
    with pytest.raises(ValueError):
        DomainConv2d(2, 2, 4)  # even kernel


def test_domain_conv_matches_circular_conv_on_torus():
    g = _seed(1)
    conv = DomainConv2d(3, 4, 3, "torus").double()
    ref = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64, generator=g)
    torch.testing.assert_close(conv(x), ref(x), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# blocks


def test_instance_norm_formula():
    g = _seed(2)
    n = InstanceNorm(3).double()
    with torch.no_grad():
        n.weight.copy_(torch.tensor([1.0, 2.0, -0.5]))
        n.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))
    x = 5 * torch.randn(2, 3, 4, 6, dtype=torch.float64, generator=g) + 2
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mu) ** 2).mean(dim=(2, 3), keepdim=True)
    want = (x - mu) / torch.sqrt(var + 1e-6) * n.weight.view(1, 3, 1, 1) + n.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(n(x), want, rtol=0, atol=1e-12)


def test_resblock_structure_and_formula():
    g = _seed(3)
    blk = ResBlock(4, 4, 3, "torus").double()
    assert isinstance(blk.skip, torch.nn.Conv2d) and blk.skip.kernel_size == (1, 1)  # even for c_in == c
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=g)
    h = blk.conv1(F.silu(blk.norm1(x)))
    h = blk.conv2(F.silu(blk.norm2(h)))
    torch.testing.assert_close(blk(x), h + blk.skip(x), rtol=0, atol=0)
    assert ResBlock(3, 5)(torch.randn(1, 3, 4, 4)).shape == (1, 5, 4, 4)


# --------------------------------------------------------------------------------------------
# shapes, presets, parameter counts

SMALL_SIZES = {  # small inputs that satisfy each preset's divisibility rules
    "hmnist": (12, 12),
    "hmnist_cpu": (40, 40),
    "cshrec11": (16, 32),
    "cshrec11_cpu": (48, 96),
    "pose": (12, 8),
    "pose_cpu": (16, 16),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes_and_round_trip(name):
    cfg = PRESETS[name]
    enc, dec = cfg.build()
    H, W = SMALL_SIZES[name]
    f = 2**cfg.levels
    x = torch.randn(2, cfg.in_channels, H, W)
    with torch.no_grad():
        z = enc(x)
        assert z.shape == (2, cfg.latent_dim, H // f, W // f)
        assert enc.latent_shape(H, W) == (H // f, W // f)
        flat = to_flat(z)
        assert flat.shape == (2, (H // f) * (W // f), cfg.latent_dim)
        y = dec(from_flat(flat, H // f, W // f))
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    # the preset's own latent grid
    assert cfg.latent_shape == latent_grid_shape(cfg.input_shape, cfg.levels, cfg.mode)


def test_paper_preset_latents_and_parameter_counts():
    assert PRESETS["hmnist"].latent_shape == (20, 20)
    assert PRESETS["cshrec11"].latent_shape == (12, 24)
    assert PRESETS["cshrec11_cpu"].latent_shape == (12, 24)
    assert PRESETS["pose"].latent_shape == (36, 36)
    # docs/algorithm.md §2.1 table (millions, 2 decimals).
    table = {"hmnist": (1.08, 1.09), "cshrec11": (2.91, 3.04), "pose": (6.16, 6.43)}
    for name, (n_enc, n_dec) in table.items():
        enc, dec = PRESETS[name].build()
        assert abs(count_parameters(enc) / 1e6 - n_enc) < 0.005, name
        assert abs(count_parameters(dec) / 1e6 - n_dec) < 0.005, name


def test_flat_layout_row_major():
    z = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)  # (B, C, H, W)
    flat = to_flat(z)
    i, j = 2, 3
    assert torch.equal(flat[:, i * 5 + j, :], z[:, :, i, j])
    assert torch.equal(from_flat(flat, 4, 5), z)
    with pytest.raises(ValueError):
        from_flat(flat, 5, 5)


def test_latent_grid_helpers():
    assert latent_grid_shape((96, 192), 3) == (12, 24)
    assert latent_grid_shape((7, 3, 40, 40), 1) == (20, 20)
    assert latent_grid_shape((41, 41), 1, "zero") == (20, 20)
    with pytest.raises(ValueError, match="divisible"):
        latent_grid_shape((41, 40), 1, "torus")
    with pytest.raises(ValueError, match="even"):
        latent_grid_shape((8, 12), 2, "sphere")  # 3 longitudes at the deepest level
    # cell-centred input -> cell-centred latent rows; longitudes rotated by a fixed offset
    theta, phi = latent_sphere_coords((96, 192), 3)
    np.testing.assert_allclose(theta, np.pi * (np.arange(12) + 0.5) / 12, atol=1e-14)
    dphi = phi - 2 * np.pi * np.arange(24) / 24
    np.testing.assert_allclose(dphi, dphi[0], atol=1e-14)
    np.testing.assert_allclose(dphi[0], 2 * np.pi / 192 * 3.5, atol=1e-14)
    # pole-including input: equally spaced rows, symmetric about the equator
    theta, _ = latent_sphere_coords((96, 192), 1, "poles")
    np.testing.assert_allclose(np.diff(theta), 2 * np.pi / 95, atol=1e-13)
    np.testing.assert_allclose(theta + theta[::-1], np.pi, atol=1e-13)
    np.testing.assert_allclose(theta[0], 0.5 * np.pi / 95, atol=1e-14)


# --------------------------------------------------------------------------------------------
# equivariance (float64)


def _small_encoder(mode, sphere_grid="cell"):
    torch.manual_seed(4)
    return GridEncoder(3, (4, 6, 8), (1, 1, 1), 5, mode, lift=6, sphere_grid=sphere_grid).double()


@pytest.mark.parametrize("sphere_grid", ["cell", "poles"])
def test_sphere_encoder_equivariant_to_longitude_shifts(sphere_grid):
    enc = _small_encoder("sphere", sphere_grid)
    g = _seed(5)
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64, generator=g)  # latent 2x4
    with torch.no_grad():
        z = enc(x)
        for s in (1, 3):
            zs = enc(torch.roll(x, 4 * s, dims=-1))
            torch.testing.assert_close(zs, torch.roll(z, s, dims=-1), rtol=0, atol=1e-10)
    # a sub-cell shift is not a symmetry of the pooling: the test above can fail
    with torch.no_grad():
        z1 = enc(torch.roll(x, 1, dims=-1))
    assert (z1 - z).abs().max() > 1e-3


def test_sphere_encoder_differs_from_zero_padding_near_poles():
    enc = _small_encoder("sphere")
    zero = _small_encoder("zero")
    zero.load_state_dict(enc.state_dict())
    x = torch.randn(1, 3, 8, 16, dtype=torch.float64)
    with torch.no_grad():
        assert (enc(x) - zero(x)).abs().max() > 1e-3
        # the zero-padded encoder is NOT equivariant to longitude shifts
        assert (zero(torch.roll(x, 4, -1)) - torch.roll(zero(x), 1, -1)).abs().max() > 1e-3


def test_torus_encoder_equivariant_to_shifts():
    enc = _small_encoder("torus")
    g = _seed(6)
    x = torch.randn(2, 3, 12, 8, dtype=torch.float64, generator=g)  # latent 3x2
    with torch.no_grad():
        z = enc(x)
        for a, b in [(1, 0), (0, 1), (2, 1)]:
            zs = enc(torch.roll(x, (4 * a, 4 * b), dims=(-2, -1)))
            torch.testing.assert_close(zs, torch.roll(z, (a, b), dims=(-2, -1)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["torus", "sphere"])
def test_decoder_equivariant_to_shifts(mode):
    torch.manual_seed(7)
    dec = GridDecoder(5, (8, 6, 4), (1, 1, 1), 3, mode).double()
    z = torch.randn(2, 5, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        y = dec(z)
        assert y.shape == (2, 3, 8, 16)
        ys = dec(torch.roll(z, 1, dims=-1))
    torch.testing.assert_close(ys, torch.roll(y, 4, dims=-1), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# gradients, init, input checks


def test_gradients_flow_to_every_parameter():
    torch.manual_seed(8)
    enc = GridEncoder(2, (4, 6), (1, 2), 3, "sphere", lift=5)
    dec = GridDecoder(3, (6, 4), (2, 1), 2, "sphere")
    x = torch.randn(2, 2, 8, 16)
    loss = (dec(enc(x)) - x).abs().mean()
    loss.backward()
    for name, p in list(enc.named_parameters()) + list(dec.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_reference_init():
    torch.manual_seed(9)
    enc = reference_init_(GridEncoder(3, (16, 16), (1, 1), 4, "zero", lift=48))
    w = enc.stages[0][0].conv1.weight  # 48 -> 16, 3x3: fan_in 432
    assert abs(w.std().item() - (1 / 432) ** 0.5) < 0.1 * (1 / 432) ** 0.5
    assert w.abs().max() <= 2 * (1 / 432) ** 0.5 / 0.87962566103423978 + 1e-7
    assert torch.count_nonzero(enc.stages[0][0].conv1.bias) == 0


def test_input_checks():
    enc = GridEncoder(1, (4, 4), (1, 1), 2, "sphere", lift=4)
    with pytest.raises(ValueError, match="divisible"):
        enc(torch.zeros(1, 1, 7, 8))
    with pytest.raises(ValueError, match="expects"):
        enc(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError):
        GridEncoder(1, (4, 4), (1,), 2)


def test_conv_macs_and_receptive_field_of_the_homnist_encoders():
    # one 3x3 convolution 2 -> 5 channels on 6x4: 6*4*5 outputs, 2*9 multiply-adds each
    assert conv_macs(DomainConv2d(2, 5, 3, "zero"), (2, 6, 4)) == 6 * 4 * 5 * 2 * 9
    paper = PRESETS["hmnist"].encoder()
    assert conv_macs(paper, (1, 40, 40)) == 699_673_600  # ~0.70 G, docs/algorithm.md §6.1: 1.40 GFLOP
    assert next(paper.parameters()).device.type == "cpu"  # counted on a copy
    assert receptive_field(paper) == 38
    # 1 + 2·2 (level 0, one block) + 1 (pool) + 2·2·2 per block at stride 2
    for depth, field in (((1, 1), 14), ((1, 3), 30), ((2, 2), 26)):
        enc = GridEncoder(1, (16, 32), depth, 32, "zero", lift=16)
        assert receptive_field(enc) == field, depth
