"""MNIST loaders (shared pickle, IDX files) and padding (niso_geom.data.mnist)."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from niso_geom.data.mnist import load_mnist, load_mnist_idx, pad_images
from niso_geom.errors import DataError
from niso_geom.shared_data import data_root


@pytest.mark.parametrize("split,n", [("train", 50000), ("valid", 10000), ("test", 10000),
                                     ("train+valid", 60000)])
def test_splits_shapes_and_dtypes(split, n):
    x, y = load_mnist(split)
    assert x.shape == (n, 784) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    assert not x.flags.writeable and not y.flags.writeable


def test_test_split_content_and_uint8():
    x, y = load_mnist("test")
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # the first MNIST test digits
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    u, y2 = load_mnist("test", as_uint8=True)
    assert u.dtype == np.uint8 and u.max() == 255
    np.testing.assert_array_equal(u.astype(np.float32) / 256, x)  # the pickle stores k/256
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")


def test_corrupt_pickle_names_the_file(tmp_path):
    sums = (data_root() / "SHA256SUMS").read_text()
    (tmp_path / "SHA256SUMS").write_text(sums)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(b"not the MNIST pickle")
    with pytest.raises(DataError, match=r"mnist\.pkl\.gz") as err:
        load_mnist("test", root=tmp_path)
    assert "checksum" in str(err.value)
    (tmp_path / "mnist" / "mnist.pkl.gz").unlink()
    with pytest.raises(DataError, match=r"mnist\.pkl\.gz"):
        load_mnist("test", root=tmp_path)


def _write_idx(path, arr, compress):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + arr.tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    u, y = load_mnist("test", as_uint8=True)
    u, y = u[:40].reshape(40, 28, 28), y[:40]
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", u, True)
    _write_idx(tmp_path / "t10k-labels.idx1-ubyte", y, False)  # the dotted spelling, uncompressed
    return tmp_path, u, y


def test_idx_roundtrip(idx_folder):
    folder, u, y = idx_folder
    x8, y8 = load_mnist_idx(folder, "test", as_uint8=True)
    np.testing.assert_array_equal(x8, u.reshape(40, 784))
    np.testing.assert_array_equal(y8, y)
    x, lab = load_mnist_idx(folder, "test")
    assert x.dtype == np.float32 and lab.dtype == np.int64 and lab.shape == (40,)
    np.testing.assert_array_equal(x, u.reshape(40, 784).astype(np.float32) / 255)
    with pytest.raises(DataError, match="train-images"):
        load_mnist_idx(folder, "train")


def test_idx_checksums_and_corruption(idx_folder):
    folder = idx_folder[0]
    good = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    (folder / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in good.items()))
    load_mnist_idx(folder, "test")  # verifies
    labels_line = f"{good['t10k-labels.idx1-ubyte']}  t10k-labels.idx1-ubyte\n"
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  t10k-images-idx3-ubyte.gz\n" + labels_line)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist_idx(folder, "test")
    (folder / "SHA256SUMS").unlink()
    short = b"\x00\x00\x08\x01" + (39).to_bytes(4, "big") + bytes(39)
    (folder / "t10k-labels.idx1-ubyte").write_bytes(short)
    with pytest.raises(DataError, match="t10k-labels"):
        load_mnist_idx(folder, "test")  # 39 labels for 40 images
    (folder / "t10k-labels.idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + bytes(44))
    with pytest.raises(DataError, match="t10k-labels.idx1-ubyte"):
        load_mnist_idx(folder, "test")  # float IDX, wrong magic


def test_pad_images_places_digit_at_offset_6():
    x, _ = load_mnist("test")
    x = x[:5]
    for inp in (x, x.reshape(5, 28, 28), x.reshape(5, 1, 28, 28)):
        p = pad_images(inp, 40)
        assert p.shape == (5, 40, 40) and p.dtype == np.float32
        np.testing.assert_array_equal(p[:, 6:34, 6:34], x.reshape(5, 28, 28))
        assert p.sum() == pytest.approx(x.sum())
    p = pad_images(x, 40, value=-1.0)
    assert (p[:, :6] == -1).all() and (p[:, 34:] == -1).all() and (p[:, :, :6] == -1).all()
    assert pad_images(x, 32, offset=0)[:, :28, :28].sum() == pytest.approx(x.sum())
    with pytest.raises(ValueError):
        pad_images(x, 30, offset=5)
    with pytest.raises(ValueError):
        pad_images(np.zeros((2, 20, 20)), 40)


class _Payload:
    """Pickles as a call of ``pathlib.Path.touch`` on ``marker``: code that must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_pickle_with_a_reduce_payload_is_refused_without_running_it(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    x = np.zeros((2, 784), np.float32)
    y = np.zeros(2, np.int64)
    ok = gzip.compress(pickle.dumps(((x, y), (x, y), (x[:1], y[:1])), protocol=2))  # Python 3, protocol 2
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(ok)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(ok).hexdigest()}  mnist/mnist.pkl.gz\n")
    assert load_mnist("test", root=tmp_path)[0].shape == (1, 784)
    blob = gzip.compress(pickle.dumps(((x, y), (x, y), (x, _Payload(marker))), protocol=4))
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(blob)
    # the attacker's matching checksum line, in the same writable folder
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(blob).hexdigest()}  mnist/mnist.pkl.gz\n")
    with pytest.raises(DataError, match=r"refusing to load (pathlib|posixpath)\S*\.touch: only NumPy arrays"):
        load_mnist("test", root=tmp_path)
    assert not marker.exists()
    # arrays only, but not MNIST's structure: named, not a crash
    blob = gzip.compress(pickle.dumps((x, y), protocol=2))
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(blob)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(blob).hexdigest()}  mnist/mnist.pkl.gz\n")
    with pytest.raises(DataError, match="expected \\(train, valid, test\\) pairs"):
        load_mnist("test", root=tmp_path)
