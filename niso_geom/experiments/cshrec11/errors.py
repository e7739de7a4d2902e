"""Errors of the conformal SHREC'11 experiment (one line each, naming the field or value)."""

from __future__ import annotations

from niso_geom.errors import NisoGeomError

__all__ = ["ConfigError"]


class ConfigError(NisoGeomError, ValueError):
    """A config field (preset, override or class list) with a value the experiment cannot run."""

