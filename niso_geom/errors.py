"""Exceptions raised by niso_geom. Each names the offending file, index or value."""

from __future__ import annotations


class NisoGeomError(Exception):
    """Base class of every error raised on purpose by niso_geom."""


class MeshError(NisoGeomError, ValueError):
    """A triangle mesh is malformed (NaN coordinates, bad face index, non-manifold edge, ...)."""


class EigenSolveError(NisoGeomError, RuntimeError):
    """Every eigensolver strategy failed; the message carries diagnostics."""


class DataError(NisoGeomError, FileNotFoundError):
    """Shared data is missing or does not match its checksum."""


class NoAnalyticBasisError(NisoGeomError, NotImplementedError):
    """The domain has no closed-form eigenbasis (e.g. a general triangle mesh)."""


class RunDirError(NisoGeomError, ValueError):
    """A run directory cannot be resumed (different configuration, missing checkpoint, ...)."""


class NoSymmetryGroupError(NisoGeomError, NotImplementedError):
    """The domain has no known symmetry group (no sample_transform / transform / generators)."""


class NotASymmetryError(NisoGeomError, ValueError):
    """A transformation does not map the domain onto itself (e.g. a rotation that moves mesh vertices
    off the vertex set); the message names the worst point and its distance."""
class CacheError(NisoGeomError, ValueError):
    """A cache operation was refused (e.g. a namespace that would reach outside the cache root)."""


class UsageError(NisoGeomError, ValueError):
    """A command-line flag or argument has a value that cannot be used; the message names both."""


class NumericalError(NisoGeomError, ArithmeticError):
    """An input to a numerical routine is non-finite, or a result would be silently wrong."""
