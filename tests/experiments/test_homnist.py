"""The homNIST experiment: presets, samplers, aggregation, and the tiny preset end to end via the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from niso_geom.cli import main
from niso_geom.data.homnist import build_homnist
from niso_geom.errors import NisoGeomError, RunDirError
from niso_geom.experiments import homnist
from niso_geom.experiments.common import Classifier
from niso_geom.experiments.homnist import (
    equivariance_report,
    pair_residuals,
    pipeline,
)
from niso_geom.niso.models import count_parameters
from niso_geom.train import DeviceUnavailableError, pretrain, read_checkpoint, resolve_device


def test_presets_are_frozen_and_overrides_are_parsed():
    cfg = homnist.preset("cpu", steps="123", enc_channels="32,64", head_readout="none", spectral_dropout="true")
    assert cfg.steps == 123 and cfg.enc_channels == (32, 64) and cfg.head_readout is None
    assert cfg.spectral_dropout is True and cfg.preset == "cpu"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown config keys"):
        homnist.preset("cpu", stepz=1)
    with pytest.raises(ValueError, match="unknown preset"):
        homnist.preset("huge")
    assert cfg.digest() != homnist.PRESETS["cpu"].digest()
    assert homnist.preset("cpu").digest() == homnist.PRESETS["cpu"].digest()
    paper = homnist.PRESETS["paper"]
    assert (paper.enc_channels, paper.enc_depth, paper.k, paper.alpha, paper.beta) == ((64, 128), (3, 3), 32, 0.5, 0.1)
    assert paper.head_readout is None and paper.test_digits is None  # 8320 hidden, all 320,000 images


def test_config_validation_names_the_field_and_value():
    for overrides, field in (({"steps": "0"}, "steps"), ({"head_norm": "batch"}, "head_norm"),
                             ({"lr": "nan"}, "lr"), ({"alpha": "-1"}, "alpha"), ({"test_digits": "0"}, "test_digits"),
                             ({"enc_depth": "1,1,1"}, "enc_depth"), ({"amp": "fast"}, "amp")):
        # the generic --set parser refuses non-finite numbers first (naming key=value), the config the rest
        with pytest.raises(ValueError, match=rf"{field}(='| must be .*, got)") as info:
            homnist.preset("tiny", **overrides)
        assert isinstance(info.value, (NisoGeomError, ValueError))
    assert homnist.preset("tiny", head_digits="none", triplet_batch="4").triplet_batch == 4


def test_saved_configs_load_back(tmp_path):
    cfg = homnist.preset("tiny", enc_channels="4,8", head_readout="none")
    (tmp_path / "config.json").write_text(json.dumps({"config": cfg.to_dict() | {"retired_field": 1}}))
    assert homnist.load_run_config(tmp_path) == cfg
    with pytest.raises(RunDirError, match="not a homNIST run folder"):
        homnist.load_run_config(tmp_path / "missing")


def test_method_specs():
    cfg = homnist.PRESETS["cpu"]
    assert homnist.method_spec(cfg, "niso").alpha == 2.0 and homnist.method_spec(cfg, "niso").beta == 0.1
    assert homnist.method_spec(cfg, "niso_no_equiv").alpha == 0.0
    assert homnist.method_spec(cfg, "niso_no_mult").beta == 0.0
    assert homnist.method_spec(cfg, "niso_triplets").views == 3
    ae = homnist.method_spec(cfg, "ae_aug")
    assert ae.kind == "ae" and ae.alpha is None and not ae.head_augment  # the AE head sees clean digits
    labels = homnist.method_spec(cfg, "ae_aug_labels")
    assert labels.head_augment and labels.pretrain_of == "ae_aug"
    assert all(not homnist.method_spec(cfg, m).head_augment for m in homnist.METHODS.defaults())
    assert homnist.METHODS.defaults() == ("niso", "niso_triplets", "niso_no_equiv", "niso_no_mult", "ae_aug")
    assert homnist.METHODS.choices() == homnist.METHODS.defaults() + ("ae_aug_labels",)
    assert homnist.niso_methods() == ("niso", "niso_triplets", "niso_no_equiv", "niso_no_mult")
    assert set(homnist.method_spec(cfg, "niso").to_dict()) == {"kind", "alpha", "beta", "views", "batch",
                                                               "head_augment", "pretrain_of"}
    with pytest.raises(ValueError, match="unknown method"):
        homnist.method_spec(cfg, "homconv")


def test_homography_views_are_resumable_and_shaped():
    digits = torch.zeros(10, 40, 40, dtype=torch.uint8)
    digits[:, 14:26, 18:22] = 255
    src = homnist.HomographyViews(digits, 4, views=3, seed=3)
    first = src()
    assert len(first) == 3 and all(v.shape == (4, 1, 40, 40) for v in first)
    assert first[0].min() == -1.0 and first[0].max() == 1.0  # the clean digit, in [-1, 1]
    assert not torch.equal(first[1], first[2])
    state = json.loads(json.dumps(src.state_dict()))  # JSON-serializable for checkpoints
    nxt = src()
    again = homnist.HomographyViews(digits, 4, views=3, seed=99)
    again.load_state_dict(state)
    for a, b in zip(nxt, again()):
        torch.testing.assert_close(a, b)
    same = homnist.HomographyViews(digits, 2, views=3, seed=0, same_transform=True)
    _, tx, ttx = same()
    assert not torch.equal(tx, ttx)


def test_aggregate_mean_and_standard_error():
    recs = [{"method": "niso", "seed": s, "accuracy": a, "wall_seconds": 10.0} for s, a in enumerate([0.8, 0.9, 0.85])]
    recs.append({"method": "ae_aug", "seed": 0, "accuracy": 0.7, "wall_seconds": 5.0})
    res = homnist.aggregate(recs, ["niso", "ae_aug"])
    assert res["num_classes"] == 10
    niso = res["methods"]["niso"]
    assert set(niso) == {"accuracy_mean", "accuracy_se", "seeds", "wall_seconds", "accuracy_se_digits",
                         "clean_accuracy_mean", "clean_accuracy_se_digits"}
    assert niso["accuracy_se_digits"] is None  # records without per-digit counts
    assert math.isclose(niso["accuracy_mean"], 0.85)
    assert math.isclose(niso["accuracy_se"], np.std([0.8, 0.9, 0.85], ddof=1) / math.sqrt(3))
    assert niso["seeds"] == [0, 1, 2] and niso["wall_seconds"] == 30.0
    assert res["methods"]["ae_aug"]["accuracy_se"] is None  # one seed: undefined, not 0


def test_latent_cnn_head_shapes():
    head = homnist.LatentCNN(8, (20, 20), width=16)
    assert head(torch.zeros(3, 8, 20, 20)).shape == (3, 10)


def test_head_norms_remove_the_latent_scale_and_keep_o_k_invariance():
    cfg = homnist.preset("tiny", head_norm="channel")
    torch.manual_seed(0)
    head = homnist.build_head(cfg, "niso", (20, 20)).double().eval()
    z = torch.randn(3, cfg.k, cfg.latent_dim, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(cfg.k, cfg.k, dtype=torch.float64))
    scale = torch.rand(3, 1, cfg.latent_dim, dtype=torch.float64) + 0.5  # a scale per sample and channel
    with torch.no_grad():
        ref = head(z)
        assert torch.allclose(head(q @ z), ref, atol=1e-8)
        assert torch.allclose(head(scale * z), ref, atol=1e-4)  # up to the eps under the root
    ae = homnist.build_head(dataclasses.replace(cfg, head_norm="sample"), "ae", (20, 20)).double().eval()
    lat = torch.randn(2, cfg.latent_dim, 20, 20, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(ae(3.7 * lat), ae(lat), atol=1e-4)
    with pytest.raises(ValueError, match="head_norm"):
        homnist.build_head(dataclasses.replace(cfg, head_norm="batch"), "niso", (20, 20))


def test_feature_noise_only_in_training_and_relative_to_the_rms():
    noise = homnist.FeatureNoise(0.5)
    x = 10.0 * torch.randn(4000, 8, 4)
    torch.manual_seed(0)
    d = noise.train()(x) - x
    assert abs(d.std().item() / (0.5 * x.square().mean().sqrt().item()) - 1) < 0.02
    assert torch.equal(noise.eval()(x), x)
    head = homnist.build_head(homnist.preset("tiny", head_noise=0.2), "niso", (20, 20))
    assert isinstance(head[0], homnist.FeatureNoise)
    with pytest.raises(ValueError, match="sigma"):
        homnist.FeatureNoise(-1.0)


def test_tiny_preset_end_to_end_via_the_cli(tmp_path, capsys):
    """The tiny preset through ``niso homnist run``: run folder, exact results.json, above chance,
    then an instant resume."""
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        argv = ["homnist", "run", "--preset", "tiny", "--methods", "niso", "niso_triplets", "ae_aug",
                "--out", str(out), "--no-progress", "--threads", "1"]
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert "NIso w/ triplets" in printed and "92.52 ± 0.91" in printed and "LieDecomp" in printed

        res = json.loads((out / "results.json").read_text())
        assert set(res) == {"num_classes", "methods"} and res["num_classes"] == 10
        assert list(res["methods"]) == ["niso", "niso_triplets", "ae_aug"]
        for entry in res["methods"].values():
            assert set(entry) == {"accuracy_mean", "accuracy_se", "seeds", "wall_seconds", "accuracy_se_digits",
                                  "clean_accuracy_mean", "clean_accuracy_se_digits"}
            assert entry["accuracy_se_digits"] > 0 and entry["clean_accuracy_se_digits"] > 0
            assert entry["seeds"] == [0] and entry["accuracy_se"] is None and entry["wall_seconds"] > 0
            assert 0.0 <= entry["accuracy_mean"] <= 1.0
        assert res["methods"]["niso"]["accuracy_mean"] > 0.2  # chance is 0.1

        cfg = json.loads((out / "config.json").read_text())
        assert cfg["config"]["preset"] == "tiny" and cfg["methods"] == ["niso", "niso_triplets", "ae_aug"]
        rec = json.loads((out / "niso" / "seed0" / "result.json").read_text())
        assert rec["num_test"] == 16 * 32 and rec["spec"]["alpha"] == 0.5
        assert rec["num_test_digits"] == 16 and rec["warps_per_digit"] == 32
        assert sum(rec["per_digit_correct"]) == round(rec["accuracy"] * 16 * 32)
        assert rec["accuracy_se_digits"] == pytest.approx(
            np.std(np.array(rec["per_digit_correct"]) / 32, ddof=1) / 4)
        assert "per_digit_correct" not in (out / "metrics.jsonl").read_text()  # kept out of the log
        for stage in ("pretrain", "head"):
            assert (out / "niso" / "seed0" / stage / "metrics.jsonl").stat().st_size > 0
            assert list((out / "niso" / "seed0" / stage / "checkpoints").glob("step_*.pt"))
        md = (out / "results.md").read_text()
        assert "| NIso |" in md and "97.38" in md and "80.96" in md

        # the equivariance diagnostic on the finished run
        capsys.readouterr()
        assert main(["homnist", "equivariance", str(out), "--digits", "4"]) == 0
        assert "best rotation / chance" in capsys.readouterr().out
        rep = json.loads((out / "niso" / "seed0" / "equivariance.json").read_text())
        assert rep["images"] == 4 * 32 and len(rep["residual_free_per_mode"]) == 16
        assert 0 <= rep["residual_free_mean"] <= rep["residual_masked_mean"] + 1e-6
        assert sum(q["images"] for q in rep["accuracy_by_residual_quartile"]) == rep["images"]
        assert 0 <= rep["accuracy"] <= 1 and sum(rep["energy_share_per_mode"]) == pytest.approx(1.0, abs=1e-4)
        with pytest.raises(ValueError, match="no learned operator"):
            equivariance_report(out, "ae_aug")

        before = (out / "niso" / "seed0" / "result.json").read_text()
        assert main(argv[:6] + ["niso", "--out", str(out), "--no-progress"]) == 0  # resumed: nothing retrained
        assert (out / "niso" / "seed0" / "result.json").read_text() == before
        again = json.loads((out / "results.json").read_text())
        assert again["methods"]["niso"] == res["methods"]["niso"]
    finally:
        torch.set_num_threads(threads)


def test_pair_residuals_vanish_for_exact_rotations_and_the_best_rotation_wins():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(5, 6, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 6, 6, generator=g, dtype=torch.float64))
    q[:, :, 0] *= torch.sign(torch.linalg.det(q)).unsqueeze(-1)  # into SO(6)
    total, per_mode = pair_residuals(src, q @ src, None)
    assert total.shape == (5,) and per_mode.shape == (5, 6) and float(total.max()) < 1e-20
    evals = torch.arange(6, dtype=torch.float64) * 3.0  # a mask that forbids most of q
    dst = q @ src + 0.1 * torch.randn(5, 6, 4, generator=g, dtype=torch.float64)
    masked, _ = pair_residuals(src, dst, evals)
    free, _ = pair_residuals(src, dst, None)
    assert bool((free <= masked + 1e-12).all()) and float(masked.min()) > 0.1


def test_cli_rejects_bad_overrides_and_methods(tmp_path, capsys):
    assert main(["homnist", "run", "--preset", "tiny", "--out", str(tmp_path), "--set", "nonsense=1"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["homnist", "run", "--preset", "tiny", "--out", str(tmp_path), "--set", "steps=0"]) == 2
    assert "steps must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["homnist", "run", "--preset", "tiny", "--out", str(tmp_path), "--methods", "homconv"])
    with pytest.raises(ValueError, match="unknown method 'homconv'"):
        homnist.run(homnist.preset("tiny"), tmp_path / "bad", methods=["homconv"])
    assert not (tmp_path / "bad").exists()


def test_cli_cuda_without_a_gpu_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["homnist", "run", "--preset", "tiny", "--out", str(out), "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("niso: error:") and "cuda" in err[0]
    assert not out.exists()
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_cli_set_takes_several_overrides_and_repeats():
    from niso_geom.cli import build_parser
    from niso_geom.cli._common import experiment_config
    from niso_geom.experiments import homnist

    args = build_parser().parse_args(["homnist", "run", "--preset", "tiny", "--out", "x",
                                      "--set", "steps=7", "head_digits=None", "--set", "enc_channels=4,8"])
    cfg = experiment_config(args, homnist.preset)
    assert (cfg.steps, cfg.head_digits, cfg.enc_channels) == (7, None, (4, 8))


def test_parallel_jobs_give_the_same_results(tmp_path):
    """``jobs=2`` runs (method, seed) pairs in worker processes with the same results as in turn."""
    cfg = homnist.preset("tiny", steps=10, head_steps=30)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial, _ = homnist.run(cfg, tmp_path / "serial", methods=["niso", "ae_aug"], progress=False)
        torch.set_num_threads(2)
        parallel, records = homnist.run(cfg, tmp_path / "parallel", methods=["niso", "ae_aug"], progress=False, jobs=2)
    finally:
        torch.set_num_threads(threads)
    assert [r["method"] for r in records] == ["niso", "ae_aug"]
    for m in ("niso", "ae_aug"):
        assert parallel["methods"][m]["accuracy_mean"] == serial["methods"][m]["accuracy_mean"]
    assert json.loads((tmp_path / "parallel" / "config.json").read_text())["jobs"] == 2
    with pytest.raises(ValueError, match="jobs"):
        homnist.run(cfg, tmp_path / "bad", methods=["niso"], jobs=0)


def test_random_test_digits_are_seeded_and_their_rows_match_the_full_set():
    ids = homnist.test_digit_indices(5, seed=0)
    assert ids.dtype == np.int64 and len(set(ids.tolist())) == 5 and np.all(np.diff(ids) > 0)
    assert np.array_equal(ids, homnist.test_digit_indices(5, seed=0))
    assert not np.array_equal(ids, homnist.test_digit_indices(5, seed=1))
    assert not np.array_equal(ids, np.arange(5))
    assert np.array_equal(homnist.test_digit_indices(5, 0, "first"), np.arange(5))
    assert len(homnist.test_digit_indices(None, 0)) == 10_000
    with pytest.raises(ValueError, match="pick"):
        homnist.test_digit_indices(5, 0, "last")
    # a digit keeps its own homographies whichever subset it is in
    prefix = build_homnist(cache=False, seed=0, subset=4, progress=False)
    picked = build_homnist(cache=False, seed=0, indices=[3, 1], progress=False)
    assert picked.digit_index.tolist() == [3] * 32 + [1] * 32
    np.testing.assert_array_equal(picked.images[:32], prefix.images[96:128])
    np.testing.assert_array_equal(picked.homographies[32:], prefix.homographies[32:64])
    with pytest.raises(ValueError, match="distinct"):
        build_homnist(cache=False, indices=[2, 2], progress=False)
    clean, labels = homnist.load_test_digits(None, indices=[3, 1])
    first, first_labels = homnist.load_test_digits(4)
    assert torch.equal(clean, first[[3, 1]]) and torch.equal(labels, first_labels[[3, 1]])


def test_standard_error_across_digits():
    correct = np.array([1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)  # 4 digits x 2 warps, digit-major
    by_digit = homnist.per_digit_correct(correct, np.repeat([7, 2, 9, 4], 2), np.array([7, 2, 9, 4]))
    assert by_digit.tolist() == [2, 1, 0, 2]
    acc = np.array([1.0, 0.5, 0.0, 1.0])
    assert homnist.digit_standard_error(by_digit, 2) == pytest.approx(acc.std(ddof=1) / 2)
    assert homnist.digit_standard_error(np.array([3]), 4) is None
    # over seeds: the digits' accuracies are averaged first
    recs = [{"method": "niso", "seed": s, "accuracy": a, "clean_accuracy": 1.0, "wall_seconds": 1.0,
             "per_digit_correct": c, "warps_per_digit": 2, "clean_per_digit_correct": [1, 1, 1, 1]}
            for s, (a, c) in enumerate([(0.625, [2, 1, 0, 2]), (0.5, [2, 0, 0, 2])])]
    entry = homnist.aggregate(recs, ["niso"])["methods"]["niso"]
    mean_acc = np.array([1.0, 0.25, 0.0, 1.0])
    assert entry["accuracy_se_digits"] == pytest.approx(mean_acc.std(ddof=1) / 2)
    assert entry["clean_accuracy_mean"] == 1.0 and entry["clean_accuracy_se_digits"] == 0.0


def test_paper_preset_builds_the_paper_size_models_without_training():
    cfg = homnist.PRESETS["paper"]
    cost = homnist.encoder_cost(cfg)
    assert cost["encoder_parameters"] == 1_083_552 and round(cost["decoder_parameters"] / 1e6, 2) == 1.09
    assert cost["receptive_field"] == 38 and round(cost["encoder_macs"] / 1e6) == 700
    with torch.device("meta"):  # shapes only: nothing is initialized or trained
        model = homnist.build_autoencoder(cfg, "niso", cfg.alpha, cfg.beta)
        head = homnist.build_head(cfg, "niso", model.latent_shape, operator=model.operator)
        ae_head = homnist.build_head(cfg, "ae", model.latent_shape)
    assert isinstance(head, homnist.KernelHead) and head.operator is model.operator
    assert round(count_parameters(head.head) / 1e6, 2) == 17.53  # docs/algorithm.md §2.2: hmnist_pred's orth_net
    assert count_parameters(model.operator) == 400 + 400 * 32 + 32  # N + NK + K = 13,232
    assert count_parameters(ae_head) > 0
    # the official protocol and schedule (docs/algorithm.md §1.8, §3.2-3.3)
    assert (cfg.steps, cfg.batch, cfg.lr, cfg.warmup, cfg.end_lr, cfg.decay_steps) == (50_000, 16, 5e-4, 2000, 5e-5,
                                                                                      1_000_000)
    assert (cfg.head_steps, cfg.head_batch, cfg.head_lr, cfg.head_warmup) == (20_000, 16, 5e-4, 2000)
    assert cfg.head_train_kernel and cfg.init == "reference" and cfg.amp == "off" and cfg.test_digits is None
    assert cfg.head_norm == "none" and cfg.head_noise == 0.0 and cfg.alpha == 0.5
    official = homnist.preset("cpu_official_head")
    assert all(getattr(official, k) == v for k, v in homnist.OFFICIAL_HEAD.items())
    assert official.enc_channels == homnist.PRESETS["cpu"].enc_channels and official.test_digits == 2000


def test_kernel_head_trains_the_operator_and_not_the_encoder():
    cfg = homnist.preset("tiny", head_train_kernel=True, init="reference")
    torch.manual_seed(0)
    model = homnist.build_autoencoder(cfg, "niso")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)  # the reference init ran
    x = torch.rand(6, 1, 40, 40) * 2 - 1
    z = homnist.head_input(model, x, "niso", train_kernel=True)
    assert z.shape == (6, 400, cfg.latent_dim) and not z.requires_grad
    coeffs = homnist.head_input(model, x, "niso", train_kernel=False)
    head = homnist.build_head(cfg, "niso", model.latent_shape, operator=model.operator)
    with torch.no_grad():  # the head on latents is the inner head on the coefficients
        torch.testing.assert_close(head(z), head.head(coeffs))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clf = Classifier(head)
    pretrain(clf, homnist.TensorBatches(z, torch.arange(6) % 10, batch=4, seed=0), 3, lr=1e-2, warmup=0,
             decay_steps=1000, end_lr=1e-3, device="cpu", progress=False)
    after = model.state_dict()
    assert not torch.equal(after["operator.phi_raw"], before["operator.phi_raw"])
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("encoder.", "decoder.")))
    with pytest.raises(ValueError, match="operator"):
        homnist.build_head(cfg, "niso", model.latent_shape)


def test_speed_and_protocol_fields_reach_the_trainer(tmp_path, monkeypatch, capsys):
    """channels_last, compile, the schedules' horizons and end rates, the official head: wiring,
    at tiny sizes, through ``niso homnist run --set``; then the equivariance diagnostic on it."""
    calls = []
    real = pipeline.pretrain

    def spy(model, source, steps, **kw):
        calls.append((type(model).__name__, steps, kw))
        return real(model, source, steps, **kw)

    monkeypatch.setattr(pipeline, "pretrain", spy)
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        argv = ["homnist", "run", "--preset", "tiny", "--methods", "niso", "--out", str(out), "--no-progress",
                "--threads", "1", "--set", "steps=6", "head_steps=5", "test_digits=3", "channels_last=true",
                "decay_steps=1000", "head_train_kernel=true", "head_end_lr=1e-3", "head_decay_steps=500",
                "init=reference"]
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    (pre_kind, pre_steps, pre), (head_kind, head_steps, head) = calls
    assert (pre_kind, pre_steps, head_kind, head_steps) == ("NIsoAutoencoder", 6, "Classifier", 5)
    assert pre["channels_last"] is True and pre["compile"] is False and pre["decay_steps"] == 1000
    assert head["decay_steps"] == 500 and head["end_lr"] == 1e-3 and "channels_last" not in head
    state = read_checkpoint(next((out / "niso" / "seed0" / "head" / "checkpoints").glob("step_*.pt")))
    assert any("operator.phi_raw" in k for k in state["model"])  # the head checkpoint holds the trained operator
    rec = json.loads((out / "niso" / "seed0" / "result.json").read_text())
    assert rec["num_test_digits"] == 3 and rec["num_test"] == 96
    cfg = homnist.load_run_config(out)
    assert cfg.test_pick == "random" and cfg.channels_last and cfg.head_train_kernel
    capsys.readouterr()
    assert main(["homnist", "equivariance", str(out), "--digits", "2"]) == 0
    assert json.loads((out / "niso" / "seed0" / "equivariance.json").read_text())["images"] == 64


def test_cli_size_reports_the_encoder(capsys):
    assert main(["homnist", "size", "--preset", "cpu", "--set", "enc_depth=1,3"]) == 0
    printed = capsys.readouterr().out
    assert "60,016 parameters" in printed and "receptive field 30 px" in printed and "29.5 M MACs" in printed
