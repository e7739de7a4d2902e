"""A run's metrics: ``metrics.jsonl`` (one JSON record per logged step) and, on request, TensorBoard."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from niso_geom.errors import NisoGeomError
from niso_geom.runio import append_jsonl, truncate_jsonl

log = logging.getLogger(__name__)

__all__ = ["MetricsLog"]


class MetricsLog:
    """Appends records ``{"step": n, ...}`` to ``path`` (None: records are only passed to TensorBoard).

    On resume from step ``resume_step`` the records after it are dropped first (they belong to the
    steps that will run again); a fresh run (``resume_step = 0``) starts an empty file. With
    ``tensorboard`` set, every numeric value is also written as a scalar to a
    ``torch.utils.tensorboard.SummaryWriter`` in that folder (needs the ``tensorboard`` package).
    """

    def __init__(self, path: Path | None, resume_step: int = 0, *, tensorboard: Path | None = None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._tb = None
        if path is not None:
            if resume_step > 0:
                truncate_jsonl(path, lambda rec: _step(rec) <= resume_step)
            elif path.exists():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import (
                    SummaryWriter,  # optional: needs the tensorboard package
                )
            except ImportError as exc:
                raise NisoGeomError("TensorBoard logging needs the 'tensorboard' package: pip install tensorboard"
                                    ) from exc
            self._tb = SummaryWriter(str(tensorboard), purge_step=resume_step + 1 if resume_step else None)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (it must carry ``step``)."""
        if self._file is not None:
            append_jsonl(self.path, record, file=self._file)
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, int(record["step"]))

    def flush(self) -> None:
        """Push buffered records to disk (called before every checkpoint)."""
        if self._file is not None:
            self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _step(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("step", 0))
    except (TypeError, ValueError):
        return 0
