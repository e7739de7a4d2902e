"""Conformal SHREC'11 builder and loader (niso_geom.data.cshrec11), on a tiny two-class build."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections import Counter

import numpy as np
import pytest

from niso_geom.cli import main
from niso_geom.data import cshrec11 as cs
from niso_geom.errors import DataError, MeshError
from niso_geom.geometry.generators import torus_mesh
from niso_geom.geometry.mesh_io import read_mesh
from niso_geom.geometry.pullback import pull_back
from niso_geom.shared_data import data_file

# laptop and bird1 map fastest (the flow alone, or a short finish); 3 meshes each
TINY = {"res": (16, 32), "transforms": 2, "seed": 3, "classes": "laptop,bird1", "_max_per_class": 3,
        "progress": False}


def _checksums(folder):
    m = cs.read_manifest(folder)
    return {n: (e["files"]["signals"]["sha256"], e["files"]["extras"]["sha256"]) for n, e in m["meshes"].items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cshrec11-a")
    folder = cs.build_cshrec11(root, **TINY)
    return root, folder


def test_source_listing_matches_the_recipe():
    entries, excluded = cs.list_source(data_file("shrec_16.tar.gz"))
    per_class = Counter(e.cls for e in entries)
    assert len(per_class) == 25 and not set(per_class) & set(cs.SKIP_CLASSES)
    assert len(entries) == 488 and len(excluded) == 12
    assert per_class["alien"] == 13 and per_class["dog1"] == 18 and per_class["laptop"] == 20
    assert {e.relpath for e in excluded} == set(cs.GENUS1)


def test_build_is_deterministic_across_cache_dirs_and_jobs(built, tmp_path):
    root, folder = built
    again = cs.build_cshrec11(tmp_path, **TINY, jobs=2)  # a process pool this time
    assert again.name == folder.name and again != folder
    assert cs.read_manifest(again)["last_build"]["jobs"] == 2
    assert _checksums(again) == _checksums(folder)
    for name in _checksums(folder):  # the files themselves are byte-identical
        for ext in (".npy", ".npz"):
            assert (again / "meshes" / f"{name}{ext}").read_bytes() == (folder / "meshes" / f"{name}{ext}").read_bytes()
    m = cs.read_manifest(folder)
    assert m["counts"]["per_class"] == {"bird1": 3, "laptop": 3}
    assert len(m["excluded_meshes"]) == 12 and all(e["genus"] == 1 for e in m["excluded_meshes"])
    assert all(e["map"]["n_flipped"] == 0 for e in m["meshes"].values())


def test_killed_build_resumes_recomputing_only_damaged_meshes(built, tmp_path):
    _, folder = built
    copy = tmp_path / "cshrec11" / folder.name
    shutil.copytree(folder, copy)
    names = sorted(_checksums(folder))
    gone, corrupt, unrecorded = names[0], names[1], names[2]
    (copy / "meshes" / f"{gone}.npy").unlink()
    path = copy / "meshes" / f"{corrupt}.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))
    (copy / "meshes" / f"{unrecorded}.json").unlink()  # killed after the data files, before the record
    assert cs.build_cshrec11(tmp_path, **TINY) == copy
    last = cs.read_manifest(copy)["last_build"]
    assert sorted(last["computed"]) == sorted([gone, corrupt, unrecorded])
    assert sorted(last["reused"]) == sorted(set(names) - {gone, corrupt, unrecorded})
    assert _checksums(copy) == _checksums(folder)


def test_loader_api_shapes_and_normalization(built):
    root, _ = built
    ds = cs.load_cshrec11(root, split_seed=0, build=False, **{k: v for k, v in TINY.items() if k != "progress"})
    assert ds.class_names == ["bird1", "laptop"]
    assert ds.labels.shape == (6,) and ds.labels.dtype == np.int64
    assert ds.res == (16, 32) and ds.num_views == 3 and ds.grid.shape == (16, 32)
    assert len(ds.mesh_names) == 6 and all(n.startswith("T") for n in ds.mesh_names)
    x = ds.views(np.arange(6))
    assert x.shape == (6, 3, 16, 16, 32) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and np.isfinite(x).all()
    assert ds.views(2).shape == (1, 3, 16, 16, 32)
    assert ds.views([0, 1], 1).shape == (2, 1, 16, 16, 32)
    one = ds.views([0, 1], np.array([2, 0]))  # one view per mesh
    np.testing.assert_array_equal(one[:, 0], np.stack([x[0, 2], x[1, 0]]))
    assert ds.views([4], [[0, 2]]).shape == (1, 2, 16, 16, 32)
    with pytest.raises(IndexError):
        ds.views([0], 3)
    # zbound by hand
    raw = ds.raw_views([0], 0).astype(np.float64)[0, 0]
    lo = ds.mean - 2.5 * ds.std
    expect = 2 * np.clip((raw - lo[:, None, None]) / (5 * ds.std[:, None, None]), 0, 1) - 1
    np.testing.assert_allclose(x[0, 0], expect, atol=1e-5)


def test_split_disjoint_per_class_counts_and_seeded():
    labels = np.repeat(np.arange(3), [20, 13, 3])
    names = ["a", "b", "c"]
    tr, te = cs.split_indices(labels, names, seed=0)
    assert not set(tr) & set(te)
    assert [int((labels[tr] == c).sum()) for c in range(3)] == [10, 9, 2]
    assert [int((labels[te] == c).sum()) for c in range(3)] == [4, 4, 1]
    tr2, te2 = cs.split_indices(labels, names, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    tr3, _ = cs.split_indices(labels, names, seed=1)
    assert not np.array_equal(tr, tr3)
    # a class's split does not depend on the other classes present
    tr_a, te_a = cs.split_indices(np.zeros(20, np.int64), ["a"], seed=0)
    np.testing.assert_array_equal(tr_a, tr[labels[tr] == 0])
    np.testing.assert_array_equal(te_a, te[labels[te] == 0])


def test_stats_come_from_train_meshes_only(built):
    root, folder = built
    kw = {k: v for k, v in TINY.items() if k != "progress"}
    ds = cs.load_cshrec11(root, build=False, **kw)
    w = ds.grid.mass / ds.grid.mass.sum()
    flat = np.concatenate([ds.raw_views([i]).astype(np.float64)[0].reshape(3, 16, -1) for i in ds.train_index])
    np.testing.assert_allclose(ds.mean, (flat @ w).mean(0), rtol=1e-10)
    np.testing.assert_allclose(ds.std, np.sqrt(((flat**2) @ w).mean(0) - ds.mean**2), rtol=1e-8)
    # doctor a test mesh's statistics (and the train-only stats must not move), then a train mesh's
    copy_root = root.parent / (root.name + "-stats")
    shutil.copytree(root, copy_root)
    mdir = copy_root / "cshrec11" / folder.name / "meshes"

    def scale_stats(name):  # as if the mesh's signals were 10x larger
        extras = dict(np.load(mdir / f"{name}.npz"))
        extras["view_mean"] = extras["view_mean"] * 10
        extras["view_mean2"] = extras["view_mean2"] * 100
        (mdir / f"{name}.npz").write_bytes(cs._npz_bytes(extras))

    scale_stats(ds.mesh_names[ds.test_index[0]])
    same = cs.load_cshrec11(copy_root, build=False, **kw)
    np.testing.assert_array_equal(same.mean, ds.mean)
    np.testing.assert_array_equal(same.std, ds.std)
    scale_stats(ds.mesh_names[ds.train_index[0]])
    assert not np.allclose(cs.load_cshrec11(copy_root, build=False, **kw).mean, ds.mean)


def test_views_are_pullbacks_of_the_hks(built):
    root, _ = built
    ds = cs.load_cshrec11(root, build=False, **{k: v for k, v in TINY.items() if k != "progress"})
    i = 1
    rel = json.loads((ds.folder / "meshes" / f"{ds.mesh_names[i]}.json").read_text())["relpath"]
    with tarfile.open(data_file("shrec_16.tar.gz")) as tar:
        obj = tar.extractfile(f"shrec_16/{rel}.obj").read()
    import trimesh

    mesh = trimesh.load(io.BytesIO(obj), file_type="obj", process=False, maintain_order=True)
    F = np.asarray(mesh.faces)
    ex = ds.extras(i)
    raw = ds.raw_views([i]).astype(np.float64)[0]
    for v, A in ((0, None), (2, ex["mobius"][1])):
        direct = pull_back(ex["sphere"], F, ex["hks"], ds.grid.points, mobius=A) - 1.0  # (Q, 16)
        np.testing.assert_allclose(ds.grid.to_flat(raw[v]), direct, rtol=2e-3, atol=1e-4)
    assert ex["mobius"].shape == (2, 2, 2) and ex["hks"].shape[1] == 16


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="nope.tar.gz"):
        cs.build_cshrec11(tmp_path, source=tmp_path / "nope.tar.gz", **TINY)
    # a genus-1 mesh where a genus-0 one is expected
    V, F = torus_mesh(8, 6)
    text = "".join(f"v {x} {y} {z}\n" for x, y, z in V) + "".join(f"f {a+1} {b+1} {c+1}\n" for a, b, c in F)
    src = tmp_path / "bad.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        info = tarfile.TarInfo("shrec_16/laptop/train/T9000.obj")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text.encode()))
    with pytest.raises(MeshError, match="T9000.*genus 1"):
        cs.build_cshrec11(tmp_path, source=src, **{**TINY, "classes": "laptop"})
    with pytest.raises(DataError, match="not built"):
        cs.load_cshrec11(tmp_path / "empty", build=False, **{k: v for k, v in TINY.items() if k != "progress"})


def test_cli_show_cshrec11_writes_png(built, tmp_path, capsys):
    root, _ = built
    out = tmp_path / "views.png"
    assert main(["data", "show", "cshrec11", "--res", "16", "--transforms", "2", "--seed", "3",
                 "--cache-dir", str(root), "--count", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 5000
    assert "2 meshes" in capsys.readouterr().out


def test_cli_mesh_sphere_map(tmp_path, capsys):
    out = tmp_path / "ellipsoid_sphere.ply"
    assert main(["mesh", "sphere-map", "ellipsoid", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "flipped faces" in text and "angle error" in text and "QC ratio" in text
    V, F = read_mesh(out)
    V0, F0 = read_mesh(data_file("meshes/ellipsoid.off"))
    np.testing.assert_array_equal(F, F0)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, atol=1e-9)
    assert main(["mesh", "sphere-map", "3holes", "--out", str(tmp_path / "x.ply")]) == 2  # genus 3: clean error
    assert "genus 3" in capsys.readouterr().err
