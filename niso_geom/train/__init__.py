"""Training: the one loop of every run (:func:`fit`), its schedule, checkpoints, devices, DDP.

``niso_geom.train`` sits beside ``niso_geom.niso`` in the import graph: it knows nothing about
Neural Isometries — a model, a batch source and a loss are all it needs.
"""

from __future__ import annotations

from niso_geom.train.checkpoints import (
    CorruptCheckpointError,
    LoadedCheckpoint,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_intact,
    prune_checkpoints,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from niso_geom.train.device import (
    DEVICES,
    DeviceUnavailableError,
    autocast,
    resolve_amp_dtype,
    resolve_device,
)
from niso_geom.train.loop import (
    BatchSource,
    FitResult,
    Hook,
    LossFn,
    TrainSettings,
    config_digest,
    fit,
    pretrain,
    verify_resume,
)
from niso_geom.train.metrics import MetricsLog
from niso_geom.train.schedule import (
    WarmupCosine,
    make_optimizer,
    make_scheduler,
    warmup_cosine,
)

__all__ = [
    "DEVICES",
    "BatchSource",
    "CorruptCheckpointError",
    "DeviceUnavailableError",
    "FitResult",
    "Hook",
    "LoadedCheckpoint",
    "LossFn",
    "MetricsLog",
    "TrainSettings",
    "WarmupCosine",
    "autocast",
    "checkpoint_name",
    "config_digest",
    "fit",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_intact",
    "make_optimizer",
    "make_scheduler",
    "pretrain",
    "prune_checkpoints",
    "read_checkpoint",
    "resolve_amp_dtype",
    "resolve_device",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "verify_resume",
    "warmup_cosine",
]
