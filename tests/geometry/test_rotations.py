"""Rotation matrices and point-set symmetries of the geometry core."""

import numpy as np
import pytest

from niso_geom.errors import NotASymmetryError
from niso_geom.geometry.rotations import axis_rotation, rotation_about
from niso_geom.geometry.symmetry import close_rotation_group, permutation_matrix, point_permutation


def test_axis_rotation_is_rodrigues_about_the_coordinate_axis_and_right_handed():
    for axis in range(3):
        e = np.eye(3)[axis]
        R = axis_rotation(axis, 0.7)
        np.testing.assert_allclose(R, rotation_about(e, 0.7), atol=1e-15)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-15)
        assert np.linalg.det(R) == pytest.approx(1.0)
        # right-handed: e_{a+1} turns towards e_{a+2}
        assert (R @ np.eye(3)[(axis + 1) % 3])[(axis + 2) % 3] == pytest.approx(np.sin(0.7))
    with pytest.raises(ValueError, match="axis must be 0"):
        axis_rotation(3, 0.1)


def test_rotation_about_fixes_its_axis_and_broadcasts(rng):
    axes = rng.standard_normal((5, 3))
    angles = rng.uniform(-np.pi, np.pi, 5)
    Rs = rotation_about(axes, angles)
    assert Rs.shape == (5, 3, 3)
    for a, t, R in zip(axes, angles, Rs):
        np.testing.assert_allclose(R @ a, a, atol=1e-14)
        np.testing.assert_allclose(R, rotation_about(a, t), atol=0)  # one at a time: the same numbers
        assert np.arccos((np.trace(R) - 1) / 2) == pytest.approx(abs(t))
    np.testing.assert_allclose(np.einsum("bij,bkj->bik", Rs, Rs), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-14)
    with pytest.raises(ValueError, match="non-zero"):
        rotation_about(np.zeros(3), 1.0)


def _square():
    return np.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])


def test_point_permutation_of_a_square_and_its_matrix():
    P4 = _square()
    R = axis_rotation(2, np.pi / 2)  # maps point k to point k+1
    src = point_permutation(P4, R)
    np.testing.assert_array_equal(src, [3, 0, 1, 2])  # (P f)(v) = f(Rᵀv): v_r takes the value of v_{r−1}
    f = np.array([10.0, 20, 30, 40])
    np.testing.assert_array_equal(permutation_matrix(src) @ f, f[src])
    # a rotation about the centre of a shifted square
    c = np.array([2.0, -1.0, 0.5])
    np.testing.assert_array_equal(point_permutation(P4 + c, R, centre=c), src)


def test_point_permutation_names_the_worst_point():
    with pytest.raises(NotASymmetryError, match=r"point \d lands 0\.765 from the nearest point"):
        point_permutation(_square(), axis_rotation(2, np.pi / 4))


def test_closure_of_the_square_group_and_of_the_cube_rotations():
    P4 = _square()
    R = axis_rotation(2, np.pi / 2)
    rots, srcs = close_rotation_group([R], [point_permutation(P4, R)])
    assert len(rots) == 4 and np.array_equal(srcs[0], np.arange(4))
    cube = np.array([[x, y, z] for x in (-1.0, 1) for y in (-1.0, 1) for z in (-1.0, 1)])
    gens = [axis_rotation(2, np.pi / 2), axis_rotation(0, np.pi / 2)]
    rots, srcs = close_rotation_group(gens, [point_permutation(cube, g) for g in gens])
    assert len(rots) == 24  # the chiral octahedral group
    for Rg, s in zip(rots, srcs):  # each rotation matrix carries its own permutation
        np.testing.assert_array_equal(point_permutation(cube, Rg), s)
