"""End-to-end runs of the ``niso`` command line (in-process)."""

import json

import pytest

from niso_geom.cli import main


def test_domain_info_mesh_reports_genus(capsys):
    assert main(["domain", "info", "3holes"]) == 0
    out = capsys.readouterr().out
    assert "genus" in out and " 3" in out


def test_domain_spectrum_torus_writes_report_and_png(tmp_path, capsys):
    assert main(["domain", "spectrum", "torus", "--size", "8x8", "-k", "10", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rel. error" in out
    rep = json.loads((tmp_path / "spectrum.json").read_text())
    assert max(abs(a - b) for a, b in zip(rep["evals"], rep["reference"])) < 1e-10
    assert (tmp_path / "eigenfunctions.png").stat().st_size > 1000


@pytest.mark.parametrize("args", [["sphere", "--grid", "healpix", "--res", "4"], ["icosphere", "--res", "2"]])
def test_domain_spectrum_sphere_and_icosphere(args, tmp_path, capsys):
    assert main(["domain", "spectrum", *args, "-k", "9", "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "spectrum.json").read_text())
    assert rep["reference"] is not None and abs(rep["evals"][1] - 2) / 2 < 0.1


def test_cache_info_and_clear(tmp_path, capsys):
    assert main(["domain", "spectrum", "hand", "-k", "8"]) == 0  # fills the (test-isolated) cache
    assert main(["cache", "info"]) == 0
    assert "eigenbasis" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 file" in capsys.readouterr().out


def test_bad_mesh_file_is_a_clean_error(tmp_path, capsys):
    p = tmp_path / "broken.off"
    p.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\nnan 1 0\n3 0 1 2\n")
    assert main(["domain", "info", str(p)]) == 2
    err = capsys.readouterr().err
    assert "broken.off" in err and "NaN" in err


def test_tour(tmp_path, capsys):
    assert main(["tour", "--out", str(tmp_path), "-k", "9"]) == 0
    rep = json.loads((tmp_path / "tour.json").read_text())
    assert rep["torus_16x16_9-point"]["max_rel_error"] < 1e-10
    assert rep["icosphere_level_4"]["max_rel_error"] < 0.03
    assert len(list(tmp_path.glob("*.png"))) == 6


def test_data_build_homnist_subset(tmp_path, capsys):
    assert main(["data", "build", "homnist", "--subset", "3", "--cache-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "96" in out and "metropolis" in out
    assert list(tmp_path.rglob("*.npz"))
