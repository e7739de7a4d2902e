"""Figures: HEALPix maps through healpy's Mollweide projector, meshes as coloured surfaces."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="figures need the plot extra (matplotlib)")

from niso_geom import SphereGrid, TriMesh, plotting


def test_healpix_map_is_drawn_in_mollweide_north_up_east_right():
    g = SphereGrid.healpix(8)
    xyz = g.points
    for coord, (rows, cols) in {2: ("top", None), 1: (None, "right")}.items():  # f = z, then f = y
        fig = plotting.plot_field(g, xyz[:, coord], symmetric=False)
        image = fig.axes[0].images[0]
        img = image.get_array()
        h, w = img.shape
        assert image.origin == "lower" and np.ma.count_masked(img) > 0  # outside the ellipse
        assert set(np.unique(img.compressed())) <= set(xyz[:, coord])  # pixel values, not interpolated
        if rows == "top":  # north pole at the top (last rows with origin="lower")
            assert img[int(0.9 * h), w // 2] > 0.8 and img[int(0.1 * h), w // 2] < -0.8
        else:  # longitude 90° (y > 0) on the right half: geographic, not astronomical, orientation
            assert img[h // 2, int(0.75 * w)] > 0.9 and img[h // 2, int(0.25 * w)] < -0.9
        plotting.pyplot().close(fig)


def test_mesh_faces_are_coloured_by_their_vertex_mean():
    m = TriMesh.icosphere(1)
    f = m.vertices[:, 2]
    fig = plotting.plot_field(m, f)
    surf = fig.axes[0].collections[0]
    assert len(surf.get_array()) == len(m.faces)
    assert np.allclose(surf.get_array(), f[m.faces].mean(axis=1))
    plotting.pyplot().close(fig)


def test_eigenfunction_grid_picks_the_axis_each_domain_needs():
    assert plotting.axis_projection(TriMesh.icosphere(1)) == "3d"
    assert plotting.axis_projection(SphereGrid.healpix(2)) is None
    assert plotting.axis_projection(SphereGrid.driscoll_healy(2)) is None
