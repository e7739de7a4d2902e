"""Bad command lines: each one exits with code 2 and one line ``niso: error: …`` naming the flag
or file and the value, without a traceback (``--debug`` shows it). Table-driven."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from niso_geom.cli import main
from niso_geom.geometry.generators import icosphere
from niso_geom.geometry.mesh_io import write_mesh


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse and the experiment commands exit; main() returns otherwise
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    V, F = icosphere(1)
    write_mesh(tmp_path / "in.ply", V, F)
    (tmp_path / "link.ply").symlink_to(tmp_path / "in.ply")
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "bad.off").write_text("OFF\n4 3 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n")
    (tmp_path / "ico.stl").write_bytes(b"solid x\nendsolid x\n")
    return tmp_path


CASES = [
    # (arguments, words the one error line must contain)
    (["domain", "info", "torus", "--size", "0x0"], ["--size 0x0", "≥ 3"]),
    (["domain", "info", "torus", "--size", "2x2"], ["--size 2x2"]),
    (["domain", "info", "torus", "--size", "big"], ["--size", "'big'"]),
    (["domain", "info", "torus", "--res", "48"], ["--res 48", "torus"]),
    (["domain", "info", "sphere", "--res", "-3"], ["--res -3"]),
    (["domain", "info", "sphere", "--res", "0"], ["--res 0"]),
    (["domain", "info", "sphere", "--grid", "healpix", "--res", "6"], ["--res 6", "power of 2"]),
    (["domain", "info", "sphere", "--size", "8x8"], ["--size 8x8"]),
    (["domain", "info", "icosphere", "--res", "-1"], ["--res -1"]),
    (["domain", "info", "icosphere", "--res", "30"], ["--res 30", "GiB"]),
    (["domain", "info", "torus", "--size", "100000000x100000000"], ["--size 100000000x100000000", "GiB"]),
    (["domain", "spectrum", "torus", "-k", "0"], ["-k 0"]),
    (["domain", "spectrum", "torus", "-k", "-4"], ["-k -4"]),
    (["domain", "spectrum", "torus", "-k", "x"], ["-k", "'x'"]),
    (["domain", "spectrum", "torus", "--out", "afile"], ["--out afile", "not a folder"]),
    (["domain", "info", "/nonexistent/m.off"], ["/nonexistent/m.off"]),
    (["domain", "info", "nosuchmesh"], ["nosuchmesh"]),
    (["domain", "info", "bad.off"], ["bad.off", "3 faces"]),
    (["domain", "info", "ico.stl"], ["ico.stl"]),
    (["domain", "info", "."], ["folder"]),
    (["cache", "clear", "--namespace", "../"], ["--namespace '../'"]),
    (["cache", "clear", "--namespace", "/tmp"], ["--namespace '/tmp'"]),
    (["cache", "clear", "--namespace", "a/b"], ["--namespace 'a/b'"]),
    (["mesh", "sphere-map", "in.ply", "--out", "in.ply"], ["--out in.ply", "input"]),
    (["mesh", "sphere-map", "in.ply", "--out", "link.ply"], ["--out link.ply", "input"]),
    (["mesh", "sphere-map", "in.ply", "--out", "./sub/../in.ply"], ["sub/../in.ply", "input"]),
    (["mesh", "sphere-map", "in.ply", "--out", "afile/x.ply"], ["--out afile/x.ply", "not a folder"]),
    (["mesh", "sphere-map", "in.ply", "--out", "out.obj"], ["--out out.obj", "PLY"]),
    (["mesh", "sphere-map", "bad.off", "--out", "x.ply"], ["bad.off"]),
    (["mesh", "sphere-map", "nosuch.off", "--out", "x.ply"], ["nosuch.off"]),
    (["data", "build", "cshrec11", "--res", "x"], ["--res", "'x'"]),
    (["data", "build", "cshrec11", "--res", "0"], ["--res 0"]),
    (["data", "build", "cshrec11", "--jobs", "0"], ["--jobs 0"]),
    (["data", "build", "cshrec11", "--transforms", "-1"], ["--transforms -1"]),
    (["data", "build", "homnist", "--subset", "0"], ["--subset 0"]),
    (["data", "build", "homnist", "--scale", "nan"], ["--scale nan"]),
    (["data", "show", "cshrec11", "--channel", "99", "--out", "x.png"], ["--channel 99"]),
    (["data", "show", "cshrec11", "--out", "afile/x.png"], ["--out afile/x.png"]),
    (["spectra", "--preset", "tiny", "--out", "r", "--set", "lr=nan"], ["lr='nan'", "finite"]),
    (["spectra", "--preset", "tiny", "--out", "r", "--set", "checkpoint_every=0"], ["checkpoint_every=0"]),
    (["spectra", "--preset", "tiny", "--out", "r", "--set", "steps=many"], ["steps", "'many'"]),
    (["spectra", "--preset", "tiny", "--out", "r", "--set", "novalue"], ["--set", "'novalue'"]),
    (["homnist", "run", "--preset", "tiny", "--out", "r", "--set", "lr=inf"], ["lr='inf'"]),
    (["homnist", "run", "--preset", "tiny", "--out", "afile"], ["--out afile", "not a folder"]),
    (["pose", "run", "--preset", "tiny", "--out", "afile/r"], ["--out afile/r", "not a folder"]),
    (["compare", "/nonexistent"], ["/nonexistent"]),
    (["nosuchcommand"], ["nosuchcommand"]),
    (["domain", "info"], ["domain"]),
    (["tour", "-k", "0"], ["-k 0"]),
]


@pytest.mark.parametrize("argv,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_invocation_is_one_named_error_line(files, capsys, argv, words):
    before = (files / "in.ply").read_bytes()
    rc, _, err = run(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [ln for ln in lines if ln.startswith("niso: error: ")]
    assert len(errors) == 1, lines
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert (files / "in.ply").read_bytes() == before  # nothing lost
    assert not (files / "r").exists() or not any((files / "r").iterdir())


def test_debug_shows_the_traceback_and_keeps_the_exit_code(files, capsys):
    rc, _, err = run(["--debug", "domain", "info", "torus", "--size", "0x0"], capsys)
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("niso: error: --size 0x0")
    rc, _, err = run(["domain", "info", "torus", "--size", "2x2", "--debug"], capsys)  # anywhere on the line
    assert rc == 2 and "Traceback" in err


def test_sphere_map_into_an_unusable_folder_fails_before_the_map_is_computed(files, capsys, monkeypatch):
    from niso_geom.geometry import conformal

    def never(*a, **k):
        raise AssertionError("the map was computed")

    monkeypatch.setattr(conformal, "spherical_conformal_map", never)
    rc, _, err = run(["mesh", "sphere-map", "in.ply", "--out", "afile/deeper/x.ply"], capsys)
    assert rc == 2 and "afile" in err


@settings(max_examples=int(os.environ.get("NISO_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(domain=st.sampled_from(["torus", "sphere", "icosphere"]), h=st.integers(-3, 24), w=st.integers(-3, 24),
       res=st.one_of(st.none(), st.integers(-4, 9)), k=st.integers(-2, 40),
       grid=st.sampled_from(["dh", "gl", "healpix", "equiangular", "centred"]))
def test_random_domain_arguments_run_or_fail_with_one_named_line(capsys, domain, h, w, res, k, grid):
    argv = ["domain", "spectrum", domain, "-k", str(k), "--no-cache"]
    if domain == "torus":
        argv += ["--size", f"{h}x{w}"]
    if domain == "sphere":
        argv += ["--grid", grid]
    if res is not None:
        argv += ["--res", str(res if domain != "icosphere" else min(res, 3))]
    rc, out, err = run(argv, capsys)
    assert "Traceback" not in err
    if rc == 0:
        assert "eigenpairs" in out
    else:
        assert rc == 2
        lines = [ln for ln in err.splitlines() if ln.startswith("niso: error: ")]
        assert len(lines) == 1 and any(flag in lines[0] for flag in ("--size", "--res", "-k")), err
