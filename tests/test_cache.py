import numpy as np
import pytest

from niso_geom.cache import DiskCache, content_key


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
