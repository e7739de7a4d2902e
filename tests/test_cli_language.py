"""One CLI language: a flag means the same in every command that has it (name, values, default,
help), every run command has --device and --threads, and the shared names mean the same thing."""

from __future__ import annotations

import argparse

import pytest

from niso_geom.cli import build_parser, main
from niso_geom.cli._common import build_domain

SHARED = ("--device", "--threads", "--grid", "--res", "--size", "--seed", "--data-root", "--no-resume",
          "--no-progress", "--set", "--out", "--first-seed")
RUN_COMMANDS = (("spectra",), ("homnist", "run"), ("cshrec11", "run"), ("pose", "run"))


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _meaning(action: argparse.Action) -> tuple:
    choices = None if action.choices is None else tuple(action.choices)
    type_name = getattr(action.type, "__name__", repr(action.type))
    help_text = (action.help or "").split(" (default")[0]  # a command may give its own default
    return (action.dest, choices, action.default, type_name, type(action).__name__, help_text)


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("flag", SHARED)
def test_a_flag_means_the_same_in_every_command(flag):
    meanings = {" ".join(path): _meaning(_options(p)[flag]) for path, p in COMMANDS.items() if flag in _options(p)}
    assert meanings, f"no command has {flag}"
    if flag in ("--out", "--set", "--seed", "--res"):  # folder, fields or default differ by command, not the form
        meanings = {k: v[:2] + v[3:5] + (v[5],) * (flag in ("--seed", "--res")) for k, v in meanings.items()}
    assert len(set(meanings.values())) == 1, meanings


@pytest.mark.parametrize("path", RUN_COMMANDS, ids=" ".join)
def test_every_run_command_has_device_threads_and_out(path):
    opts = _options(COMMANDS[path])
    assert opts["--device"].choices == ["auto", "cpu", "cuda"] and opts["--device"].default == "auto"
    assert opts["--threads"].default == 1 and opts["--out"].required
    if path != ("spectra",):
        assert opts["--seeds"].default == 1 and opts["--first-seed"].default == 0


def test_disjoint_seed_ranges_share_one_run_folder_and_a_last_run_aggregates_them(tmp_path, capsys):
    import json

    out = str(tmp_path / "run")
    common = ["pose", "run", "--preset", "tiny", "--methods", "raw_pair", "--out", out, "--no-progress"]
    assert main([*common, "--seeds", "1", "--first-seed", "1"]) == 0   # a second process's share
    first = json.loads((tmp_path / "run" / "results.json").read_text())
    assert first["methods"]["raw_pair"]["seeds"] == [1]
    assert main([*common, "--seeds", "2"]) == 0                        # seed 0 runs, seed 1 is resumed
    both = json.loads((tmp_path / "run" / "results.json").read_text())
    assert both["methods"]["raw_pair"]["seeds"] == [0, 1]
    assert sorted(p.name for p in (tmp_path / "run" / "raw_pair").iterdir()) == ["seed0", "seed1"]
    capsys.readouterr()
    assert main([*common, "--first-seed", "-1"]) == 2
    assert "--first-seed must be >= 0, got -1" in capsys.readouterr().err


def test_the_domain_is_positional_or_a_flag_in_every_domain_command():
    for path in (("domain", "info"), ("domain", "spectrum"), ("spectra",)):
        parser = COMMANDS[path]
        positional = [a for a in parser._actions if a.dest == "domain" and not a.option_strings]
        assert positional and "--domain" in _options(parser), path


@pytest.mark.parametrize(("grid", "res", "shape"), [
    ("dh", 16, (16, 16)),          # rows, in every command (it was the bandwidth in `niso domain`)
    ("centred", 16, (16, 32)),
    ("equiangular", 9, (9, 18)),   # rings through the poles
    ("gl", 8, (8, 16)),
])
def test_grid_and_res_mean_rows_of_the_same_grid_in_domain_and_spectra(grid, res, shape, tmp_path):
    from niso_geom.experiments.spectra import build_problem, preset

    args = build_parser().parse_args(["domain", "info", "sphere", "--grid", grid, "--res", str(res)])
    assert build_domain(args).shape == shape
    cfg = preset("tiny", "sphere", grid=grid, res=res, k=16, lmax=3)
    assert build_problem(cfg).domain.shape == shape


def test_spectra_takes_the_domain_either_way_and_refuses_two_different_ones(tmp_path, capsys):
    assert main(["spectra", "sphere", "--preset", "tiny", "--steps", "2", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    assert main(["spectra", "--domain", "icosphere", "--preset", "tiny", "--steps", "2", "--out",
                 str(tmp_path / "b"), "--no-progress"]) == 0
    with pytest.raises(SystemExit, match="the domain is given twice"):
        main(["spectra", "torus", "--domain", "sphere", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="--res 8: the torus has a grid size"):
        main(["spectra", "torus", "--res", "8", "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="square tori"):
        main(["spectra", "torus", "--size", "8x6", "--out", str(tmp_path / "c")])


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("niso ")
