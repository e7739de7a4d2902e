"""The conformal SHREC'11 experiment: presets and their checks, the method registry, view samplers,
diagnostics, and every method end to end on an in-memory stand-in of the dataset (the CLI on real
data is tested in test_cshrec11_cli.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from niso_geom.experiments import cshrec11
from niso_geom.experiments.cshrec11.severity import accuracy_by_bin, bin_labels, bin_of, pair_scales
from niso_geom.experiments.cshrec11.views import (
    LabelledViews,
    ViewPairs,
    ViewTable,
    confusion_matrix,
    map_views,
)
from niso_geom.experiments.registry import UnknownMethodError
from niso_geom.geometry.mobius import mobius_boost, mobius_max_scale
from niso_geom.train import DeviceUnavailableError

from .cshrec11_fake import make_fake


def test_presets_overrides_and_methods():
    cfg = cshrec11.preset("cpu", steps="123", enc_channels="8,16,32", head_readout="none", finetune_operator="false")
    assert cfg.steps == 123 and cfg.enc_channels == (8, 16, 32) and cfg.head_readout is None
    assert cfg.finetune_operator is False and cfg.preset == "cpu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown config keys"):
        cshrec11.preset("cpu", stepz=1)
    assert cshrec11.preset("cpu").digest() == cshrec11.PRESETS["cpu"].digest() != cfg.digest()
    paper = cshrec11.PRESETS["paper"]
    assert (paper.res, paper.enc_channels, paper.enc_depth, paper.k, paper.latent_dim) == \
        ((96, 192), (32, 64, 128, 256), (2, 2, 2, 2), 64, 64)
    assert (paper.alpha, paper.beta, paper.steps, paper.head_steps, paper.head_readout) == (0.5, 0.01, 50_000, 10_000, None)
    cpu = cshrec11.PRESETS["cpu"]
    assert cpu.res == (48, 96) and cpu.classes is None and cpu.transforms == 30
    assert cshrec11.build_niso(cpu).latent_shape == (12, 24)  # the paper's latent grid, N = 288 >= K = 64
    assert cshrec11.method_spec("niso_frozen") == {"kind": "niso_frozen", "pretrain_of": "niso"}
    assert cshrec11.method_spec("cnn_aug")["pretrain_of"] is None
    with pytest.raises(UnknownMethodError, match="unknown method 'nft'"):
        cshrec11.method_spec("nft")
    assert cshrec11.METHODS.defaults() == cshrec11.METHODS.choices() == \
        ("niso", "niso_frozen", "ae_aug", "cnn_aug", "sh_power", "e3nn_sh")
    assert {cshrec11.method_info(m).pretraining for m in cshrec11.METHODS} == {"niso", "ae_aug", None}


@pytest.mark.parametrize(("override", "message"), [
    ({"head_views": "some"}, "head_views must be 'all' or 'original', got 'some'"),
    ({"res": "16"}, "res must be (H, W)"),
    ({"transforms": "0"}, "transforms must be >= 1, got 0"),
    ({"p_original": "1.5"}, "p_original must be in [0, 1], got 1.5"),
    ({"lr": "0"}, "lr must be > 0, got 0.0"),
    ({"enc_depth": "1,1"}, "enc_channels (8, 16, 16) and enc_depth (1, 1)"),
    ({"steps": "many"}, "steps='many'"),
    ({"stepz": "1"}, "unknown config keys"),
])
def test_config_errors_name_the_field_and_value(override, message):
    with pytest.raises(cshrec11.ConfigError) as err:
        cshrec11.preset("tiny", **override)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)
    with pytest.raises(cshrec11.ConfigError, match="unknown preset 'huge'"):
        cshrec11.preset("huge")


def test_cuda_without_a_gpu_is_a_named_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="device 'cuda' requested"):
        cshrec11.run(cshrec11.PRESETS["tiny"], tmp_path / "run", device="cuda", dataset=make_fake())
    assert not (tmp_path / "run").exists()  # nothing written
    assert cshrec11.pick_device("cpu") == torch.device("cpu")


def test_view_pairs_follow_the_reference_sampler_and_resume():
    table = ViewTable(np.array([5, 7, 9]), torch.arange(3 * 31, dtype=torch.float32).reshape(3, 31, 1))
    src = ViewPairs(table, [5, 9], 4000, seed=1, p_original=0.2)
    obj, first, second = src.draw()
    assert set(obj.tolist()) == {5, 9}
    assert abs(np.mean(first == 0) - 0.2) < 0.03 and first.max() == 30
    assert abs(np.mean(second == 0) - 1 / 31) < 0.015
    small = ViewPairs(table, [7], 3, seed=2)
    x, tx = small()
    assert x.shape == (3, 1) and bool(((x // 31) == 1).all()) and bool(((tx // 31) == 1).all())  # same object
    state = json.loads(json.dumps(small.state_dict()))
    nxt = small()
    again = ViewPairs(table, [7], 3, seed=99)
    again.load_state_dict(state)
    for a, b in zip(nxt, again()):
        torch.testing.assert_close(a, b)
    lab = LabelledViews(table, [5, 7], np.arange(10) * 10, 6, seed=0)
    xs, ys = lab()
    assert set(ys.tolist()) <= {50, 70} and xs.shape == (6, 1)
    assert torch.equal((xs[:, 0] // 31).long(), torch.where(ys == 50, 0, 1))
    originals, _ = LabelledViews(table, [5, 7], np.arange(10), 16, seed=0, views=[0])()
    assert bool(((originals[:, 0] % 31) == 0).all())  # view 0 only
    with pytest.raises(ValueError, match="views must be"):
        LabelledViews(table, [5], np.arange(10), 2, views=[31])


def test_map_views_and_confusion():
    table = ViewTable(np.array([3, 1]), torch.randn(2, 5, 4))
    doubled = map_views(lambda x: 2 * x, table, [1, 3], batch=3)
    assert doubled.index.tolist() == [1, 3]
    torch.testing.assert_close(doubled.all_views([3]), 2 * table.all_views([3]))
    cm = confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([0, 1]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_diagnostics_on_a_pretrained_model():
    ds = make_fake()
    cfg = cshrec11.PRESETS["tiny"]
    data = cshrec11.SeedData(ds, ds.train_index, ds.test_index, ds.labels,
                             cshrec11.image_table(ds, np.concatenate([ds.train_index, ds.test_index])), 3)
    torch.manual_seed(0)
    model = cshrec11.build_niso(cfg)
    eq = cshrec11.equivariance_error(model, data.images, data.test, 10, seed=3, batch=4)
    assert eq["pairs"] == 10 and 0 <= eq["equiv_error"] <= eq["identity_error"] + 1e-6
    mm = cshrec11.mass_map(model, cfg)
    assert mm["mass"].shape == (4, 8) and mm["mass_sin_correlation"] is None  # untrained: constant mass
    spec = cshrec11.spectral_summary(model, cfg)
    assert 0 < spec["purity_mean"] <= 1 and sum(spec["multiplicity"]) <= cfg.k


def test_every_method_end_to_end_on_a_stand_in_dataset(tmp_path):
    ds = make_fake(transforms=4, boost=0.9)  # views from k = 1 to k ≈ 19: several severity bins
    cfg = cshrec11.preset("tiny", steps="30", head_steps="40")
    out = tmp_path / "run"
    methods = ["niso", "niso_frozen", "sh_power"]  # every method runs in test_cshrec11_cli.py
    res, _ = cshrec11.run(cfg, out, seeds=(0, 1), methods=methods, progress=False, dataset=ds)
    assert set(res) == {"num_classes", "methods", "by_k"} and res["num_classes"] == 3
    assert list(res["methods"]) == methods
    for entry in res["methods"].values():
        assert set(entry) == {"accuracy_mean", "accuracy_se", "seeds", "wall_seconds"}
        assert entry["seeds"] == [0, 1] and entry["accuracy_se"] is not None and entry["wall_seconds"] > 0
    rec = json.loads((out / "niso" / "seed1" / "result.json").read_text())
    assert rec["num_test_predictions"] == 6 * 5 and np.asarray(rec["confusion"]).sum() == 30
    assert math.isclose(rec["accuracy"], np.trace(rec["confusion"]) / 30)
    assert {"pretrained", "finetuned"} <= set(rec["diagnostics"])
    # results by view severity: per-bin accuracies that add up to the overall one
    k = mobius_max_scale(np.concatenate([np.eye(2)[None].repeat(6, 0)[:, None],
                                         ds.mobius[ds.with_split(1).test_index]], axis=1))
    counts = [int(np.sum(bin_of(k) == j)) for j in range(4)]
    assert [b["predictions"] for b in rec["by_k"].values()] == counts and counts[0] > 6 and sum(counts[1:]) > 0
    hits = sum(b["accuracy"] * b["predictions"] for b in rec["by_k"].values() if b["predictions"])
    assert math.isclose(hits / 30, rec["accuracy"])
    by_k = res["by_k"]
    assert by_k["bins"] == ["k ≤ 2", "2 < k ≤ 5", "5 < k ≤ 20", "k > 20"] and list(by_k["methods"]) == methods
    first = by_k["methods"]["niso"]["k ≤ 2"]
    assert 0 <= first["accuracy_mean"] <= 1 and first["accuracy_se"] is not None
    assert by_k["methods"]["niso"]["k > 20"]["accuracy_mean"] is None  # no view that severe
    pre = rec["diagnostics"]["pretrained"]
    eq = pre["equiv_error_by_k"]
    assert sum(e["pairs"] for e in eq.values()) == pre["pairs"]  # the same pairs, binned by the pair's k
    assert math.isclose(sum(e["mean"] * e["pairs"] for e in eq.values() if e["pairs"]) / pre["pairs"],
                        pre["equiv_error"], rel_tol=1e-9)
    assert set(by_k["equiv_error"]) == {"niso"}  # one pre-training, shared by niso and niso_frozen
    assert by_k["methods"]["niso"]["k ≤ 2"]["predictions"] == sum(  # test views of both seeds
        json.loads((out / "niso" / f"seed{s}" / "result.json").read_text())["by_k"]["k ≤ 2"]["predictions"]
        for s in (0, 1))
    assert "| pre-trained niso |" in (out / "results.md").read_text()
    assert (out / "niso" / "seed0" / "pretrain" / "metrics.jsonl").stat().st_size > 0
    assert not (out / "niso_frozen" / "seed0" / "pretrain").exists()  # shares niso's pre-training
    md = (out / "results.md").read_text()
    assert "90.26 ± 1.27" in md and "69.36" in md and "| NIso (fine-tuned) |" in md and "target" not in md
    assert "By view severity k" in md and "| 2 < k ≤ 5 |" in md and "Equivariance error of the pre-trained" in md
    for fig in ("confusion.png", "mass_map.png", "accuracy_by_k.png"):
        assert (out / fig).stat().st_size > 1000
    before = (out / "sh_power" / "seed0" / "result.json").read_text()
    res2, _ = cshrec11.run(cfg, out, seeds=(0, 1), methods=["sh_power"], progress=False,
                           dataset=ds)  # resumed: not retrained
    assert (out / "sh_power" / "seed0" / "result.json").read_text() == before
    assert res2["methods"]["sh_power"] == res["methods"]["sh_power"]


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = cshrec11.preset("tiny", steps="4", head_steps="4", equiv_pairs="4")
        _, recs = cshrec11.run(cfg, f"{out}/run", methods=["niso_frozen", "sh_power"], progress=False, device="cpu",
                               dataset=make_fake(transforms=4))
        torch.save([{"method": r["method"], "accuracy": r["accuracy"], "confusion": r["confusion"],
                     "head_loss": r["head_final"]["loss"]} for r in recs],
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_run_the_experiment_and_agree(tmp_path):
    """The DDP path: sharded training and feature passes, gathered predictions, rank 0 writes."""
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0] == ranks[1] and [r["method"] for r in ranks[0]] == ["niso_frozen", "sh_power"]
    out = tmp_path / "run"
    res = json.loads((out / "results.json").read_text())
    assert [res["methods"][m]["accuracy_mean"] for m in ("niso_frozen", "sh_power")] == [r["accuracy"] for r in ranks[0]]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 alone appends
    rec = json.loads((out / "niso_frozen" / "seed0" / "result.json").read_text())
    assert np.asarray(rec["confusion"]).sum() == rec["num_test_predictions"] == 6 * 5  # every view gathered
    assert json.loads((out / "config.json").read_text())["world_size"] == 2


def test_severity_bins_and_pair_scales():
    assert bin_labels() == ["k ≤ 2", "2 < k ≤ 5", "5 < k ≤ 20", "k > 20"]
    np.testing.assert_array_equal(bin_of([1.0, 2.0, 2.01, 5.0, 19.9, 20.0, 20.5, 1e6]), [0, 0, 1, 1, 2, 2, 3, 3])
    hits = np.array([[1, 0, 1], [1, 1, 0]], dtype=bool)
    k = np.array([[1.0, 3.0, 30.0], [1.0, 1.5, 4.0]])
    by = accuracy_by_bin(hits, k)
    assert by["k ≤ 2"] == {"accuracy": 1.0, "predictions": 3}
    assert by["2 < k ≤ 5"] == {"accuracy": 0.0, "predictions": 2}
    assert by["5 < k ≤ 20"] == {"accuracy": None, "predictions": 0}
    assert by["k > 20"] == {"accuracy": 1.0, "predictions": 1}
    with pytest.raises(ValueError, match="same shape"):
        accuracy_by_bin(hits, k[:, :2])
    # two boosts along one axis: the map between the views is their difference in rapidity
    mats = np.stack([np.eye(2), mobius_boost([0.5, 0, 0]), mobius_boost([-0.5, 0, 0])])[None]  # (1, 3, 2, 2)
    ks = pair_scales(mats, np.array([0, 0, 0]), np.array([0, 1, 1]), np.array([1, 1, 2]))
    np.testing.assert_allclose(ks, [3.0, 1.0, 9.0], rtol=1e-10)
