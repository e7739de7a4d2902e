"""The pose-from-τ experiment: pair samplers, the ablation's basis, presets, and the tiny preset end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from niso_geom.cli import main
from niso_geom.data.pose_pairs import CapBank, PosePairs, sample_rotations
from niso_geom.domains.sphere import SphereGrid
from niso_geom.experiments import pose
from niso_geom.harmonics.sphere import real_sph_harm
from niso_geom.harmonics.wigner import wigner_D_all
from niso_geom.niso.pose import geodesic_deg


def test_pairs_are_exact_rotations_of_band_limited_signals():
    grid = SphereGrid.equiangular(8, 8, poles=False)
    pairs = PosePairs(grid.points, 4, 3, kind="fields", rotations="haar")
    rng = np.random.default_rng(0)
    x, tx, R = pairs.sample(3, rng)
    assert x.shape == tx.shape == (3, grid.n, 4) and R.shape == (3, 3, 3)
    # the same signals through Wigner-D on the coefficients: Tx = Y D(R) c
    c = pairs.coefficients(3, np.random.default_rng(0))
    np.testing.assert_allclose(x, pairs.Y @ c, atol=1e-12)
    np.testing.assert_allclose(tx, pairs.Y @ (wigner_D_all(3, R) @ c), atol=1e-10)
    # and pointwise: Tx(p) = x(Rᵀ p)
    np.testing.assert_allclose(tx[1], real_sph_harm(3, grid.points @ R[1]) @ c[1], atol=1e-12)


def test_camera_rotations_are_bounded_and_caps_are_localized():
    rng = np.random.default_rng(1)
    R = sample_rotations(500, rng, "camera", 30.0)
    angles = geodesic_deg(np.broadcast_to(np.eye(3), R.shape).copy(), R)
    assert angles.max() <= 30.0 + 1e-9 and angles.min() >= 0.0 and np.median(angles) > 10.0
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    with pytest.raises(ValueError, match="rotations must be"):
        sample_rotations(2, rng, "shaky")
    bank = CapBank(64, 5, radius_deg=40.0, res=16, quad_nlat=24)
    grid = SphereGrid.gauss_legendre(24)
    f = real_sph_harm(5, grid.points) @ bank.coeffs.T  # (Q, 64) band-limited cap signals
    front = grid.points[:, 0] > np.cos(np.radians(60.0))  # the cap plus a margin for the band limit
    share = (grid.mass[front, None] * f[front] ** 2).sum(0) / (grid.mass[:, None] * f ** 2).sum(0)
    assert np.median(share) > 0.9
    assert np.mean(np.sum(bank.coeffs ** 2, axis=1)) == pytest.approx(4 * math.pi)
    pairs = PosePairs(grid.points, 3, 5, kind="cap", bank=bank, rotations="camera", max_angle_deg=20.0)
    assert pairs.coefficients(2, rng).shape == (2, 36, 3)
    with pytest.raises(ValueError, match="CapBank"):
        PosePairs(grid.points, 3, 4, kind="cap", bank=bank)


def test_pair_batches_resume_the_same_stream_and_random_basis_is_orthonormal():
    cfg = pose.PRESETS["tiny"]
    grid = pose.build_grid(cfg)
    pairs = pose.build_pairs(cfg, grid)
    src = pose.PairBatches(pairs, 4, seed=3, stream=1, features=pose.raw_features(cfg))
    src()
    state = json.loads(json.dumps(src.state_dict()))
    nxt = src()
    again = pose.PairBatches(pairs, 4, seed=99, stream=1, features=pose.raw_features(cfg))
    again.load_state_dict(state)
    for a, b in zip(nxt, again()):
        torch.testing.assert_close(a, b)
    assert nxt[0].shape == (4, 2 * cfg.channels, cfg.nlat, cfg.nlon) and nxt[1].shape == (4, 3, 3)
    basis = pose.random_basis(grid.n, cfg.k, seed=0)
    gram = basis.phi.double().mT @ (basis.mass.double()[:, None] * basis.phi.double())
    torch.testing.assert_close(gram, torch.eye(cfg.k, dtype=torch.float64), atol=1e-5, rtol=0)


def test_presets_overrides_and_validation():
    cfg = pose.preset("cpu", signals="cap", rotations="camera", max_angle="30", raw_channels="16,32")
    assert (cfg.signals, cfg.rotations, cfg.max_angle, cfg.raw_channels) == ("cap", "camera", 30.0, (16, 32))
    assert cfg.digest() != pose.PRESETS["cpu"].digest()
    assert pose.preset("cpu", log_every="7").digest() == pose.PRESETS["cpu"].digest()  # bookkeeping only
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown config keys"):
        pose.preset("cpu", kk=3)
    with pytest.raises(ValueError, match="band limit"):
        pose.preset("cpu", lmax=9)
    with pytest.raises(ValueError, match="signals must be"):
        pose.preset("tiny", signals="video")
    paper = pose.PRESETS["paper"]
    assert (paper.head_features, paper.head_layers, paper.rep) == (512, 6, "9d")  # the reference's skipMLP
    # the camera preset is the cpu preset with the documented --set options: a run started either way
    # has the same digest, so each resumes the other
    camera = pose.preset("cpu", signals="cap", rotations="camera", max_angle="45", beta="0.0005")
    assert camera.digest() == pose.PRESETS["camera"].digest() != pose.PRESETS["cpu"].digest()


def test_aggregate_means_and_standard_errors_over_seeds():
    recs = [{"method": "niso", "seed": s, "median_deg": m, "mean_deg": m + 1, "wall_seconds": 2.0}
            for s, m in enumerate([10.0, 12.0])]
    recs.append({"method": "raw_pair", "seed": 0, "median_deg": 50.0, "mean_deg": 60.0, "wall_seconds": 1.0})
    res = pose.aggregate(recs, ["niso", "raw_pair", "no_operator"])
    n = res["methods"]["niso"]
    assert set(n) >= {"median_deg_mean", "median_deg_se", "mean_deg_mean", "seeds", "wall_seconds"}
    assert n["median_deg_mean"] == 11.0 and n["median_deg_se"] == pytest.approx(1.0) and n["seeds"] == [0, 1]
    assert n["wall_seconds"] == 4.0
    assert res["methods"]["raw_pair"]["median_deg_se"] is None and "no_operator" not in res["methods"]
    assert n["median_deg_mean"] < res["methods"]["raw_pair"]["median_deg_mean"]


def test_methods_registry_and_named_errors(tmp_path, capsys, monkeypatch):
    assert pose.METHODS.defaults() == ("niso", "no_operator", "raw_pair")
    with pytest.raises(ValueError, match="unknown method 'nope'.*niso, no_operator, raw_pair"):
        pose.run(pose.PRESETS["tiny"], tmp_path / "x", methods=["nope"])
    with pytest.raises(SystemExit):  # argparse: --methods choices come from the registry
        main(["pose", "run", "--preset", "tiny", "--out", str(tmp_path / "x"), "--methods", "nope"])
    # bad config values and a missing GPU: one "niso: error:" line naming the field / device, exit 2
    capsys.readouterr()
    assert main(["pose", "run", "--preset", "tiny", "--out", str(tmp_path / "x"), "--set", "rep=7d"]) == 2
    assert capsys.readouterr().err.strip() == "niso: error: rep must be one of ('9d', '6d'), got '7d'"
    assert main(["pose", "run", "--preset", "tiny", "--out", str(tmp_path / "x"), "--set", "k=big"]) == 2
    assert "niso: error: pose config:" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["pose", "run", "--preset", "tiny", "--out", str(tmp_path / "x"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("niso: error: device 'cuda' requested but no CUDA GPU") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # nothing written before the device check


def test_cli_pose_run_tiny_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "pose"
    assert main(["pose", "run", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "median" in text and "NIso (τ from the learned operator)" in text and "Haar-random guess" in text
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == set(pose.METHODS)
    for entry in res["methods"].values():
        assert {"median_deg_mean", "median_deg_se", "mean_deg_mean", "seeds", "wall_seconds"} <= set(entry)
        assert entry["seeds"] == [0]
    # NIso beats chance (a Haar-random guess: median 132.3°, mean 126.5°) clearly
    assert res["methods"]["niso"]["median_deg_mean"] < 90.0
    assert res["references"]["sh_oracle"]["median_deg"] < 1e-3  # the target is recoverable from the pair
    assert res["references"]["haar_chance"]["median_deg"] == pytest.approx(132.35, abs=0.01)
    for name in ("results.md", "errors.png", "config.json", "niso/seed0/predictions.npz",
                 "niso/seed0/operator/metrics.jsonl"):
        assert (out / name).is_file(), name
    # a second call resumes: finished method/seeds are skipped, the records are unchanged
    rec = (out / "niso" / "seed0" / "result.json").read_text()
    assert main(["pose", "run", "--preset", "tiny", "--out", str(out), "--no-progress", "--methods", "niso"]) == 0
    assert (out / "niso" / "seed0" / "result.json").read_text() == rec
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["method"] for line in lines) == sorted(pose.METHODS)  # no duplicate on resume
