"""SpectralType <-> e3nn Irreps: exact round trips, the same layout, errors that explain the syntax."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from niso_geom.equivariant import SpectralType, random_rotation


@pytest.mark.parametrize("irreps", ["1x0e", "3x1o", "2x0e+3x1o+1x2e", "1x1e+2x0o+0x3o+1x2o", "4x2e+1x1o+2x1o"])
def test_irreps_round_trip_exactly_with_their_parities(irreps):
    ir = o3.Irreps(irreps)
    t = SpectralType.from_irreps(ir)
    assert t.dim == ir.dim and len(t) == len(ir)  # one term per irreps term
    assert t.to_irreps(parity=[i.p for _, i in ir]) == ir
    assert SpectralType.from_irreps(str(ir)) == t  # strings work too
    assert [(sl.start, sl.stop) for sl in t.term_slices()] == [(sl.start, sl.stop) for sl in ir.slices()]


@pytest.mark.parametrize("lmax", [0, 1, 4])
def test_spherical_harmonic_types_map_to_e3nn_spherical_harmonics(lmax):
    sh = o3.Irreps.spherical_harmonics(lmax)
    assert SpectralType.sphere(lmax).to_irreps() == sh  # default parity (−1)^l
    assert SpectralType.from_irreps(sh) == SpectralType.sphere(lmax)


def test_all_even_and_all_odd_parities():
    t = SpectralType("2x[3]+1x[1]")
    assert t.to_irreps("e") == o3.Irreps("2x1e+1x0e") == t.to_irreps(1)
    assert t.to_irreps("o") == o3.Irreps("2x1o+1x0o") == t.to_irreps(-1)


def test_e3nn_rotations_act_within_the_spectral_blocks():
    ir = o3.Irreps("2x1o+1x2e+1x0e")
    t = SpectralType.from_irreps(ir)
    R = random_rotation(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D = ir.D_from_matrix(R)
    ids = t.block_index()
    outside = ids[:, None] != ids[None, :]
    assert D[outside].abs().max() == 0 and D[~outside].abs().max() > 0.1


def test_the_bracket_syntax_is_canonical_and_the_old_form_still_reads():
    assert str(SpectralType("3x1")) == "3x[1]" and SpectralType("3x1") == SpectralType("3x[1]")
    assert SpectralType("[5]") == SpectralType("1x[5]") == SpectralType("5")
    assert SpectralType("3x[1]").dim == 3 and SpectralType.from_irreps("3x1o").dim == 9


@pytest.mark.parametrize("s", ["1x0e", "3x1o", "1x1+2x1o", "0e"])
def test_irreps_strings_are_refused_with_a_pointer_to_from_irreps(s):
    with pytest.raises(ValueError, match=r"e3nn irreps.*brackets.*from_irreps"):
        SpectralType(s)


def test_to_irreps_errors_name_the_problem():
    with pytest.raises(ValueError, match="even dimension"):
        SpectralType("1x[1]+1x[2]").to_irreps()
    with pytest.raises(ValueError, match="2 parities for the 1 terms"):
        SpectralType("1x[3]").to_irreps(["e", "o"])
    with pytest.raises(ValueError, match="parity must be"):
        SpectralType("1x[3]").to_irreps("x")
    with pytest.raises(ValueError, match="cannot read"):
        SpectralType.from_irreps("3x[1]")
