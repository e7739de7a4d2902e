"""The distribution's package list matches the source tree (a package left out of pyproject.toml
would be missing from the wheel while every test from the checkout still passes)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_in_the_tree_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "niso_geom").rglob("__init__.py")}
    tree |= {"niso_geom.baselines"}
    assert cfg["package-dir"] == {"niso_geom.baselines": "baselines"}
    assert (ROOT / "baselines" / "__init__.py").is_file()
    assert listed == tree, f"missing: {sorted(tree - listed)}, stale: {sorted(listed - tree)}"


def test_no_top_level_baselines_package_is_importable_from_outside_the_checkout(tmp_path, monkeypatch):
    import importlib.util
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != ROOT])
    sys.modules.pop("baselines", None)
    assert importlib.util.find_spec("niso_geom.baselines.sh_power") is not None
    spec = importlib.util.find_spec("baselines")  # tests/baselines may be a namespace on sys.path
    assert spec is None or str(ROOT / "baselines") not in list(spec.submodule_search_locations or [])


def test_top_level_names_are_exported_and_load():
    import niso_geom

    assert niso_geom.__all__ == sorted(niso_geom._LAZY) + ["__version__"]
    assert all(getattr(niso_geom, name) is not None for name in niso_geom.__all__)
