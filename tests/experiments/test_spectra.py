"""The spectra experiment end to end on tiny presets: loss goes down, resume is exact, CLI works."""

import json

import numpy as np
import pytest
import torch

from niso_geom.cli import main
from niso_geom.errors import RunDirError
from niso_geom.experiments.spectra import SpectraConfig, build_problem, preset, signal_moment, train
from niso_geom.niso.cluster_pca import rotate_clusters_to_principal_axes
from niso_geom.train import read_checkpoint


def _losses(run):
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_torus_training_lowers_loss_and_resume_continues_the_curve(tmp_path):
    cfg = preset("tiny", "torus", steps=60, checkpoint_every=15)
    straight = tmp_path / "straight"
    rep = train(cfg, straight, progress=False)
    losses = _losses(straight)
    # the two latest checkpoints are kept
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == ["step_000000045.pt", "step_000000060.pt"]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    for key in ("purity_mean", "eigenvalue_spearman", "tau_block_energy", "tau_block_energy_random", "commutator",
                "mass_correlation", "multiplicity", "analytic_multiplicity", "wall_seconds"):
        assert key in rep
    # interrupted after 30 steps, then resumed from the checkpoint by a fresh process state
    resumed = tmp_path / "resumed"
    part = train(cfg, resumed, progress=False, max_steps=30)
    assert part["stopped_at"] == 30 and not (resumed / "report.json").exists()
    train(cfg, resumed, progress=False)
    np.testing.assert_allclose(_losses(resumed), losses, rtol=1e-5, atol=1e-7)
    for name in ("report.json", "report.md", "eigenfunctions.png", "operator.png", "tau.png", "eigenvalues.png",
                 "mass.png"):
        assert (resumed / name).is_file(), name


def test_resume_refuses_a_different_config(tmp_path):
    train(preset("tiny", "torus", steps=4, checkpoint_every=2), tmp_path, progress=False, max_steps=2)
    with pytest.raises(ValueError, match="different configuration"):
        train(preset("tiny", "torus", steps=4, checkpoint_every=2, beta=0.1), tmp_path, progress=False)


