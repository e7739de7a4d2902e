"""The spectra experiment: learn an operator from transformed signals (identity encoder, as the
paper's toric and spherical Laplacian experiments) and measure it against the analytic one.

* :mod:`.config` — :class:`SpectraConfig` (the paper's method + ``extras``, the tie-breakers), presets;
* :mod:`.problem` — the domain, its ground truth, the pair sampler and the group's generators;
* :mod:`.objective` — the batch source, the loss (the one NIso objective + the extras) and hooks;
* :mod:`.run` — :func:`train` through :func:`niso_geom.train.fit`, :func:`load_run`;
* :mod:`.report` — :func:`evaluate` on held-out pairs, ``report.json``/``report.md``, figures.
"""

from niso_geom.experiments.spectra.config import (
    DOMAINS,
    PRESETS,
    SpectraConfig,
    preset,
    preset_help,
)
from niso_geom.experiments.spectra.objective import (
    ClusterRotationHook,
    SpectraBatches,
    SpectraObjective,
    signal_moment,
    train_step,
)
from niso_geom.experiments.spectra.problem import Problem, build_problem
from niso_geom.experiments.spectra.report import SUMMARY_KEYS, evaluate, make_figures, write_report
from niso_geom.experiments.spectra.run import (
    build_training,
    load_run,
    make_operator,
    operator_param_groups,
    train,
)

__all__ = [
    "DOMAINS",
    "PRESETS",
    "SUMMARY_KEYS",
    "ClusterRotationHook",
    "Problem",
    "SpectraBatches",
    "SpectraConfig",
    "SpectraObjective",
    "build_problem",
    "build_training",
    "evaluate",
    "load_run",
    "make_figures",
    "make_operator",
    "operator_param_groups",
    "preset",
    "preset_help",
    "signal_moment",
    "train",
    "train_step",
    "write_report",
]
