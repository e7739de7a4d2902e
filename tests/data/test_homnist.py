"""Homography warps, pre-training pairs and the homNIST builder (niso_geom.data.homnist)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from niso_geom.cache import DiskCache
from niso_geom.data import homnist
from niso_geom.data.homnist import (
    HomographyPairSampler,
    build_homnist,
    load_homnist_mat,
    warp_images,
)
from niso_geom.data.mnist import load_mnist, pad_images
from niso_geom.errors import DataError
from niso_geom.geometry import homography as hg
from niso_geom.shared_data import data_root

H = W = 40


def smooth_image(A: np.ndarray | None = None) -> torch.Tensor:
    """f(u, v) = cos(2u + 1) sin(1.5v) + u v on the normalized grid, sampled at A p (float64)."""
    g = hg.pixel_grid(H, W)
    if A is not None:
        uv = hg.apply_homography(A, g.reshape(-1, 3)).reshape(H, W, 2)
    else:
        uv = g[..., :2]
    u, v = uv[..., 0], uv[..., 1]
    return torch.from_numpy(np.cos(2 * u + 1) * np.sin(1.5 * v) + u * v)[None, None]


def interior(A: np.ndarray, margin: float = 0.9) -> np.ndarray:
    """Mask of output pixels whose source point A p lies well inside the image."""
    uv = hg.apply_homography(A, hg.pixel_grid(H, W).reshape(-1, 3)).reshape(H, W, 2)
    return np.all(np.abs(uv) < margin, axis=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("background", [0.0, "min", 3.0])
def test_identity_warp_is_exact(dtype, background):
    x = torch.randn(3, 2, H, W, dtype=dtype)
    assert torch.equal(warp_images(x, np.eye(3), background), x)
    assert torch.equal(warp_images(x, torch.eye(3).expand(3, 3, 3), background), x)


def test_pull_back_direction_and_background():
    # A p shifts the row coordinate by k pixels: (T_A x)[i, j] = x[i + k, j], background beyond
    k = 3
    A = np.eye(3)
    A[0, 2] = 2 * k / (H - 1)
    x = torch.rand(2, 1, H, W)
    y = warp_images(x, A, background=-1.0)
    assert torch.equal(y[:, :, :H - k], x[:, :, k:])
    assert (y[:, :, H - k:] == -1).all()
    # a half-pixel shift blends the last row with the background
    A[0, 2] = 2 * 0.5 / (H - 1)
    y = warp_images(x, A, background=-1.0)
    torch.testing.assert_close(y[:, :, -1], 0.5 * (x[:, :, -1] - 1))
    torch.testing.assert_close(y[:, :, 0], 0.5 * (x[:, :, 0] + x[:, :, 1]))


def test_warp_is_pull_back_of_smooth_image():
    A = hg.sample_homographies(1, 11)[0]
    got = warp_images(smooth_image(), A)[0, 0].numpy()
    want = smooth_image(A)[0, 0].numpy()
    mask = interior(A)
    assert mask.sum() > 600
    err = np.abs(got - want)[mask].max()
    assert err < 5e-3  # bilinear interpolation error on a smooth image
    # the push-forward (A^-1) would be far off
    pushed = warp_images(smooth_image(), hg.invert(A))[0, 0].numpy()
    assert np.abs(pushed - want)[mask].max() > 20 * err


def test_warps_compose_and_invert():
    A, B = hg.sample_homographies(2, 12)
    x = smooth_image()
    twice = warp_images(warp_images(x, A), B)
    mask = interior(A @ B) & interior(B)
    err = (twice - warp_images(x, hg.compose(A, B)))[0, 0].numpy()[mask]
    wrong = (twice - warp_images(x, B @ A))[0, 0].numpy()[mask]
    assert np.abs(err).max() < 1e-2 and np.abs(wrong).max() > 5 * np.abs(err).max()
    back = warp_images(warp_images(x, A), hg.invert(A))
    mask = interior(A) & interior(hg.invert(A))
    assert np.abs((back - x)[0, 0].numpy()[mask]).max() < 1e-2


def test_warp_batches_channels_and_grad():
    A = hg.sample_homographies(4, 13)
    x = torch.rand(4, 3, H, W, requires_grad=True)
    y = warp_images(x, A)
    for b in range(4):
        torch.testing.assert_close(y[b:b + 1], warp_images(x[b:b + 1], A[b]))
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        warp_images(x, A[:2])


def test_pair_sampler():
    x = torch.rand(6, 1, H, W) * 2 - 1
    x1, tx, A = HomographyPairSampler(rng=0)(x)
    assert x1 is x and tx.shape == x.shape and A.shape == (6, 3, 3) and A.dtype == x.dtype
    torch.testing.assert_close(torch.linalg.det(A.double()), torch.ones(6, dtype=torch.float64))
    A64 = HomographyPairSampler(rng=0).sample(6)
    assert torch.equal(tx, warp_images(x, A64, "min"))
    torch.testing.assert_close(A, torch.as_tensor(A64, dtype=torch.float32))
    _, tx2, A2 = HomographyPairSampler(rng=0)(x)
    assert torch.equal(tx, tx2) and torch.equal(A, A2)
    # far-out homography: out-of-image pixels take each image's minimum
    far = torch.diag(torch.tensor([8.0, 8.0, 1.0])) / 4.0
    y = warp_images(x, far, "min")
    assert torch.equal(y[:, :, 0, 0], x.amin(dim=(1, 2, 3))[:, None])
    with pytest.raises(ValueError):
        HomographyPairSampler(method="haar")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return root, build_homnist(root, seed=0, subset=3, progress=False, threads=1)


def test_builder_layout_and_labels(built):
    _, ds = built
    _, y = load_mnist("test")
    assert len(ds) == 96 and ds.images.shape == (96, 40, 40) and ds.images.dtype == np.float32
    assert ds.labels.shape == (96,) and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, np.repeat(y[:3], 32))
    np.testing.assert_array_equal(ds.digit_index, np.repeat(np.arange(3), 32))
    np.testing.assert_allclose(np.linalg.det(ds.homographies), 1.0, atol=1e-12)
    assert 0 <= ds.images.min() and ds.images.max() <= 1
    # each image is its digit (k/255 intensities, padded at offset 6) pulled back by its homography
    u8, _ = load_mnist("test", as_uint8=True)
    canvas = torch.from_numpy(pad_images(u8[:3], 40).astype(np.float32) / 255)
    again = warp_images(canvas[ds.digit_index][:, None], ds.homographies)[:, 0]
    torch.testing.assert_close(torch.from_numpy(ds.images), again)
    imgs, labels = ds.torch_dataset()[5]
    assert imgs.shape == (1, 40, 40) and labels.item() == y[0]


def test_builder_is_deterministic_and_cached(built, tmp_path, monkeypatch):
    root, ds = built
    other = build_homnist(tmp_path / "c2", seed=0, subset=3, progress=False, threads=2)
    for name, arr in ds.arrays().items():
        np.testing.assert_array_equal(arr, other.arrays()[name])
    assert ds.manifest["arrays"] == other.manifest["arrays"]
    assert ds.manifest["key"] == other.manifest["key"]
    # manifest on disk, with the file's checksum
    man = json.loads(ds.path.with_suffix(".manifest.json").read_text())
    assert man["params"]["seed"] == 0 and man["counts"]["images"] == 96
    assert man["files"][0]["sha256"] == hashlib.sha256(ds.path.read_bytes()).hexdigest()
    # a second build in the same cache is a hit
    monkeypatch.setattr(homnist, "_compute",
                        lambda *a, **k: pytest.fail("recomputed a cached build"))
    hit = build_homnist(DiskCache(root), seed=0, subset=3, progress=False)
    np.testing.assert_array_equal(hit.images, ds.images)
    assert hit.path == ds.path


def test_builder_seed_subset_and_scale():
    threads_before = torch.get_num_threads()
    kw = {"cache": False, "progress": False, "threads": 1}
    a = build_homnist(seed=0, subset=2, **kw)
    b = build_homnist(seed=1, subset=2, **kw)
    assert a.manifest["arrays"]["images"]["sha256"] != b.manifest["arrays"]["images"]["sha256"]
    assert a.path is None and torch.get_num_threads() == threads_before
    # a subset is the prefix of a larger build
    c = build_homnist(seed=0, subset=3, chunk_digits=2, **kw)
    np.testing.assert_array_equal(c.images[:64], a.images)
    np.testing.assert_array_equal(c.homographies[:64], a.homographies)
    # scale 0: every homography is the identity and the images are the padded digits
    z = build_homnist(seed=0, subset=2, scale=0.0, num_homographies=2, **kw)
    u8, _ = load_mnist("test", as_uint8=True)
    want = np.repeat(pad_images(u8[:2], 40).astype(np.float32) / 255, 2, axis=0)
    np.testing.assert_array_equal(z.images, want)


def test_builder_reports_corrupt_mnist(tmp_path):
    (tmp_path / "SHA256SUMS").write_text((data_root() / "SHA256SUMS").read_text())
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(b"\x1f\x8b corrupt")
    with pytest.raises(DataError, match=r"mnist\.pkl\.gz"):
        build_homnist(cache=False, subset=1, progress=False, data_root=tmp_path)


def test_load_original_mat(tmp_path):
    sio = pytest.importorskip("scipy.io")
    u = hg.sample_homographies_metropolis(4, 0)
    imgs = np.random.default_rng(0).random((4, 40, 40))
    sio.savemat(tmp_path / "h.mat", {"img_data": imgs, "labels": np.array([3.0, 3, 5, 5]),
                                     "hom_matrices": u}, oned_as="column")
    ds = load_homnist_mat(tmp_path / "h.mat", per_digit=2)
    assert ds.labels.shape == (4,) and ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [3, 3, 5, 5] and ds.digit_index.tolist() == [0, 0, 1, 1]
    eye = np.broadcast_to(np.eye(3), (4, 3, 3))
    np.testing.assert_allclose(ds.homographies @ u, eye, atol=1e-12)
    np.testing.assert_array_equal(ds.images, imgs.astype(np.float32))
    with pytest.raises(DataError):
        load_homnist_mat(tmp_path / "missing.mat")
