"""Domains carrying their ground-truth Laplacian, mass and (where one exists) analytic harmonics."""

from niso_geom.domains.base import Domain
from niso_geom.domains.mesh import TriMesh
from niso_geom.domains.sphere import SphereGrid
from niso_geom.domains.torus import TorusGrid

__all__ = ["Domain", "SphereGrid", "TorusGrid", "TriMesh"]
