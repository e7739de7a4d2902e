"""Analytic eigenpairs: toric Fourier modes, real spherical harmonics, Wigner-D."""

from niso_geom.harmonics.sphere import real_sph_harm, real_sph_harm_angles, sh_degrees, sh_eigenvalues, sh_index
from niso_geom.harmonics.torus import stencil_symbol, torus_fourier_basis
from niso_geom.harmonics.wigner import random_rotation, wigner_D, wigner_D_blocks

__all__ = ["real_sph_harm", "real_sph_harm_angles", "sh_degrees", "sh_eigenvalues", "sh_index",
           "stencil_symbol", "torus_fourier_basis", "random_rotation", "wigner_D", "wigner_D_blocks"]
