"""homNIST and cSHREC'11 as torch datasets: items carry their transformation, and they work with
DataLoader and DistributedSampler (two replicas, no process group needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from niso_geom.data import cshrec11 as cs
from niso_geom.data.homnist import build_homnist

TINY = {"res": (16, 32), "transforms": 2, "seed": 3, "classes": "laptop,bird1", "_max_per_class": 2}


@pytest.fixture(scope="module")
def homnist(tmp_path_factory):
    return build_homnist(tmp_path_factory.mktemp("homnist"), seed=0, subset=2, progress=False, threads=1)


@pytest.fixture(scope="module")
def cshrec(tmp_path_factory):
    root = tmp_path_factory.mktemp("cshrec11")
    return cs.load_cshrec11(root, split_seed=0, progress=False, **TINY)


def _replica_indices(ds, rank: int) -> list[int]:
    return list(DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=5))


def test_homnist_items_carry_their_homography(homnist):
    ds = homnist.torch_dataset(homographies=True)
    image, label, H = ds[37]
    assert image.shape == (1, 40, 40) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and int(label) == homnist.labels[37]
    assert H.shape == (3, 3) and H.dtype == torch.float64
    assert np.array_equal(H.numpy(), homnist.homographies[37])
    assert len(homnist.torch_dataset()[0]) == 2  # the default stays (image, label)


def test_homnist_with_dataloader_and_distributed_sampler(homnist):
    ds = homnist.torch_dataset(homographies=True)
    parts = [_replica_indices(ds, r) for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == list(range(len(ds)))  # disjoint, together everything
    seen = []
    for r in (0, 1):
        loader = DataLoader(ds, batch_size=10, sampler=DistributedSampler(ds, num_replicas=2, rank=r, seed=5))
        for images, labels, Hs in loader:
            assert images.shape[1:] == (1, 40, 40) and Hs.shape[1:] == (3, 3) and len(labels) == len(Hs)
            seen += [h.numpy().tobytes() for h in Hs]
    assert len(set(seen)) == len(ds)


def test_cshrec11_items_are_views_labels_and_their_mobius_matrix(cshrec):
    ds = cs.CShrec11Views(cshrec, split="all")
    V = cshrec.num_views
    assert len(ds) == len(cshrec.mesh_names) * V
    x, y, A = ds[V + 2]  # mesh 1, view 2
    assert x.shape == (16, 16, 32) and x.dtype == torch.float32 and float(x.abs().max()) <= 1
    assert np.array_equal(x.numpy(), cshrec.views(1, 2)[0, 0])
    assert int(y) == cshrec.labels[1]
    assert A.dtype == torch.complex128 and np.array_equal(A.numpy(), cshrec.extras(1)["mobius"][1])
    assert np.array_equal(ds[V][2].numpy(), np.eye(2))  # view 0 is the conformal map itself
    assert np.array_equal(ds[-1][0].numpy(), ds[len(ds) - 1][0].numpy())
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match="views must be"):
        cs.CShrec11Views(cshrec, views=[V])


def test_cshrec11_splits_with_dataloader_and_distributed_sampler(cshrec):
    train = cs.CShrec11Views(cshrec, split="train", views=[0, 1])
    test = cs.CShrec11Views(cshrec, split="test", views=[0])
    assert len(train) == 2 * len(cshrec.train_index) and len(test) == len(cshrec.test_index)
    labels = []
    for r in (0, 1):
        loader = DataLoader(train, batch_size=3, sampler=DistributedSampler(train, num_replicas=2, rank=r, seed=1),
                            num_workers=r)  # rank 1 reads in a worker process (the dataset is pickled)
        for x, y, A in loader:
            assert x.shape[1:] == (16, 16, 32) and A.shape[1:] == (2, 2) and A.dtype == torch.complex128
            labels += y.tolist()
    expected = np.repeat(cshrec.labels[cshrec.train_index], 2)
    assert sorted(labels) == sorted(expected.tolist())
    parts = [_replica_indices(train, r) for r in (0, 1)]
    assert not set(parts[0]) & set(parts[1]) and len(parts[0]) == len(parts[1])