def test_mask_jitter_is_wired_and_resumes_exactly(tmp_path):
    plain = preset("tiny", "torus", steps=20, checkpoint_every=10)
    jittered = preset("tiny", "torus", steps=20, checkpoint_every=10, mask_jitter=0.5)
    train(plain, tmp_path / "plain", progress=False)
    train(jittered, tmp_path / "straight", progress=False)
    assert not np.allclose(_losses(tmp_path / "straight"), _losses(tmp_path / "plain"))
    train(jittered, tmp_path / "resumed", progress=False, max_steps=10)
    train(jittered, tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(_losses(tmp_path / "resumed"), _losses(tmp_path / "straight"),
                               rtol=1e-5, atol=1e-7)


def test_bad_mask_settings_are_refused_by_the_config():
    with pytest.raises(ValueError, match="mask_jitter"):
        preset("tiny", "torus", mask_jitter=-0.1)
    with pytest.raises(ValueError, match="mask_width"):
        preset("tiny", "torus", mask_width=0.0)
    with pytest.raises(ValueError, match="decorrelation"):
        preset("tiny", "torus", decorrelation=-1.0)
    with pytest.raises(ValueError, match="moment_pairs"):
        preset("tiny", "torus", moment_pairs=-3)


def test_decorrelation_is_wired_and_logged(tmp_path):
    cfg = preset("tiny", "torus", steps=6, checkpoint_every=3, decorrelation=10.0)
    train(cfg, tmp_path, progress=False, max_steps=6)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["decor"] > 0 for r in rows)
    assert rows[0]["loss"] == pytest.approx(rows[0]["recon"] + cfg.beta * rows[0]["mult"] + 10.0 * rows[0]["decor"],
                                            rel=1e-5)
    # moments estimated once from many pairs: deterministic, so resuming continues the same curve
    fixed = preset("tiny", "torus", steps=6, checkpoint_every=3, decorrelation=10.0, moment_pairs=40)
    problem = build_problem(fixed)
    assert torch.equal(signal_moment(problem, fixed), signal_moment(problem, fixed))
    assert signal_moment(problem, cfg) is None
    train(fixed, tmp_path / "straight", progress=False)
    train(fixed, tmp_path / "resumed", progress=False, max_steps=3)
    train(fixed, tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(_losses(tmp_path / "resumed"), _losses(tmp_path / "straight"), rtol=1e-5, atol=1e-7)


def test_cluster_pca_is_wired_needs_moments_and_resumes_exactly(tmp_path):
    with pytest.raises(ValueError, match="moment_pairs"):
        preset("tiny", "torus", cluster_pca_every=5)
    with pytest.raises(ValueError, match="cluster_pca_max"):
        preset("tiny", "torus", cluster_pca_every=5, moment_pairs=4, cluster_pca_max=1)
    cfg = preset("tiny", "torus", steps=30, checkpoint_every=10, cluster_pca_every=5, moment_pairs=40,
                 cluster_pca_gap=5.0, cluster_pca_until=0.5)
    train(cfg, tmp_path / "straight", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    rotated = [r["step"] for r in rows if "pca_clusters" in r]
    assert rotated == [5, 10, 15] and all(r["pca_clusters"] >= 1 for r in rows if "pca_clusters" in r)
    train(cfg, tmp_path / "resumed", progress=False, max_steps=10)
    train(cfg, tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(_losses(tmp_path / "resumed"), _losses(tmp_path / "straight"), rtol=1e-5, atol=1e-7)


def test_refine_phase_switches_beta_and_the_eigenvalue_rate_and_resumes_exactly(tmp_path):
    with pytest.raises(ValueError, match="refine_steps"):
        preset("tiny", "sphere", steps=30, refine_steps=30)
    with pytest.raises(ValueError, match="refine_lr"):
        preset("tiny", "sphere", refine_steps=5, refine_lr=0.0)
    cfg = preset("tiny", "sphere", steps=30, checkpoint_every=10, refine_steps=10, refine_beta=0.05, refine_lr=3e-3)
    assert [cfg.extras.refining(s, cfg.steps) for s in (19, 20, 29)] == [False, True, True]
    train(cfg, tmp_path / "straight", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    for r in rows:  # the multiplicity weight switches at update 20 (record "step" counts updates done)
        beta = 0.05 if r["step"] > 20 else cfg.beta
        assert r["loss"] == pytest.approx(r["recon"] + beta * r["mult"], rel=1e-5)
    assert all(r["eigenvalue_lr"] == 3e-3 for r in rows[20:]) and rows[19]["eigenvalue_lr"] < 3e-3
    # the main phase's schedule ends where the refinement begins: Φ and M are then held at lr_end
    assert rows[19]["lr"] > cfg.lr_end and all(r["lr"] == pytest.approx(cfg.lr_end) for r in rows[20:])
    train(cfg, tmp_path / "resumed", progress=False, max_steps=25)  # stopped inside the phase
    train(cfg, tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(_losses(tmp_path / "resumed"), _losses(tmp_path / "straight"), rtol=1e-5, atol=1e-7)


def test_a_run_from_before_a_new_field_still_resumes(tmp_path):
    cfg = preset("tiny", "torus", steps=4, checkpoint_every=2)
    train(cfg, tmp_path, progress=False, max_steps=2)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.update(saved.pop("extras"))  # the flat layout of runs made before the extras sub-config
    del saved["device"]
    for key in ("mask_width", "mask_jitter", "mask_jitter_end", "decorrelation", "moment_pairs",
                "cluster_pca_every", "cluster_pca_gap", "cluster_pca_max", "cluster_pca_until",
                "refine_steps", "refine_beta", "refine_lr"):  # added later still
        del saved[key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert "purity_mean" in train(cfg, tmp_path, progress=False)


def test_lr_end_equal_to_lr_holds_the_rate_after_warmup(tmp_path):
    cfg = preset("tiny", "torus", steps=24, warmup=4, lr=2e-3, lr_end=2e-3)
    train(cfg, tmp_path, progress=False, max_steps=24)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lrs[1] < lrs[3] and lrs[-1] == pytest.approx(2e-3)
    assert np.allclose(lrs[4:], 2e-3)
    decayed = preset("tiny", "torus", steps=24, warmup=4, lr=2e-3)  # default lr_end: cosine decay
    train(decayed, tmp_path / "decayed", progress=False, max_steps=24)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "decayed" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] < 0.1 * 2e-3


@pytest.mark.parametrize("domain", ["sphere", "mesh"])
def test_cli_spectra_and_compare(domain, tmp_path, capsys):
    out = tmp_path / domain
    assert main(["spectra", "--domain", domain, "--preset", "tiny", "--steps", "20", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mean purity" in text and "τ block energy" in text
    rep = json.loads((out / "report.json").read_text())
    if domain == "sphere":
        assert "wigner_error" in rep and rep["mass_correlation"] is not None
    assert main(["compare", str(out)]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["purity_mean"] == pytest.approx(rep["purity_mean"], rel=1e-9)


def test_cli_spectra_on_mnist_digits(tmp_path, capsys):
    out = tmp_path / "mnist"
    assert main(["spectra", "--domain", "torus", "--preset", "tiny", "--signals", "mnist", "--steps", "10",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["signals"] == "mnist"


def test_cli_set_gives_the_eigenvalues_their_own_schedule(tmp_path, capsys):
    out = tmp_path / "groups"
    assert main(["spectra", "--domain", "torus", "--preset", "tiny", "--steps", "8", "--out", str(out), "--no-progress",
                 "--set", "warmup=2", "lr_end=1e-4", "eigenvalue_lr_scale=2", "eigenvalue_lr_end=4e-3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["lr_end"], cfg["extras"]["eigenvalue_lr_scale"], cfg["extras"]["eigenvalue_lr_end"]) == (1e-4, 2.0, 4e-3)
    payload = read_checkpoint(out / "checkpoints" / "step_000000008.pt")
    basis, evals = payload["optimizer"]["param_groups"]
    assert basis["lr"] == pytest.approx(1e-4) and evals["lr"] == pytest.approx(4e-3)
    assert len(evals["params"]) == 1
    with pytest.raises(SystemExit, match="unknown config key 'nonsense'"):
        main(["spectra", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--set", "nonsense=1"])


def test_cli_set_reaches_the_fields_that_also_have_flags(tmp_path, capsys):
    # --set steps=… and --set seed=… were once overwritten by the unset --steps/--seed flags
    out = tmp_path / "set-steps"
    assert main(["spectra", "--domain", "torus", "--preset", "tiny", "--out", str(out), "--no-progress",
                 "--set", "steps=6", "seed=3", "signals=random", "checkpoint_every=3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["steps"], cfg["seed"]) == (6, 3)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    with pytest.raises(SystemExit, match="steps is set twice, by --steps and by --set steps=6"):
        main(["spectra", "--preset", "tiny", "--steps", "8", "--out", str(tmp_path / "both"), "--set", "steps=6"])
    with pytest.raises(SystemExit, match="dropout is set twice, by --no-dropout"):
        main(["spectra", "--preset", "tiny", "--no-dropout", "--out", str(tmp_path / "both"), "--set", "dropout=true"])
    assert not (tmp_path / "both").exists()


def test_on_the_sphere_the_signals_principal_axes_in_a_collapsed_cluster_are_the_degrees():
    """The failure the sphere preset's cluster rotation fixes: degrees 0-2 (9 harmonics) mixed by a
    random rotation inside one cluster of near-equal eigenvalues near 0. The principal axes of the
    sampler's second moments (powers ∝ 1/(l+1)) give back one degree per vector, lowest first."""
    from tests.conftest import operator_with_basis

    cfg = preset("tiny", "sphere", moment_pairs=256, cluster_pca_every=5)
    problem = build_problem(cfg)
    Y, w = problem.truth.evecs[:, :cfg.k], problem.domain.mass
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((9, 9)))
    mixed = Y.copy()
    mixed[:, :9] = Y[:, :9] @ q
    evals = np.cumsum(np.r_[0.0, np.full(8, 0.01), np.full(cfg.k - 9, 1.0)])  # 0, 0.01, …, 0.08, 1.08, …
    op = operator_with_basis(mixed, evals, mass=w)
    degree = np.floor(np.sqrt(np.arange(cfg.k))).astype(int)

    def degree_energy(phi):  # (3, 9): energy of each of the first 9 vectors in degrees 0, 1, 2
        c = Y.T @ (w[:, None] * phi[:, :9])
        return np.stack([(c[degree == l] ** 2).sum(0) for l in range(3)])

    assert degree_energy(op().phi.detach().numpy()).max(0).min() < 0.9  # mixed to begin with
    moment = signal_moment(problem, cfg).double()
    assert rotate_clusters_to_principal_axes(op, moment, cfg.extras.cluster_pca_gap, max_size=9) == 1
    energy = degree_energy(op().phi.detach().numpy())
    np.testing.assert_array_equal(energy.argmax(0), [0, 1, 1, 1, 2, 2, 2, 2, 2])
    assert energy.max(0).min() > 0.95


def test_cli_grid_chooses_the_sphere_grid(tmp_path):
    out = tmp_path / "centred"
    assert main(["spectra", "sphere", "--preset", "tiny", "--grid", "centred", "--steps", "4",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["grid"] == "equiangular-centred"
    assert json.loads((out / "report.json").read_text())["n"] == 8 * 16  # cell-centred 8×16 at the tiny res
    with pytest.raises(SystemExit, match="--grid dh: only the sphere has a grid kind"):
        main(["spectra", "--domain", "torus", "--preset", "tiny", "--grid", "dh", "--out", str(tmp_path / "t")])
    with pytest.raises(SystemExit, match="grid is set twice, by --grid and by --set grid=dh"):
        main(["spectra", "--domain", "sphere", "--preset", "tiny", "--grid", "centred", "--out",
              str(tmp_path / "t"), "--set", "grid=dh"])
    # the old configs' "equiangular" was the cell-centred grid; in the shared language it has poles
    old = {**preset("tiny", "sphere").to_dict(), "grid": "equiangular"}
    del old["config_version"]
    assert SpectraConfig.from_dict(old).grid == "equiangular-centred"
    assert preset("tiny", "sphere", grid="equiangular").grid == "equiangular"
    assert preset("tiny", "sphere", grid="dh").grid == "driscoll-healy"


def test_hold_steps_are_validated():
    assert preset("tiny", "torus", hold_steps=20).extras.hold_steps == 20
    with pytest.raises(ValueError, match="warmup \\+ hold_steps < steps - refine_steps"):
        preset("tiny", "torus", hold_steps=50)  # warmup 10 + 50 >= 60 steps
    with pytest.raises(ValueError, match="hold_steps must be >= 0"):
        preset("tiny", "torus", hold_steps=-1)


def test_cli_device_is_accepted_and_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cpu"
    assert main(["spectra", "--preset", "tiny", "--steps", "2", "--device", "cpu", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["device"] == "cpu"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    capsys.readouterr()
    assert main(["spectra", "--preset", "tiny", "--device", "cuda", "--out", str(tmp_path / "gpu")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("niso: error: device 'cuda' requested but no CUDA GPU")
    assert not (tmp_path / "gpu").exists()


def test_no_extras_is_the_papers_method_and_the_help_names_each_presets_extras(tmp_path, capsys):
    cfg = preset("cpu", "torus", plain=True)
    assert cfg.extras.active() == {} and cfg.steps == preset("cpu", "torus").steps
    assert preset("cpu", "torus").extras.active() == {"decorrelation": 10.0, "moment_pairs": 512,
                                                       "cluster_pca_every": 500}
    with pytest.raises(SystemExit):
        main(["spectra", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "cpu — extras torus: decorrelation=10.0, moment_pairs=512, cluster_pca_every=500" in text
    assert "mesh: none" in text and "--no-extras" in text


def test_a_run_folder_without_its_config_json_refuses_another_seed_and_keeps_its_files(tmp_path):
    cfg = preset("tiny", "torus", steps=4, checkpoint_every=2)
    train(cfg, tmp_path, progress=False, max_steps=2)
    (tmp_path / "config.json").unlink()
    with pytest.raises(RunDirError, match="another configuration"):
        train(preset("tiny", "torus", steps=4, checkpoint_every=2, seed=5), tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()  # nothing written that would contradict the checkpoints
    assert "purity_mean" in train(cfg, tmp_path, progress=False)  # the right config still resumes


def test_bfloat16_reconstruction_trains_the_tiny_torus_and_other_dtypes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="recon_dtype must be float32 or bfloat16, got 'float16'"):
        preset("tiny", "torus", recon_dtype="float16")
    cfg = preset("tiny", "torus", steps=40, recon_dtype="bfloat16")
    train(cfg, tmp_path / "bf16", progress=False)
    losses = _losses(tmp_path / "bf16")
    assert np.isfinite(losses).all() and np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["recon_dtype"] == "bfloat16"
