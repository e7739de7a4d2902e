"""niso_geom: learned-versus-analytic geometry.

Domains that carry their ground-truth Laplacian, mass and analytic harmonics
(:class:`TorusGrid`, :class:`SphereGrid`, :class:`TriMesh`), and a PyTorch
implementation of Neural Isometries (``niso_geom.niso``) whose learned operator
can be held against them (``niso_geom.spectral.compare``).

The geometry core (``geometry``, ``harmonics``, ``spectral``, ``domains``) imports
without torch; the top-level names below are loaded lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the distribution version too (pyproject.toml reads it)

_LAZY = {
    "TorusGrid": "niso_geom.domains.torus",
    "SphereGrid": "niso_geom.domains.sphere",
    "TriMesh": "niso_geom.domains.mesh",
    "Eigenbasis": "niso_geom.spectral.eigenbasis",
    "DiskCache": "niso_geom.cache",
}

__all__ = ["DiskCache", "Eigenbasis", "SphereGrid", "TorusGrid", "TriMesh", "__version__"]  # = _LAZY + version

if TYPE_CHECKING:  # pragma: no cover
    from niso_geom.cache import DiskCache
    from niso_geom.domains.mesh import TriMesh
    from niso_geom.domains.sphere import SphereGrid
    from niso_geom.domains.torus import TorusGrid
    from niso_geom.spectral.eigenbasis import Eigenbasis


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'niso_geom' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
