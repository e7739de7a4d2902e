"""The README's Python snippets and ``niso tour`` run from the built wheel, installed without extras.

How the environment is made, and why it still proves the wheel works on a plain install:

* the wheel is built from a copy of the distribution's sources (``pip wheel --no-deps
  --no-build-isolation``: no network, no build files left in the checkout);
* a fresh virtual environment is created without pip (``python -m venv --without-pip``; pip runs
  from outside with ``pip --python``). Installing torch & co. from an index would take minutes and
  need the network, so the environment sees the dependencies through one ``.pth`` line pointing at
  a folder of links to exactly the distributions in the closure of the wheel's ``Requires-Dist``
  (no extras) — taken from the test's own environment. matplotlib, Pillow and the checkout are
  not in it, so an undeclared import fails as it would for a user;
* the wheel is installed *with* dependency resolution (``--no-index``): pip must find every
  declared requirement, at a matching version, among those linked distributions;
* the snippets run from a scratch directory, and the test checks that ``niso_geom`` was imported
  from the venv's site-packages, not the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DIST_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "niso_geom", "baselines")


def readme_python_blocks() -> list[str]:
    """The ```python blocks of README.md, in order."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 3, "README lost its library tour"
    return blocks


def _dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """Installed distributions needed by ``requirements`` (markers evaluated, no extras), transitively."""
    todo, seen = list(requirements), {}
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = metadata.distribution(req.name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key not in seen:
            seen[key] = dist
            todo += dist.requires or []
    return seen


def _link_distributions(dists: dict[str, metadata.Distribution], folder: Path) -> None:
    """Link each distribution's top-level files and folders (and its .dist-info) into ``folder``."""
    folder.mkdir()
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        for name in tops:
            if (base / name).exists() and not (folder / name).exists():
                (folder / name).symlink_to(base / name)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(wheel path, venv python, venv bin folder) with the wheel installed and no extras."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in DIST_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, cwd=tmp, timeout=300, env=_clean_env())
    (wheel,) = (tmp / "dist").glob("niso_geom-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    deps = _dependency_closure(requires)
    _link_distributions(deps, tmp / "deps")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120,
                   env=_clean_env())
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "_niso_test_deps.pth").write_text(str(tmp / "deps") + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-index", str(wheel)],
                   check=True, cwd=tmp, timeout=300, env=_clean_env())
    return wheel, python, venv / "bin", tmp


def _clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH (it may point at the checkout) and with one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                          timeout=timeout)


RUNNER = r'''
import importlib.util, json, sys
blocks = json.load(open(sys.argv[1]))
namespace = {}
for i, code in enumerate(blocks):
    exec(compile(code, f"README.md python block {i}", "exec"), namespace)
import niso_geom
report = namespace["report"]
print(json.dumps({"file": niso_geom.__file__, "purity_mean": float(report["purity_mean"]),
                  "tau_block_energy": float(report["tau_block_energy"]),
                  "moment_shape": list(namespace["moment"].shape),
                  "extras_importable": [m for m in ("matplotlib", "PIL") if importlib.util.find_spec(m)]}))
'''


def test_the_wheel_holds_license_types_and_metadata(wheel_env):
    wheel, _, bin_dir, tmp = wheel_env
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "niso_geom/py.typed" in names and "niso_geom/baselines/__init__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("baselines/", "tests/")) for n in names)
    assert "License-Expression: MIT" in meta and "Requires-Dist: torch>=2.3" in meta
    version = _run([str(bin_dir / "niso"), "--version"], cwd=tmp)
    assert version.returncode == 0 and version.stdout.strip() == f"niso {metadata.version('niso_geom')}"


def test_readme_python_snippets_run_from_the_installed_wheel(wheel_env, shared_root):
    _, python, _, tmp = wheel_env
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    (work / "blocks.json").write_text(json.dumps(readme_python_blocks()))
    (work / "runner.py").write_text(RUNNER)
    env_root = os.environ.get("NISO_GEOM_DATA")
    os.environ["NISO_GEOM_DATA"] = str(shared_root)  # an installed package has no ../shared/data fallback
    try:
        done = _run([str(python), "runner.py", "blocks.json"], cwd=work, timeout=600)
    finally:
        if env_root is None:
            os.environ.pop("NISO_GEOM_DATA")
        else:
            os.environ["NISO_GEOM_DATA"] = env_root
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(tmp / "venv")), result["file"]  # the wheel's copy, not the checkout
    assert result["extras_importable"] == []  # the snippets ran without matplotlib and Pillow
    assert 0 < result["purity_mean"] <= 1 and 0 < result["tau_block_energy"] <= 1
    assert result["moment_shape"] == [64, 64]


def test_niso_tour_from_the_wheel_names_the_plot_extra_in_one_line(wheel_env):
    _, _, bin_dir, tmp = wheel_env
    out = tmp / "tour"
    done = _run([str(bin_dir / "niso"), "tour", "--out", str(out)], cwd=tmp)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "niso_geom[plot]" in done.stderr and "niso tour" in done.stderr
    assert done.stdout == "" and not out.exists()  # before any work
