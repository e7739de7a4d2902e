"""Triangle meshes with cotan Laplacians, cached eigenbases and shape descriptors."""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from niso_geom.cache import DiskCache, content_key
from niso_geom.domains.base import Domain
from niso_geom.errors import NoSymmetryGroupError
from niso_geom.geometry.generators import icosahedral_generators, icosphere, torus_mesh
from niso_geom.geometry.laplacian import MeshOperators, mesh_operators
from niso_geom.geometry.mesh_io import read_mesh, write_mesh
from niso_geom.geometry.symmetry import close_rotation_group, permutation_matrix, point_permutation
from niso_geom.geometry.validate import MeshReport, validate_mesh
from niso_geom.spectral.eigenbasis import Eigenbasis
from niso_geom.spectral.solve import eigensolve

log = logging.getLogger(__name__)

LaplacianKind = Literal["auto", "cotan", "robust"]
MeshSymmetry = Literal["icosahedral"]

#: Vertices may miss their image under a symmetry by this fraction of the mesh's RMS radius.
SYMMETRY_RTOL = 1e-6


class TriMesh(Domain):
    """A triangle mesh (V, F) with its stiffness and lumped mass.

    Construction validates the arrays: NaN/inf coordinates, face indices out of
    range, degenerate and duplicate faces raise :class:`~niso_geom.errors.MeshError`
    naming the first offending index. Topology (components, boundary, non-manifold
    edges, genus) is available as :attr:`report`; non-manifold meshes use the
    robust-laplacian fallback automatically.

    Parameters
    ----------
    vertices : (N, 3).  faces : (F, 3) int.
    name : label for messages (the file name when loaded).
    laplacian : "auto" (cotan, robust if non-manifold), "cotan" or "robust".
    symmetry : None (no known symmetry group) or "icosahedral": the vertices are laid out as
        :func:`~niso_geom.geometry.generators.icosphere` lays them out (up to a similarity
        transform), so the 60 icosahedral rotations about the vertex centroid permute them.
        :meth:`icosphere` sets it; :meth:`transformed` keeps it.

    Examples
    --------
    >>> m = TriMesh.icosphere(2)
    >>> m.n, m.genus
    (162, 0)
    """

    kind = "mesh"

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, *, name: str = "mesh",
                 laplacian: LaplacianKind = "auto", symmetry: MeshSymmetry | None = None):
        if laplacian not in ("auto", "cotan", "robust"):
            raise ValueError(f"laplacian must be 'auto', 'cotan' or 'robust', got {laplacian!r}")
        if symmetry not in (None, "icosahedral"):
            raise ValueError(f"symmetry must be None or 'icosahedral', got {symmetry!r}")
        self.symmetry = symmetry
        self.name = name
        self.report: MeshReport = validate_mesh(vertices, faces, name=name)
        self.vertices = np.array(vertices, dtype=np.float64)
        self.faces = np.array(faces, dtype=np.int64)
        self.vertices.setflags(write=False)
        self.faces.setflags(write=False)
        self.laplacian = laplacian

    # --- constructors ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, **kw) -> TriMesh:
        """Read an OBJ/OFF/PLY/STL file (vertices and faces exactly as stored)."""
        V, F = read_mesh(path)
        return cls(V, F, name=kw.pop("name", Path(path).name), **kw)

    @classmethod
    def icosphere(cls, level: int = 3, **kw) -> TriMesh:
        """The unit icosphere (:func:`~niso_geom.geometry.generators.icosphere`), with its icosahedral symmetry."""
        V, F = icosphere(level)
        kw.setdefault("symmetry", "icosahedral")
        return cls(V, F, name=kw.pop("name", f"icosphere({level})"), **kw)

    @classmethod
    def torus(cls, n_major: int = 48, n_minor: int = 24, major: float = 1.0, minor: float = 0.4, **kw) -> TriMesh:
        V, F = torus_mesh(n_major, n_minor, major, minor)
        return cls(V, F, name=kw.pop("name", "torus"), **kw)

    def save(self, path: str | os.PathLike) -> Path:
        return write_mesh(path, self.vertices, self.faces)

    # --- Domain interface -----------------------------------------------------------------
    @property
    def points(self) -> np.ndarray:
        return self.vertices

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "n_vertices": len(self.vertices), "n_faces": len(self.faces),
                "laplacian": self.laplacian}

    @cached_property
    def operators(self) -> MeshOperators:
        return mesh_operators(self.vertices, self.faces, method=self.laplacian,
                              manifold=self.report.is_manifold)

    @property
    def stiffness(self) -> sp.csr_matrix:
        return self.operators.stiffness

    @property
    def mass(self) -> np.ndarray:
        return self.operators.mass

    @property
    def genus(self) -> int | None:
        return self.report.genus

    def cache_key(self, k: int, method: str) -> str:
        return content_key("mesh-eigenbasis", {"k": int(k), "method": method, "laplacian": self.laplacian},
                           {"V": self.vertices, "F": self.faces})

    def _compute_eigenbasis(self, k: int, *, method: str, cache: Any) -> Eigenbasis:
        """Numeric eigenbasis, cached on disk unless ``cache=False``.

        ``cache``: None (the default cache directory), False (off), a path or a DiskCache.
        """
        if cache is False:
            return eigensolve(self.stiffness, self.mass, k, method=method)
        store = cache if isinstance(cache, DiskCache) else DiskCache(cache)
        key = self.cache_key(k, method)
        hit = store.get(key, namespace="eigenbasis")
        if hit is not None:
            return Eigenbasis(hit["evals"], hit["evecs"], hit["mass"], {"method": "cache", "path": str(store.path(key, "eigenbasis"))})
        eb = eigensolve(self.stiffness, self.mass, k, method=method)
        store.put(key, {"evals": eb.evals, "evecs": eb.evecs, "mass": eb.mass}, namespace="eigenbasis")
        return eb

    def describe(self) -> dict[str, Any]:
        r = self.report
        d = super().describe()
        d.update({"faces": r.n_faces, "edges": r.n_edges, "components": r.n_components,
                  "boundary_edges": r.n_boundary_edges, "nonmanifold_edges": len(r.nonmanifold_edges),
                  "euler_characteristic": r.euler_characteristic, "genus": r.genus,
                  "laplacian_method": self.operators.method})
        return d

    # --- the symmetry group: t = R, a rotation (3, 3) about the vertex centroid that permutes the vertices
    @cached_property
    def centroid(self) -> np.ndarray:
        """(3,) mean of the vertices: every symmetry of the vertex set fixes it."""
        return self.vertices.mean(0)

    @cached_property
    def _vertex_tree(self) -> cKDTree:
        return cKDTree(self.vertices)

    def vertex_source(self, R: np.ndarray) -> np.ndarray:
        """Source indices (N,) of :meth:`vertex_permutation`: (P f)[r] = f[src[r]]."""
        rms = float(np.sqrt(np.mean(np.sum((self.vertices - self.centroid) ** 2, axis=1))))
        return point_permutation(self.vertices, R, centre=self.centroid, tol=SYMMETRY_RTOL * rms,
                                 tree=self._vertex_tree, name=f"vertex set of {self.name}")

    def vertex_permutation(self, R: np.ndarray) -> sp.csr_matrix:
        """Permutation matrix P (N, N) with (P f)(v) = f(c + Rᵀ(v − c)), c the centroid (f(Rᵀv) for a
        mesh centred at the origin), when the rotation R maps the vertex set onto itself; otherwise
        :class:`~niso_geom.errors.NotASymmetryError` naming the vertex that misses most, and by how much."""
        return permutation_matrix(self.vertex_source(R))

    def generator_rotations(self) -> list[np.ndarray]:
        """Rotations (3, 3) that generate the mesh's symmetry group (icosahedral: 2π/5 about vertex 0 and
        2π/3 about the centre of the original face (0, 11, 5))."""
        if self.symmetry is None:
            raise NoSymmetryGroupError(f"{self!r} has no known symmetry group (a TriMesh built with "
                                       "symmetry='icosahedral', e.g. TriMesh.icosphere(level), has one)")
        return icosahedral_generators(self.vertices, self.centroid)

    def generators(self) -> list[sp.csr_matrix]:
        """The generator rotations as sparse vertex permutations (N, N) (:meth:`vertex_permutation`)."""
        return [self.vertex_permutation(R) for R in self.generator_rotations()]

    @cached_property
    def symmetry_group(self) -> tuple[np.ndarray, np.ndarray]:
        """Every element of the symmetry group: rotations (G, 3, 3) and vertex sources (G, N), identity
        first (closed exactly on the permutations; G = 60 for an icosphere)."""
        rotations = self.generator_rotations()
        group = close_rotation_group(rotations, [self.vertex_source(R) for R in rotations])
        for a in group:
            a.setflags(write=False)
        return group

    def sample_transform(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """A uniformly random element of the symmetry group as a rotation (3, 3); with ``size``, (size, 3, 3)."""
        rotations = self.symmetry_group[0]
        return rotations[rng.integers(len(rotations), size=size)].copy()

    def transform(self, x: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Signals (N,) or (..., N, C) rotated by a symmetry R about the centroid c: (R·f)(v) = f(c + Rᵀ(v − c)),
        an exact permutation of the values (:meth:`vertex_permutation`)."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0 if x.ndim == 1 else -2] != self.n:
            raise ValueError(f"expected signals ({self.n},) or (..., {self.n}, C) on {self.name}, got shape {x.shape}")
        src = self.vertex_source(R)
        return x[src] if x.ndim == 1 else x[..., src, :]

    # --- rigid motions of the embedding ----------------------------------------------------
    def transformed(self, R: np.ndarray | None = None, t: np.ndarray | None = None, scale: float = 1.0) -> TriMesh:
        """A copy with vertices scale·R·v + t (same faces, same declared symmetry)."""
        V = self.vertices * scale
        if R is not None:
            V = V @ np.asarray(R, dtype=np.float64).T
        if t is not None:
            V = V + np.asarray(t, dtype=np.float64)
        return TriMesh(V, self.faces, name=self.name, laplacian=self.laplacian, symmetry=self.symmetry)

    # --- trimesh interop --------------------------------------------------------------------
    def __new__(cls, *args: Any, **kwargs: Any) -> TriMesh:  # noqa: PYI034 (Self needs Python 3.11)
        if _is_trimesh(args[0] if args else kwargs.get("vertices")):
            raise TypeError("TriMesh(vertices, faces) takes arrays; for a trimesh.Trimesh use "
                            "TriMesh.from_trimesh(mesh)")
        return super().__new__(cls)

    @classmethod
    def from_trimesh(cls, mesh: Any, **kw: Any) -> TriMesh:
        """A TriMesh with a ``trimesh.Trimesh``'s vertices and faces, exactly (no merging or reordering).

        Parameters
        ----------
        mesh : trimesh.Trimesh; a ``trimesh.Scene`` must be flattened first (``scene.to_mesh()``).
        **kw : ``name`` (default: the source file name trimesh recorded, else "trimesh"), ``laplacian``.
        """
        if not _is_trimesh(mesh):
            kind = f"{type(mesh).__module__}.{type(mesh).__qualname__}"
            hint = " (flatten a Scene with scene.to_mesh())" if type(mesh).__name__ == "Scene" else ""
            raise TypeError(f"from_trimesh needs a trimesh.Trimesh, got {kind}{hint}")
        name = kw.pop("name", None) or (mesh.metadata or {}).get("file_name") or "trimesh"
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.faces), name=name, **kw)

    def to_trimesh(self) -> Any:
        """A ``trimesh.Trimesh`` with copies of these vertices and faces (``process=False``: same order)."""
        import trimesh  # as in geometry.mesh_io: only the interop needs it

        return trimesh.Trimesh(vertices=self.vertices.copy(), faces=self.faces.copy(), process=False,
                               metadata={"name": self.name})


def _is_trimesh(obj: Any) -> bool:
    """True for a ``trimesh.Trimesh`` (or subclass), checked without importing trimesh."""
    return any(c.__name__ == "Trimesh" and c.__module__.startswith("trimesh") for c in type(obj).__mro__)
