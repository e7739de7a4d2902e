import logging
import os
import time

import numpy as np
import pytest

from niso_geom.cache import STALE_TMP_SECONDS, DiskCache, content_key
from niso_geom.errors import CacheError
from niso_geom.runio import TMP_PREFIX


def test_keys_hash_dtype_shape_and_params():
    a = np.arange(6.0)
    k = content_key("x", {"k": 1}, {"a": a})
    assert k == content_key("x", {"k": 1}, {"a": a.copy()})
    assert k != content_key("x", {"k": 2}, {"a": a})
    assert k != content_key("x", {"k": 1}, {"a": a.reshape(2, 3)})
    assert k != content_key("x", {"k": 1}, {"a": a.astype(np.float32)})
    assert k != content_key("y", {"k": 1}, {"a": a})
    with pytest.raises(TypeError):
        content_key("x", {"k": object()})


def test_roundtrip_corruption_and_clear(tmp_path):
    c = DiskCache(tmp_path)
    key = content_key("t")
    c.put(key, {"x": np.arange(10), "y": np.eye(2)})
    got = c.get(key)
    np.testing.assert_array_equal(got["x"], np.arange(10))
    # flip payload bytes inside the archive: the checksum catches it
    p = c.path(key)
    raw = bytearray(p.read_bytes())
    i = raw.find(np.arange(10).tobytes()[:16])
    raw[i + 8] ^= 0xFF
    p.write_bytes(bytes(raw))
    assert c.get(key) is None and not p.exists()
    c.put(key, {"x": np.arange(3)})
    assert c.info()["namespaces"]["arrays"]["entries"] == 1
    assert c.clear() == 1 and c.get(key) is None
    assert not list(tmp_path.rglob(".tmp-*"))


def test_env_var_and_package_guard(tmp_path, monkeypatch):
    import niso_geom

    monkeypatch.setenv("NISO_GEOM_CACHE_DIR", str(tmp_path / "c"))
    assert DiskCache().root == tmp_path / "c"
    from pathlib import Path

    with pytest.raises(ValueError, match="inside the package"):
        DiskCache(Path(niso_geom.__file__).parent / "cache")


# ---------------------------------------------------------------------------- owning only its entries


@pytest.mark.parametrize("namespace", ["..", "../", "../x", "/tmp", "a/b", "a\\b", ".hidden", "", "x/.."])
def test_clear_refuses_namespaces_that_reach_outside_the_root(tmp_path, namespace):
    root = tmp_path / "cache"
    c = DiskCache(root)
    c.put(content_key("t"), {"x": np.arange(3)})
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(CacheError, match="not a plain name"):
        c.clear(namespace)
    assert (tmp_path / "precious.txt").read_text() == "keep me" and c.get(content_key("t")) is not None


def test_clear_removes_only_recognised_entries(tmp_path):
    c = DiskCache(tmp_path)
    k1, k2 = content_key("a"), content_key("b")
    c.put(k1, {"x": np.arange(3)})
    c.put(k2, {"y": np.ones(2)}, namespace="eigenbasis")
    c.path(k1).with_suffix(".manifest.json").write_text("{}")  # a homNIST-style sidecar
    ds = tmp_path / "cshrec11" / "96x192_t30_s0_v3_0123456789ab"
    (ds / "meshes").mkdir(parents=True)
    for f in (ds / "manifest.json", ds / "meshes" / "alien-1.npy", ds / "meshes" / "alien-1.json"):
        f.write_bytes(b"data")
    mine = [tmp_path / "notes.txt", tmp_path / "eigenbasis" / "mine.npz", tmp_path / "arrays" / "zz" / "x.npz",
            ds / "meshes" / "README", tmp_path / "project" / "src" / "a.py"]
    for f in mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("user data")
    info = c.info()
    assert info["namespaces"]["arrays"]["entries"] == 1 and info["namespaces"]["eigenbasis"]["entries"] == 1
    assert info["namespaces"]["cshrec11"]["entries"] == 1
    assert sorted(info["foreign_files"]) == sorted(str(f) for f in mine)
    assert c.clear("eigenbasis") == 1 and c.get(k2, "eigenbasis") is None and c.get(k1) is not None
    assert c.clear() == 2 + 3
    assert all(f.read_text() == "user data" for f in mine) and tmp_path.is_dir()
    assert not (tmp_path / "arrays" / k1[:2]).exists() and not (ds / "manifest.json").exists()


def test_any_unreadable_entry_is_a_miss_and_is_removed(tmp_path):
    """Every single-byte corruption of an entry: the right arrays or a miss (entry removed), never an error."""
    c = DiskCache(tmp_path)
    key = content_key("t")
    c.put(key, {"x": np.arange(4, dtype=np.int16)})
    good = c.path(key).read_bytes()
    outcomes = {"hit": 0, "miss": 0}
    for i in range(0, len(good), 3):
        for flip in (0x01, 0xFF):
            raw = bytearray(good)
            raw[i] ^= flip
            c.path(key).write_bytes(bytes(raw))
            got = c.get(key)
            if got is None:
                outcomes["miss"] += 1
                assert not c.path(key).exists()
            else:
                outcomes["hit"] += 1
                np.testing.assert_array_equal(got["x"], np.arange(4))
    assert outcomes["miss"] > 100
    c.path(key).unlink(missing_ok=True)
    c.path(key).mkdir(parents=True)  # a folder where the entry should be: a miss too
    assert c.get(key) is None


def test_a_failed_write_is_a_warning_and_the_result_is_returned(tmp_path, monkeypatch, caplog):
    (tmp_path / "file").write_text("not a folder")
    c = DiskCache(tmp_path / "file")  # the cache path is a file
    with caplog.at_level(logging.WARNING, logger="niso_geom.cache"):
        out = c.put(content_key("t"), {"x": np.arange(3)})
    np.testing.assert_array_equal(out["x"], np.arange(3))
    assert "could not write cache entry" in caplog.text and c.get(content_key("t")) is None
    assert c.info()["namespaces"] == {} and c.clear() == 0

    import niso_geom.cache as cache_mod

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod, "atomic_write", disk_full)
    c = DiskCache(tmp_path / "c")
    assert c.get_or_compute(content_key("u"), lambda: {"y": np.ones(2)})["y"].tolist() == [1.0, 1.0]
    from niso_geom import TriMesh

    eb = TriMesh.icosphere(1).eigenbasis(4, cache=c)  # the finished solve is kept
    assert eb.evals.shape == (4,) and eb.info["method"] != "cache"


def test_stale_temp_files_are_cleaned_and_never_counted(tmp_path):
    c = DiskCache(tmp_path)
    key = content_key("t")
    c.put(key, {"x": np.arange(3)})
    folder = c.path(key).parent
    old, fresh = folder / f"{TMP_PREFIX}{key}.npz.abc.part", folder / f"{TMP_PREFIX}{key}.npz.def.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    then = time.time() - STALE_TMP_SECONDS - 60
    os.utime(old, (then, then))
    info = c.info()["namespaces"]["arrays"]
    assert info["entries"] == 1 and info["temp_files"] == 2 and info["stale_temp_files"] == 1
    assert info["bytes"] == c.path(key).stat().st_size
    c.put(key, {"x": np.arange(3)})
    assert not old.exists() and fresh.exists()  # a writer cleans its folder's stale leftovers
    old.write_bytes(b"half")
    os.utime(old, (then, then))
    assert c.clear() == 2 and fresh.exists() and not old.exists()  # a fresh one may be a live writer's
