"""``niso cshrec11 run --preset tiny`` end to end on real data: it builds its 3-class tiny dataset
from the shared shrec_16 data (kept in pytest's cache folder between runs, about 7 s the first
time), runs every method, writes the run folder, and NIso beats chance."""

from __future__ import annotations

import json

import pytest
import torch

from niso_geom.cli import main
from niso_geom.experiments.cshrec11 import METHODS


def test_tiny_preset_via_the_cli(tmp_path, request, capsys):
    # keep the tiny build between runs in pytest's cache when the cache plugin is on
    pytest_cache = getattr(request.config, "cache", None)
    cache = pytest_cache.mkdir("cshrec11-tiny") if pytest_cache is not None else tmp_path / "cache"
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        assert main(["cshrec11", "run", "--preset", "tiny", "--seeds", "1", "--out", str(out), "--cache-dir",
                     str(cache), "--no-progress", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "90.26 ± 1.27" in printed and "Möbius conv." in printed
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"num_classes", "methods", "by_k"} and res["num_classes"] == 3
    assert set(res["by_k"]["methods"]) == set(METHODS)  # the real dataset stores every view's transform
    assert list(res["methods"]) == list(METHODS)
    for entry in res["methods"].values():
        assert set(entry) == {"accuracy_mean", "accuracy_se", "seeds", "wall_seconds"}
        assert entry["seeds"] == [0] and entry["accuracy_se"] is None and 0.0 <= entry["accuracy_mean"] <= 1.0
    assert res["methods"]["niso"]["accuracy_mean"] > 0.4  # chance is 1/3
    rec = json.loads((out / "niso" / "seed0" / "result.json").read_text())
    assert rec["num_test_predictions"] == rec["num_test_meshes"] * 5  # every view of every test mesh
    assert rec["num_test_meshes"] == 6 and rec["num_train_meshes"] == 6
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["preset"] == "tiny" and cfg["config"]["classes"] == "bird1,hand,laptop"
    for f in ("results.md", "confusion.png", "mass_map.png", "accuracy_by_k.png", "metrics.jsonl"):
        assert (out / f).stat().st_size > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "cuda"], "niso: error: device 'cuda' requested but no CUDA GPU is available"),
    (["--set", "head_views=some"], "niso: error: head_views must be 'all' or 'original', got 'some'"),
    (["--set", "steps=many"], "niso: error: steps='many'"),
    (["--seeds", "0"], "niso: error: --seeds must be >= 1, got 0"),
])
def test_bad_values_are_one_line_errors_before_any_work(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["cshrec11", "run", "--preset", "tiny", "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_methods_come_from_the_registry(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["cshrec11", "run", "--out", "x", "--methods", "nft"])
    assert exit_.value.code == 2
    assert "invalid choice: 'nft'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cshrec11", "run", "--help"])
    text = capsys.readouterr().out
    for name in METHODS.choices():
        assert name in text
