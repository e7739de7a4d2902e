"""Run I/O: atomic writes leave either the old file or the new one, never a part."""

import json

import numpy as np
import pytest

from niso_geom import runio


def test_write_json_converts_numpy_and_ends_with_a_newline(tmp_path):
    p = runio.write_json(tmp_path / "sub" / "r.json", {"a": np.arange(3), "b": np.float32(0.5), "p": tmp_path})
    text = p.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "p": str(tmp_path)}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "r.json"
    runio.write_json(p, {"old": 1})
    with pytest.raises(TypeError):
        runio.write_json(p, {"bad": object()})
    assert json.loads(p.read_text()) == {"old": 1}
    with pytest.raises(RuntimeError), runio.atomic_write(p) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert json.loads(p.read_text()) == {"old": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["r.json"]


def test_jsonl_round_trip_skips_a_torn_line_and_truncates(tmp_path):
    p = tmp_path / "metrics.jsonl"
    for step in range(4):
        runio.append_jsonl(p, {"step": step, "loss": 1.0 / (step + 1)})
    runio.append_jsonl(p, {"step": 4, "loss": float("nan")})
    with open(p, "a") as f:
        f.write('{"step": 5, "lo')  # a killed writer
    recs = runio.read_jsonl(p)
    assert [r["step"] for r in recs] == [0, 1, 2, 3, 4]
    assert recs[-1]["loss"] == "nan"
    runio.truncate_jsonl(p, lambda r: r["step"] < 2)
    assert [r["step"] for r in runio.read_jsonl(p)] == [0, 1]
    runio.truncate_jsonl(tmp_path / "missing.jsonl", lambda r: True)
    assert not (tmp_path / "missing.jsonl").exists()


def test_atomic_write_refuses_append_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"), runio.atomic_write(tmp_path / "x", "a"):
        pass


def test_same_file_sees_symlinks_relative_spellings_and_hard_links(tmp_path, monkeypatch):
    a = tmp_path / "a.ply"
    a.write_text("x")
    (tmp_path / "link.ply").symlink_to(a)
    import os

    os.link(a, tmp_path / "hard.ply")
    monkeypatch.chdir(tmp_path)
    assert runio.same_file(a, "link.ply") and runio.same_file("./sub/../a.ply", a)
    assert runio.same_file(a, tmp_path / "hard.ply")
    assert not runio.same_file(a, tmp_path / "other.ply")
