import hashlib

import pytest

from niso_geom.errors import DataError
from niso_geom.shared_data import data_file, data_root, mesh_path


def test_shared_root_and_checksums(shared_root):
    assert (shared_root / "SHA256SUMS").is_file()
    assert mesh_path("spot").name == "spot.obj"
    assert data_file("meshes/hand.off").is_file()


def test_missing_and_corrupt_files_are_named(tmp_path):
    (tmp_path / "meshes").mkdir()
    good, bad = b"OFF\n0 0 0\n", b"tampered"
    (tmp_path / "meshes" / "a.off").write_bytes(bad)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(good).hexdigest()}  meshes/a.off\n")
    with pytest.raises(DataError, match="checksum mismatch for .*a.off"):
        data_file("meshes/a.off", tmp_path)
    with pytest.raises(DataError, match="b.off not found"):
        data_file("meshes/b.off", tmp_path)
    (tmp_path / "meshes" / "a.off").write_bytes(good)
    assert data_file("meshes/a.off", tmp_path).is_file()
    with pytest.raises(DataError, match="looked in --data-root"):
        data_root(tmp_path / "nowhere")


def test_env_var_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NISO_GEOM_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()


@pytest.mark.parametrize("line", ["justonetoken", "xyz  meshes/a.off", "0" * 63 + "  meshes/a.off", "0" * 64 + "   "])
def test_a_malformed_sha256sums_line_is_named(tmp_path, line):
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "a.off").write_bytes(b"OFF\n")
    (tmp_path / "SHA256SUMS").write_text(f"# a comment\n{hashlib.sha256(b'OFF').hexdigest()}  meshes/b.off\n{line}\n")
    with pytest.raises(DataError, match=r"SHA256SUMS: line 3 is not 'SHA256  FILE'"):
        data_file("meshes/a.off", tmp_path)
