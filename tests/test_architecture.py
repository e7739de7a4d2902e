"""The shape of the package: imports only go down the floors, experiments stay small, one loss and
one training loop, and the geometry core imports without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "niso_geom"

# a module may import from its own floor and the floors below, never from one above
FLOORS = {
    "errors": 0, "runio": 0, "threads": 0, "cache": 0, "shared_data": 0,
    "geometry": 1,
    "harmonics": 2,
    "spectral": 3, "niso": 3, "equivariant": 3, "train": 3,
    "domains": 4, "plotting": 4,
    "data": 5, "baselines": 5,
    "experiments": 6,
    "cli": 7,
}


def _modules() -> list[tuple[str, Path]]:
    mods = []
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods.append((".".join(p for p in parts if p != "__init__"), path))
    for path in sorted((ROOT / "baselines").glob("*.py")):
        mods.append(("niso_geom.baselines" + ("" if path.stem == "__init__" else "." + path.stem), path))
    return mods


def _root_exports() -> dict[str, str]:
    """name -> the module ``niso_geom/__init__.py`` takes it from."""
    out = {}
    for node in ast.parse((PKG / "__init__.py").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = node.module
    return out


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def _imports(path: Path, exports: dict[str, str]) -> list[tuple[str, int]]:
    """Every ``niso_geom`` module imported by the file, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("niso_geom")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("niso_geom"):
            if node.module == "niso_geom":  # from niso_geom import plotting / TorusGrid
                found += [(exports.get(a.name, f"niso_geom.{a.name}"), node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def test_no_module_imports_from_a_floor_above_its_own():
    exports = _root_exports()
    upward = []
    for module, path in _modules():
        mine = _floor(module)
        if mine is None:
            continue
        for target, line in _imports(path, exports):
            theirs = _floor(target)
            if theirs is not None and theirs > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({module}) imports {target}")
    assert not upward, "\n".join(upward)


def test_every_module_has_a_floor():
    missing = sorted({m.split(".")[1] for m, _ in _modules() if "." in m} - set(FLOORS))
    assert not missing, f"add these to FLOORS: {missing}"


@pytest.mark.parametrize("package", ["spectra", "homnist", "cshrec11", "pose"])
def test_experiments_are_packages_of_small_modules(package):
    folder = PKG / "experiments" / package
    assert (folder / "__init__.py").is_file()
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert max(sizes.values()) <= 400, sizes


def test_one_loss_and_one_training_loop():
    """Only niso.losses defines the NIso objective and only train.loop steps an optimizer."""
    defines_objective, steps_optimizer = [], []
    for module, path in _modules():
        text = path.read_text()
        if "multiplicity_loss(" in text and "def multiplicity_loss" not in text and module != "niso_geom.niso.losses":
            defines_objective.append(module)
        if re.search(r"^\s*\w*opt\w*\.step\(", text, re.M) and module != "niso_geom.train.loop":
            steps_optimizer.append(module)
    assert defines_objective == []
    assert steps_optimizer == [], steps_optimizer


def test_the_geometry_core_imports_without_torch():
    code = ("import sys; import niso_geom.geometry, niso_geom.harmonics, niso_geom.spectral.compare, "
            "niso_geom.domains; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
