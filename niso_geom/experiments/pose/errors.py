"""The pose experiment's errors: each a :class:`~niso_geom.errors.NisoGeomError`, so the CLI prints
one ``niso: error:`` line (exit status 2) instead of a traceback."""

from __future__ import annotations

from niso_geom.errors import NisoGeomError

__all__ = ["PoseConfigError"]


class PoseConfigError(NisoGeomError, ValueError):
    """A pose config that cannot run: unknown preset or key, unparsable value, inconsistent fields."""

