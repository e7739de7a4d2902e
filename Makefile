# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   -> create .venv (torch==2.13.0 first), run the main job
#   make test   -> create .venv, run the test suite (the docs build --strict included)
#   make docs   -> build the documentation site into site/
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= runs/demo

.PHONY: venv demo test docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[plot,dev,docs]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# the main job: learn the spherical and toric Laplacians (cpu preset) and compare with the analytic ones;
# the quick sphere run first, so that a finished report with figures is there within minutes
demo: $(STAMP)
	$(VENV)/bin/niso spectra sphere --preset cpu --out $(OUT)/sphere
	$(VENV)/bin/niso spectra torus --preset cpu --out $(OUT)/torus
	$(VENV)/bin/niso spectra sphere --preset cpu --grid centred --out $(OUT)/sphere-centred
	$(VENV)/bin/niso tour --out $(OUT)/tour

test: $(STAMP)
	$(PY) -m pytest -q tests

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

bench: $(STAMP)
	$(PY) benchmarks/eigensolve.py

clean:
	rm -rf $(VENV) runs
