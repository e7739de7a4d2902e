"""A plain install (no extras, no source checkout) works or says in one line what it needs:
OBJ meshes load without Pillow, commands that draw name the ``plot`` extra before any work, the
data root is never looked for inside site-packages, and ``niso data info|verify`` explain the data."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import trimesh

from niso_geom import plotting, shared_data
from niso_geom.cli import main
from niso_geom.errors import DataError
from niso_geom.geometry.mesh_io import read_mesh


def test_obj_with_texture_coordinates_loads_without_pillow(shared_root, monkeypatch):
    spot = shared_root / "meshes" / "spot.obj"
    reference = trimesh.load(spot, process=False, force="mesh", maintain_order=True)  # Pillow is here
    monkeypatch.setitem(sys.modules, "PIL", None)  # as on a plain install: `import PIL` fails
    V, F = read_mesh(spot)
    assert np.array_equal(V, reference.vertices) and np.array_equal(F, reference.faces)
    assert V.shape == (2930, 3)


def test_obj_with_several_objects_is_concatenated_in_file_order(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    path = tmp_path / "two.obj"
    path.write_text("o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1 2 3\n"
                    "o b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 4 5 6\n")
    V, F = read_mesh(path)
    assert V.shape == (6, 3) and sorted(F.ravel().tolist()) == list(range(6))
    assert np.allclose(V[F[1]][:, 2], 1.0)


def test_a_drawing_command_names_the_plot_extra_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plotting, "have_matplotlib", lambda: False)
    out = tmp_path / "tour"
    assert main(["tour", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "niso tour" in err and "niso_geom[plot]" in err
    assert not out.exists()  # nothing computed, nothing written
    with pytest.raises(ImportError, match=r"niso_geom\[plot\]"):  # experiments catch ImportError
        plotting.plot_spectrum(np.arange(3.0))


def test_installed_package_does_not_look_for_data_inside_site_packages(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    (site / "niso_geom").mkdir(parents=True)
    monkeypatch.setattr(shared_data, "_CHECKOUT", site)
    monkeypatch.delenv(shared_data.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert shared_data.search_locations() == []
    with pytest.raises(DataError) as info:
        shared_data.data_root()
    msg = str(info.value)
    assert "--data-root" in msg and "NISO_GEOM_DATA" in msg and "source checkout" in msg
    assert "site-packages" not in msg


def test_source_checkout_still_falls_back_to_shared_data(monkeypatch, shared_root):
    monkeypatch.delenv(shared_data.ENV_VAR, raising=False)
    assert shared_data.is_source_checkout(shared_data._CHECKOUT)
    how, path, _found = shared_data.search_locations()[0]
    assert "checkout" in how and path == shared_data._CHECKOUT.parent / "shared" / "data"


def _tiny_root(tmp_path):
    good = b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "tri.off").write_bytes(good)
    (tmp_path / "meshes" / "bad.off").write_bytes(b"tampered")
    sums = [(hashlib.sha256(good).hexdigest(), "meshes/tri.off"), (hashlib.sha256(good).hexdigest(), "meshes/bad.off"),
            ("0" * 64, "mnist/mnist.pkl.gz")]
    (tmp_path / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for d, n in sums))
    return tmp_path


def test_data_verify_names_every_bad_file(tmp_path, capsys):
    root = _tiny_root(tmp_path)
    assert shared_data.verify_all(root) == [("meshes/tri.off", "ok"), ("meshes/bad.off", "checksum mismatch"),
                                            ("mnist/mnist.pkl.gz", "missing")]
    assert main(["data", "verify", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "2 of 3 files" in out and "meshes/bad.off (checksum mismatch)" in out


def test_data_verify_passes_on_the_shared_data(shared_root, capsys):
    assert main(["data", "verify", "--data-root", str(shared_root)]) == 0
    assert "match SHA256SUMS" in capsys.readouterr().out


def test_data_info_shows_search_layout_and_findings(tmp_path, capsys):
    root = _tiny_root(tmp_path)
    assert main(["data", "info", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert str(root) in out and "shrec_16.tar.gz" in out and "NISO_GEOM_DATA" in out and "tri.off" in out
    assert main(["data", "info", "--data-root", str(tmp_path / "nowhere")]) == 1
    assert "found: nothing" in capsys.readouterr().out
