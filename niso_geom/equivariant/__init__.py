"""Equivariant networks on NIso latent coefficients ``(..., K, C)``.

* :class:`SpectralType` — the block structure of the K axis (e3nn's ``Irreps`` analogue).
* Block-equivariant layers: :class:`BlockLinear`, :class:`NormActivation`,
  :class:`InvariantPool`, :class:`BlockGramHead`.
* The paper's O(K)-invariant classifier: :class:`OrthNet` and its parts.
* :func:`assert_equivariant` — float64 equivariance / invariance check.
* e3nn interop (``niso_geom.equivariant.e3nn_bridge``, imported lazily): :class:`E3nnBridge`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from niso_geom.equivariant.layers import (
    BlockGramHead,
    BlockLinear,
    InvariantPool,
    NormActivation,
    block_gram,
    block_sq_norms,
)
from niso_geom.equivariant.orthnet import OrthMLP, OrthNet, OrthNeuron, OrthNorm, OrthOut
from niso_geom.equivariant.testing import (
    EquivariantModule,
    assert_equivariant,
    block_action,
    orthogonal_action,
    rotation_action,
)
from niso_geom.equivariant.types import (
    SpectralTerm,
    SpectralType,
    block_diag,
    random_orthogonal,
    random_rotation,
)

_LAZY = {
    "E3nnBridge": "niso_geom.equivariant.e3nn_bridge",
    "E3nnAdapter": "niso_geom.equivariant.e3nn_bridge",
    "e3nn_change_of_basis": "niso_geom.equivariant.e3nn_bridge",
    "irreps_from_type": "niso_geom.equivariant.e3nn_bridge",
}

if TYPE_CHECKING:  # pragma: no cover
    from niso_geom.equivariant.e3nn_bridge import (
        E3nnAdapter,
        E3nnBridge,
        e3nn_change_of_basis,
        irreps_from_type,
    )

__all__ = sorted(
    [
        "SpectralTerm",
        "SpectralType",
        "block_diag",
        "random_orthogonal",
        "random_rotation",
        "BlockLinear",
        "NormActivation",
        "InvariantPool",
        "BlockGramHead",
        "block_gram",
        "block_sq_norms",
        "OrthNeuron",
        "OrthNorm",
        "OrthMLP",
        "OrthOut",
        "OrthNet",
        "EquivariantModule",
        "assert_equivariant",
        "block_action",
        "orthogonal_action",
        "rotation_action",
        *_LAZY,
    ]
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'niso_geom.equivariant' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
