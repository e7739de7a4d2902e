"""Homography-perturbed MNIST (homNIST): NIso pre-training, an O(K)-invariant classifier trained on
clean digits, evaluation on homography-warped test digits (the paper's Table 1).

Pipeline for one method and one seed (``docs/homnist.md`` has the rationale):

1. **Pre-training** on MNIST training digits padded to 40×40 (values in [−1, 1], background −1):
   pairs (x, T x) with T a random homography from the reference's Gaussian sl(3) sampler
   (:class:`~niso_geom.data.homnist.HomographyPairSampler`), the NIso objective of
   :class:`~niso_geom.niso.autoencoder.NIsoAutoencoder` (recon + α·equiv + β·mult).
   Methods (:data:`METHODS`): ``niso`` (the config's α, β; the paper's 0.5, 0.1),
   ``niso_no_equiv`` (α = 0), ``niso_no_mult`` (β = 0), ``niso_triplets`` (views x, T1 x,
   T2 T1 x; τ12 τ01 must carry x to T2 T1 x), and ``ae_aug`` (the same encoder/decoder as a
   plain autoencoder on the same homography-augmented batches).
2. **Classifier** on the frozen encoder, trained on *clean* labelled training digits for every
   default method: NIso methods cache their spectral coefficients Φᵀ M E(x) (the operator frozen
   too, fixing ``docs/algorithm.md`` §7 item 8) and train the paper's O(K)-invariant
   :class:`~niso_geom.equivariant.OrthNet` on them; ``ae_aug`` caches the grid latents E(x) of
   the same clean digits and trains a standard CNN head (:class:`LatentCNN`) with the same
   number of steps and batch size. Homographies reach ``ae_aug`` only through its unlabelled
   pre-training, as they reach NIso; the extra method ``ae_aug_labels`` (not run by default)
   trains the same CNN head on homography-augmented labelled digits instead.
   With ``head_train_kernel`` (the official protocol, :data:`OFFICIAL_HEAD`) NIso heads take the
   cached latents E(x) and train Φ and M with OrthNet (:class:`KernelHead`).
3. **Evaluation** on held-out data only: the homNIST test set (MNIST *test* digits, each warped
   by 32 homographies from the homNIST Metropolis sampler; labels (N,), §7 item 7), or a seeded
   random subset of ``test_digits`` digits; plus, as a diagnostic, the clean versions of the same
   digits. Every accuracy comes with its standard error across test digits.

Modules: :mod:`.config` (config, presets), :mod:`.data` (digits, homography views),
:mod:`.methods` (the method registry), :mod:`.models` (autoencoder, heads), :mod:`.pipeline`
(one method and seed), :mod:`.runner` (methods × seeds, the run folder), :mod:`.report`
(tables, ``results.md``), :mod:`.equivariance` (the ``niso homnist equivariance`` diagnostic).
"""

from niso_geom.experiments.common import TensorBatches
from niso_geom.experiments.homnist.config import (
    HEAD_NORMS,
    INITS,
    OFFICIAL_HEAD,
    PRESETS,
    TEST_PICKS,
    HomNISTConfig,
    HomNISTConfigError,
    load_run_config,
    preset,
)
from niso_geom.experiments.homnist.data import (
    HomNISTData,
    HomographyViews,
    load_data,
    load_test_digits,
    load_train_digits,
    per_digit_correct,
    test_digit_indices,
    to_dual,
)
from niso_geom.experiments.homnist.equivariance import equivariance_report, pair_residuals
from niso_geom.experiments.homnist.methods import (
    KINDS,
    METHODS,
    MethodSpec,
    method_spec,
    niso_methods,
)
from niso_geom.experiments.homnist.models import (
    NUM_CLASSES,
    FeatureNoise,
    KernelHead,
    LatentCNN,
    build_autoencoder,
    build_head,
    encode_features,
    encoder_cost,
    head_input,
)
from niso_geom.experiments.homnist.pipeline import (
    digit_standard_error,
    evaluate,
    head_features,
    run_method,
)
from niso_geom.experiments.homnist.report import (
    METHOD_LABELS,
    PAPER_RESULTS,
    SUMMARY_HEADERS,
    summary_rows,
)
from niso_geom.experiments.homnist.runner import (
    aggregate,
    run,
)

__all__ = [
    "HEAD_NORMS",
    "INITS",
    "KINDS",
    "METHODS",
    "METHOD_LABELS",
    "NUM_CLASSES",
    "OFFICIAL_HEAD",
    "PAPER_RESULTS",
    "PRESETS",
    "SUMMARY_HEADERS",
    "TEST_PICKS",
    "FeatureNoise",
    "HomNISTConfig",
    "HomNISTConfigError",
    "HomNISTData",
    "HomographyViews",
    "KernelHead",
    "LatentCNN",
    "MethodSpec",
    "TensorBatches",
    "aggregate",
    "build_autoencoder",
    "build_head",
    "digit_standard_error",
    "encode_features",
    "encoder_cost",
    "equivariance_report",
    "evaluate",
    "head_features",
    "head_input",
    "load_data",
    "load_run_config",
    "load_test_digits",
    "load_train_digits",
    "method_spec",
    "niso_methods",
    "pair_residuals",
    "per_digit_correct",
    "preset",
    "run",
    "run_method",
    "summary_rows",
    "test_digit_indices",
    "to_dual",
]
