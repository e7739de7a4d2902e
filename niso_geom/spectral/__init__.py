"""Eigenbases, the robust eigensolver, and learned-vs-analytic comparison."""

from niso_geom.spectral.eigenbasis import Eigenbasis, cluster_eigenvalues
from niso_geom.spectral.solve import eigensolve

__all__ = ["Eigenbasis", "cluster_eigenvalues", "eigensolve"]
