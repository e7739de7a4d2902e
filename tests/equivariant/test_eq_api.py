"""The public namespace of niso_geom.equivariant resolves, incl. the lazily imported bridge."""

from __future__ import annotations

import niso_geom.equivariant as eq


def test_all_names_resolve():
    for name in eq.__all__:
        assert getattr(eq, name) is not None, name
    assert eq.E3nnBridge.__module__ == "niso_geom.equivariant.e3nn_bridge"
    assert set(eq.__all__) <= set(dir(eq))
