"""Pair samplers act through their domain's group, with outputs pinned to the former inline code."""

import numpy as np
import pytest

from niso_geom import SphereGrid, TorusGrid
from niso_geom.data.pose_pairs import sample_rotations
from niso_geom.data.signals import SpherePairs, TorusPairs, torus_random_fields


def _inline_torus_sample(p: TorusPairs, batch: int, rng: np.random.Generator):
    """TorusPairs.sample as it was before the shift moved into TorusGrid (a verbatim copy)."""
    if p.images is None:
        x = torus_random_fields(p.h, p.w, batch * p.channels, rng, alpha=p.alpha, bandlimit=p.bandlimit)
    else:
        x = p._bank[rng.integers(len(p._bank), size=batch * p.channels)].reshape(batch * p.channels, -1)
    x = x.reshape(batch, p.channels, p.h, p.w)
    shifts = np.stack([rng.integers(p.h, size=batch), rng.integers(p.w, size=batch)], 1)
    tx = np.stack([np.roll(x[b], tuple(shifts[b]), axis=(-2, -1)) for b in range(batch)])
    flat = lambda a: a.reshape(batch, p.channels, -1).transpose(0, 2, 1)
    return flat(x), flat(tx), shifts


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("source", ["random", "images"])
def test_torus_pairs_are_bit_identical_to_the_inline_roll(seed, source):
    images = np.random.default_rng(99).uniform(size=(6, 28, 28)) if source == "images" else None
    p = TorusPairs(12, 10, 3, alpha=1.3, bandlimit=4.0 if source == "random" else None, images=images)
    new = p.sample(5, np.random.default_rng(seed))
    old = _inline_torus_sample(p, 5, np.random.default_rng(seed))
    for a, b in zip(new, old):
        assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
        np.testing.assert_array_equal(a, b)


def test_torus_pairs_are_the_grid_transform(rng):
    p = TorusPairs(8, 9, 2)
    x, tx, shifts = p.sample(4, rng)
    assert isinstance(p.grid, TorusGrid) and p.grid.shape == (8, 9)
    for b in range(4):
        np.testing.assert_array_equal(tx[b], p.grid.transform(x[b], tuple(shifts[b])))


def test_sphere_pairs_agree_with_the_grid_rotation(rng):
    g = SphereGrid.driscoll_healy(6)
    p = SpherePairs(g.points, 2, lmax=g.bandlimit)
    x, tx, Rs = p.sample(3, rng)
    for b in range(3):
        np.testing.assert_allclose(tx[b], g.transform(x[b], Rs[b]), atol=1e-10)


def _inline_rodrigues(axes, angles):
    """pose_pairs.axis_angle_rotations as it was before it moved to geometry.rotations (a verbatim copy)."""
    axes = np.asarray(axes, dtype=np.float64)
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.asarray(angles, dtype=np.float64)
    x, y, z = axes[..., 0], axes[..., 1], axes[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angles)[..., None, None], np.cos(angles)[..., None, None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


@pytest.mark.parametrize("seed", [0, 3])
def test_camera_rotations_are_bit_identical_to_the_former_rodrigues(seed):
    R = sample_rotations(64, np.random.default_rng(seed), "camera", 30.0)
    rng = np.random.default_rng(seed)
    axes = rng.standard_normal((64, 3))
    angles = rng.uniform(0.0, np.radians(30.0), 64)
    np.testing.assert_array_equal(R, _inline_rodrigues(axes, angles))
