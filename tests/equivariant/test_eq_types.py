"""SpectralType: parsing, round trips, spectra clustering, sampling of isometries."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from niso_geom.equivariant import SpectralType, block_diag, random_orthogonal, random_rotation
from niso_geom.harmonics.wigner import wigner_D


def test_parse_dims_and_blocks():
    t = SpectralType("1x1+3x2+5x1")
    assert t.dim == 12
    assert t.num_blocks == 9
    assert t.blocks == (1, 2, 2, 2, 1, 1, 1, 1, 1)
    assert [tuple(term) for term in t] == [(1, 1), (3, 2), (5, 1)]
    assert len(t) == 3 and t[1].mul == 3 and t[1].dim == 2
    assert SpectralType(" 2 x 3 + 4 ") == SpectralType("2x3+1x4")
    assert SpectralType("").dim == 0 and SpectralType(None).num_blocks == 0


@pytest.mark.parametrize("bad", ["2y3", "x3", "1x0", "-1x2", "1x1++1x2", "1.5x2", "abc"])
def test_parse_errors(bad):
    with pytest.raises(ValueError, match="SpectralType"):
        SpectralType(bad)


@pytest.mark.parametrize("s", ["1x[1]+3x[2]+5x[1]", "1x[1]+1x[3]+1x[5]", "2x[4]", "0x[3]+1x[1]", ""])
def test_round_trips(s):
    t = SpectralType(s)
    assert str(t) == s
    assert SpectralType(str(t)) == t
    assert eval(repr(t), {"SpectralType": SpectralType}) == t
    assert pickle.loads(pickle.dumps(t)) == t
    assert hash(SpectralType(s)) == hash(t)
    assert {t: 1}[SpectralType(s)] == 1


def test_equality_is_structural_and_simplify():
    a, b = SpectralType("2x1"), SpectralType("1x1+1x1")
    assert a != b and a.blocks == b.blocks
    assert b.simplify() == a
    assert SpectralType("0x3+2x1+1x1").simplify() == SpectralType("3x1")
    assert SpectralType("1x1") + "2x3" == SpectralType("1x1+2x3")
    assert 2 * SpectralType("1x2") == SpectralType("1x2+1x2")


def test_immutable():
    t = SpectralType("1x2")
    with pytest.raises(AttributeError):
        t.foo = 1
    with pytest.raises(AttributeError):
        t._terms = ()


def test_sphere():
    t = SpectralType.sphere(3)
    assert str(t) == "1x[1]+1x[3]+1x[5]+1x[7]"
    assert t.dim == 16 and t.degrees == (0, 1, 2, 3) and t.is_sphere_aligned
    assert not SpectralType("1x2").is_sphere_aligned
    with pytest.raises(ValueError):
        SpectralType("1x2").degrees
    with pytest.raises(ValueError):
        SpectralType.sphere(-1)


def test_from_block_sizes():
    assert SpectralType.from_block_sizes([1, 3, 3, 1]) == SpectralType("1x1+2x3+1x1")
    assert SpectralType.from_block_sizes([]) == SpectralType("")


def test_slices_cover_axis():
    t = SpectralType("1x1+3x2+1x4")
    sl = t.slices()
    assert [s.stop - s.start for s in sl] == list(t.blocks)
    assert sl[0].start == 0 and sl[-1].stop == t.dim
    assert all(a.stop == b.start for a, b in zip(sl, sl[1:]))
    assert [(s.start, s.stop) for s in t.term_slices()] == [(0, 1), (1, 7), (7, 11)]
    assert t.block_index().tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]


def test_from_evals_sphere_exact_and_noisy():
    lmax = 5
    ev = np.concatenate([np.full(2 * l + 1, l * (l + 1.0)) for l in range(lmax + 1)])
    assert SpectralType.from_evals(ev) == SpectralType.sphere(lmax)
    assert SpectralType.from_evals(torch.tensor(ev)) == SpectralType.sphere(lmax)
    # a learned spectrum is never exactly degenerate: cluster with an absolute gap
    noisy = np.sort(ev + 1e-2 * np.random.default_rng(0).standard_normal(ev.size))
    assert SpectralType.from_evals(noisy, atol=0.5, rtol=0.0) == SpectralType.sphere(lmax)
    assert SpectralType.from_evals(noisy, gap=0.5) == SpectralType.sphere(lmax)
    assert SpectralType.from_evals(noisy, gap=11.0) == SpectralType("1x36")
    assert SpectralType.from_evals(noisy).dim == ev.size
    # the default tolerances split them
    assert SpectralType.from_evals(noisy).num_blocks > 3 * (lmax + 1)


def test_from_evals_torus_matches_multiplicities():
    # periodic 5-point stencil on an 8x8 torus: λ = 4 − 2cos a − 2cos b (exact eigenvalues)
    a = 2 * np.pi * np.arange(8) / 8
    ev = np.sort((4 - 2 * np.cos(a)[:, None] - 2 * np.cos(a)[None, :]).ravel())
    _, counts = np.unique(np.round(ev, 9), return_counts=True)
    t = SpectralType.from_evals(ev)
    assert t.blocks == tuple(counts)
    assert t.dim == 64 and t.blocks[0] == 1


def test_from_evals_errors():
    with pytest.raises(ValueError, match="sorted ascending"):
        SpectralType.from_evals([0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        SpectralType.from_evals([0.0, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        SpectralType.from_evals(np.zeros((2, 2)))
    assert SpectralType.from_evals([]).dim == 0


def test_randn(gen):
    t = SpectralType("1x1+2x3")
    x = t.randn(4, -1, 5, generator=gen, dtype=torch.float64)
    assert x.shape == (4, 7, 5) and x.dtype == torch.float64
    y = t.randn(4, -1, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(x, y)
    assert t.randn(-1).shape == (7,)
    with pytest.raises(ValueError):
        t.randn(4, 5)
    with pytest.raises(ValueError):
        t.randn(-1, -1)


def test_random_isometry_is_block_orthogonal(gen):
    t = SpectralType("2x1+1x3+2x2")
    g = t.random_isometry((5,), generator=gen, dtype=torch.float64)
    assert g.shape == (5, t.dim, t.dim)
    eye = torch.eye(t.dim, dtype=torch.float64)
    assert torch.allclose(g @ g.transpose(-1, -2), eye, atol=1e-12)
    mask = torch.zeros(t.dim, t.dim, dtype=torch.bool)
    for sl in t.slices():
        mask[sl, sl] = True
    assert torch.all(g[:, ~mask] == 0)
    # O(1) blocks take both signs, SO(1) blocks are +1; SO(d) blocks have det +1
    many = t.random_isometry(200, generator=gen, dtype=torch.float64)
    assert set(many[:, 0, 0].tolist()) == {-1.0, 1.0}
    dets = torch.linalg.det(many[:, 2:5, 2:5])
    assert (dets < 0).any() and (dets > 0).any()
    sp = t.random_isometry(50, special=True, generator=gen, dtype=torch.float64)
    assert torch.all(sp[:, 0, 0] == 1.0)
    for sl in t.slices():
        assert torch.allclose(torch.linalg.det(sp[:, sl, sl]), torch.ones(50, dtype=torch.float64))
    assert t.random_isometry(dtype=torch.float32).dtype == torch.float32


def test_random_orthogonal_haar_moments(gen):
    # E[Q_ij] = 0 and E[Q_ij²] = 1/d under Haar measure
    q = random_orthogonal(4, 4000, generator=gen, dtype=torch.float64)
    assert torch.allclose(q @ q.transpose(-1, -2), torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert q.mean(0).abs().max() < 0.05
    assert (q.pow(2).mean(0) - 0.25).abs().max() < 0.03
    R = random_rotation(10, generator=gen, dtype=torch.float64)
    assert torch.allclose(torch.linalg.det(R), torch.ones(10, dtype=torch.float64))


def test_block_diag():
    a = torch.ones(2, 1, 1)
    b = 2 * torch.ones(2, 2, 2)
    m = block_diag([a, b])
    assert m.shape == (2, 3, 3)
    assert m[0, 0, 0] == 1 and m[0, 1:, 1:].eq(2).all() and m[0, 0, 1:].eq(0).all()


def test_rotation_action_wigner(gen):
    t = SpectralType("1x1+2x3+1x5")
    D, R = t.random_rotation_action(wigner_D, generator=gen, dtype=torch.float64)
    assert D.shape == (12, 12) and R.shape == (3, 3)
    assert torch.allclose(D[1:4, 1:4], R.new_tensor(wigner_D(1, R.numpy())))
    assert torch.allclose(D[1:4, 1:4], D[4:7, 4:7])
    assert torch.allclose(D @ D.T, torch.eye(12, dtype=torch.float64), atol=1e-12)
    Db, Rb = t.random_rotation_action(wigner_D, 3, generator=gen, dtype=torch.float64)
    assert Db.shape == (3, 12, 12)
    assert torch.allclose(Db[2], t.rotation_action(Rb[2], wigner_D))
    with pytest.raises(ValueError):
        SpectralType("1x2").rotation_action(R, wigner_D)
