"""The documentation site builds with ``mkdocs build --strict`` (broken links, unparsable docstrings
and missing pages fail), and every public package has an API reference page."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_TOOLS = ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material")
NOT_DOCUMENTED = {"cli"}  # the command line is documented by `niso --help` and the README


def _missing_tools() -> list[str]:
    missing = []
    for name in DOCS_TOOLS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def test_every_public_package_has_an_api_page():
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    documented = set(re.findall(r"^::: (niso_geom(?:\.\w+)?)\s*$", pages, re.MULTILINE))
    packages = {p.parent.name for p in (ROOT / "niso_geom").glob("*/__init__.py")} - NOT_DOCUMENTED
    assert {f"niso_geom.{p}" for p in packages} | {"niso_geom"} <= documented


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert {p for p in pages if p not in nav} == set()


@pytest.mark.skipif(bool(_missing_tools()), reason=f"the docs extra is not installed ({', '.join(_missing_tools())} "
                                                   "missing): pip install 'niso_geom[docs]'")
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    domains = (site / "api" / "domains" / "index.html").read_text()
    assert "from_trimesh" in domains and "SphereGrid" in domains  # generated from the docstrings
    assert "homNIST" in (site / "datasets" / "homnist" / "index.html").read_text()  # the dataset card, included


def test_the_home_pages_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "index.md").read_text(), re.DOTALL)
    assert blocks, "docs/index.md lost its example"
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/index.md python block {i}", "exec"), namespace)  # noqa: S102 (the docs example)
    assert namespace["alm"].shape == (28,) and namespace["eb"].evals.shape == (36,)


def test_figure_script_aligns_numeric_eigenspaces_onto_the_analytic_basis():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from niso_geom import TorusGrid

    t = TorusGrid(8, 8, stencil="9pt")  # Fourier modes are exact eigenvectors: alignment is exact
    numeric, analytic = t.eigenbasis(9), t.analytic_eigenbasis(9)
    aligned = module._aligned(numeric, analytic, t.mass)
    assert abs(aligned - analytic.evecs).max() < 1e-10
    assert abs(numeric.evecs - analytic.evecs).max() > 1e-3  # the raw bases differ within eigenspaces
