"""The torus's shift group through the Domain API; the base Domain has no group."""

import numpy as np
import pytest
import scipy.sparse as sp

from niso_geom import TorusGrid
from niso_geom.domains.base import Domain
from niso_geom.errors import NisoGeomError, NoSymmetryGroupError


@pytest.mark.parametrize("stencil", ["5pt", "9pt"])
def test_torus_generators_are_permutations_commuting_with_the_stencil(stencil):
    t = TorusGrid(7, 10, stencil=stencil)
    S = t.stiffness
    gens = t.generators()
    assert len(gens) == 2
    for P in gens:
        assert sp.issparse(P) and P.shape == (t.n, t.n)
        A = P.toarray()
        assert set(np.unique(A)) == {0.0, 1.0}
        np.testing.assert_array_equal(A.sum(0), 1)
        np.testing.assert_array_equal(A.sum(1), 1)
        assert abs(P @ S - S @ P).max() == 0  # the stencil is the same at every cell: exact
    # the two unit shifts have orders h and w and commute
    Pi, Pj = gens
    assert abs(Pi @ Pj - Pj @ Pi).max() == 0
    np.testing.assert_array_equal((Pi**7).toarray(), np.eye(t.n))
    np.testing.assert_array_equal((Pj**10).toarray(), np.eye(t.n))


def test_torus_transform_is_the_shift_on_every_layout(rng):
    t = TorusGrid(6, 8)
    shifts = t.sample_transform(rng, size=5)
    assert shifts.shape == (5, 2) and shifts[:, 0].max() < 6 and shifts[:, 1].max() < 8
    di, dj = t.sample_transform(rng)
    img = rng.standard_normal((3, 6, 8))  # (C, h, w)
    expected = np.roll(img, (di, dj), axis=(1, 2))
    np.testing.assert_array_equal(t.shift_grid(img, di, dj), expected)
    x = t.to_flat(img)  # (N, C)
    np.testing.assert_array_equal(t.transform(x, (di, dj)), t.to_flat(expected))
    np.testing.assert_array_equal(t.transform(x[:, 1], (di, dj)), t.to_flat(expected)[:, 1])
    batch = np.stack([x, 2 * x])  # (B, N, C)
    np.testing.assert_array_equal(t.transform(batch, (di, dj)), np.stack([t.to_flat(expected), 2 * t.to_flat(expected)]))
    # (Tx)[i, j] = x[i − di, j − dj], and the shift matrix is the same map
    g = t.to_grid(t.transform(x, (di, dj)))
    assert g[1, (2 + di) % 6, (5 + dj) % 8] == img[1, 2, 5]
    np.testing.assert_array_equal(t.shift_matrix(di, dj) @ x, t.transform(x, (di, dj)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 48, C\)"):
        t.transform(rng.standard_normal((47, 2)), (1, 1))


class _Bare(Domain):
    points = np.zeros((3, 2))
    mass = np.ones(3)
    stiffness = sp.csr_matrix((3, 3))

    def params(self):
        return {"label": "bare"}


def test_domain_without_group_raises_a_named_error(rng):
    d = _Bare()
    for call in (lambda: d.sample_transform(rng), lambda: d.transform(np.zeros(3), None), d.generators):
        with pytest.raises(NoSymmetryGroupError, match=r"_Bare\(label='bare'\) has no known symmetry group"):
            call()
    assert issubclass(NoSymmetryGroupError, NisoGeomError) and issubclass(NoSymmetryGroupError, NotImplementedError)
