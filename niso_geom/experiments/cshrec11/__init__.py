"""Conformal SHREC'11 shape classification: NIso against baselines (the paper's Table 2).

Data (:func:`~niso_geom.data.cshrec11.load_cshrec11`): heat kernel signatures (16 channels) of
the SHREC'11 meshes pulled back to an equiangular sphere grid through a conformal map, each
mesh under V = 1 + T views (view 0 = the map itself, views 1..T = random Möbius transforms of
it); per seed k the split with split seed k (10 train / 4 test meshes per class), normalized
with its train statistics. Every model sees random views of **train** meshes only; every
accuracy is over **every view of every held-out test mesh**.

Modules, one concept each:

* :mod:`.config` — :class:`CShrec11Config` (checked on construction), :data:`PRESETS`, :func:`preset`;
* :mod:`.views` — per-mesh view tables, the pre-training pair sampler, labelled-view batches,
  :func:`map_views` (DDP-sharded feature passes), predictions and confusion matrices;
* :mod:`.data` — the dataset of a config and each seed's split in memory (:class:`SeedData`);
* :mod:`.models` — NIso, the plain autoencoder, the OrthNet head, :class:`NIsoClassifier`;
* :mod:`.diagnostics` — equivariance error, learned mass vs sin θ, SH-degree purity;
* :mod:`.methods` — :data:`METHODS`, the registry of the six methods (``niso``, ``niso_frozen``,
  ``ae_aug``, ``cnn_aug``, ``sh_power``, ``e3nn_sh``);
* :mod:`.runner` — :func:`run` (every method and seed, resumable; ``results.json``) and :func:`run_method`;
* :mod:`.report` — ``results.md``, ``confusion.png``, ``mass_map.png``, the summary table.

Details and results: ``docs/cshrec11.md``.
"""

from __future__ import annotations

from .config import PRESETS, CShrec11Config, preset
from .data import NUM_CHANNELS, SeedData, class_subset, image_table, load_data, seed_data
from .diagnostics import equivariance_error, mass_map, spectral_summary
from .errors import ConfigError
from .methods import METHODS, ClassifierMethod, method_info, method_spec
from .models import NIsoClassifier, build_ae, build_niso, build_orthnet
from .report import METHOD_LABELS, PAPER_RESULTS, SUMMARY_HEADERS, summary_rows
from .runner import pick_device, run, run_method
from .views import LabelledViews, ViewPairs, ViewTable, confusion_matrix, map_views, predict_views

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "NUM_CHANNELS",
    "PAPER_RESULTS",
    "PRESETS",
    "SUMMARY_HEADERS",
    "CShrec11Config",
    "ClassifierMethod",
    "ConfigError",
    "LabelledViews",
    "NIsoClassifier",
    "SeedData",
    "ViewPairs",
    "ViewTable",
    "build_ae",
    "build_niso",
    "build_orthnet",
    "class_subset",
    "confusion_matrix",
    "equivariance_error",
    "image_table",
    "load_data",
    "map_views",
    "mass_map",
    "method_info",
    "method_spec",
    "pick_device",
    "predict_views",
    "preset",
    "run",
    "run_method",
    "seed_data",
    "spectral_summary",
    "summary_rows",
]
