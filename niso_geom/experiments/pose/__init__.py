"""Pose from τ: a synthetic, CPU-sized version of the paper's relative camera pose experiment (Table 3).

The paper (``docs/algorithm.md`` §3.6–3.7) pre-trains NIso on pairs of CO3D frames, freezes it,
and regresses the relative camera pose between two frames from their isometric map τ alone
(flatten τ → skip-MLP → 9 numbers → SE(3)). CO3D is several TB; here the frames are spherical
signals seen before and after a known rotation (``docs/pose.md`` has the rationale):

* **Domain**: a cell-centred equiangular grid (16×16 at the cpu preset, harmonics exact to degree 7).
* **Pairs** (:class:`~niso_geom.data.pose_pairs.PosePairs`): C-channel signals of degree ≤ L and
  their exact rotations ``Tx = x(Rᵀ·)``; ``signals="fields"`` (isotropic random fields) or
  ``"cap"`` ("camera" images on a spherical cap around the optical axis); ``rotations="haar"``
  (all of SO(3)) or ``"camera"`` (angle ≤ ``max_angle`` about a random axis). Training pairs are
  drawn online from per-seed streams; every method is evaluated on the same fixed held-out set
  (``eval_seed``; for caps, images from a bank disjoint from the training bank).
* **Target**: R (the rotation between the frames); loss the paper's ``orientation_loss`` (L1
  between rotation matrices) or the chordal one; metric the geodesic angle in degrees.
* **Methods** (``METHODS``, :mod:`.methods`): ``niso`` (τ of a learned, frozen operator),
  ``no_operator`` (τ in a fixed random basis, no mask) and ``raw_pair`` (a CNN on the raw pair);
  closed-form references ``identity`` and ``sh_oracle`` (:func:`.evaluation.references`).

Modules: :mod:`.config` (``PoseConfig``, ``PRESETS``, ``preset``), :mod:`.data` (pairs and
batches), :mod:`.models`, :mod:`.pretrain_operator`, :mod:`.methods`, :mod:`.evaluation`,
:mod:`.run` (``run_method``, ``run``, ``aggregate``), :mod:`.report` (``results.md``, ``errors.png``).

A run folder holds ``config.json``, ``metrics.jsonl`` (one record per finished method/seed),
``<method>/seed<k>/{operator,head}/{metrics.jsonl,checkpoints/}``, ``<method>/seed<k>/result.json``
and ``predictions.npz``, ``results.json`` (``{"methods": {m: {median_deg_mean, median_deg_se,
mean_deg_mean, mean_deg_se, seeds, wall_seconds}}, "references": ...}``), ``results.md`` and
``errors.png``. Interrupted runs resume: finished method/seeds are skipped and unfinished
training continues from its last checkpoint.
"""

from niso_geom.experiments.pose.config import PRESETS, PoseConfig, build_grid, preset, validate
from niso_geom.experiments.pose.data import PairBatches, build_pairs, eval_chunks
from niso_geom.experiments.pose.errors import PoseConfigError
from niso_geom.experiments.pose.evaluation import error_summary, predict, references
from niso_geom.experiments.pose.methods import METHODS, MethodContext, MethodSetup
from niso_geom.experiments.pose.models import (
    OperatorPairs,
    PoseRegressor,
    RawPairCNN,
    random_basis,
    raw_features,
)
from niso_geom.experiments.pose.pretrain_operator import operator_diagnostics, train_operator
from niso_geom.experiments.pose.report import (
    METHOD_LABELS,
    SUMMARY_HEADERS,
    make_figure,
    summary_rows,
    write_markdown,
)
from niso_geom.experiments.pose.run import aggregate, run, run_method

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "PRESETS",
    "SUMMARY_HEADERS",
    "MethodContext",
    "MethodSetup",
    "OperatorPairs",
    "PairBatches",
    "PoseConfig",
    "PoseConfigError",
    "PoseRegressor",
    "RawPairCNN",
    "aggregate",
    "build_grid",
    "build_pairs",
    "error_summary",
    "eval_chunks",
    "make_figure",
    "operator_diagnostics",
    "predict",
    "preset",
    "random_basis",
    "raw_features",
    "references",
    "run",
    "run_method",
    "summary_rows",
    "train_operator",
    "validate",
    "write_markdown",
]
