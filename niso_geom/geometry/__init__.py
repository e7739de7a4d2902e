"""NumPy/SciPy geometry kernels (no torch): mesh I/O and validation, Laplacians, stencils,
quadrature, descriptors, generators, conformal maps, Möbius transforms, resampling."""

from niso_geom.geometry.descriptors import default_hks_times, heat_kernel_signature, wave_kernel_signature
from niso_geom.geometry.generators import icosphere, torus_mesh
from niso_geom.geometry.laplacian import cotan_stiffness, lumped_mass, mesh_operators
from niso_geom.geometry.mesh_io import read_mesh, write_mesh
from niso_geom.geometry.validate import MeshReport, validate_mesh

__all__ = [
    "MeshReport", "cotan_stiffness", "default_hks_times", "heat_kernel_signature", "icosphere", "lumped_mass",
    "mesh_operators", "read_mesh", "torus_mesh", "validate_mesh", "wave_kernel_signature", "write_mesh",
]
