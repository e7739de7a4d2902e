"""Conformal SHREC'11: heat kernel signatures of SHREC'11 shapes pulled back to the sphere.

The recipe of the paper's ``process_cshrec11.py`` (docs/algorithm.md §4), built from the
shrec_16 release of SHREC'11 (500 faces per mesh) with our own conformal maps:

* 25 classes: the 30 SHREC'11 classes without ``glasses, lamp, snake, two_balls, myScissor``;
  labels are the positions of the class names in sorted order.
* Genus-0 meshes only: the 12 genus-1 meshes of shrec_16 (:data:`GENUS1`) are left out, so
  alien has 13 meshes, dog1 18, cat, man and woman 19 (488 in all).
* Per mesh: a bijective conformal map to the unit sphere
  (:func:`~niso_geom.geometry.conformal.spherical_conformal_map`); the HKS with 128 cotan
  eigenpairs at 16 times ``logspace(-2, 0)`` **of the mesh rescaled to unit area** (the
  paper does not rescale; shrec_16 areas span 0.20 to 7.1, so the same times would probe
  different relative scales per mesh: see datasets/cshrec11/README.md); the HKS pulled back
  through the map onto an equiangular (H, W) grid with both poles
  (:meth:`~niso_geom.domains.sphere.SphereGrid.equiangular`), for the map itself (view 0)
  and for ``transforms`` random Möbius transforms of it (views 1..T,
  :func:`~niso_geom.geometry.mobius_severity.draw_view_transforms` in the ``mobius`` mode at
  its ``severity``: ``paper`` (default, the official ``ExtMobius(shift=1.2)`` inversion of the
  mesh and the base map re-centred on the deformed mesh), ``boost`` or ``rotation``), drawn
  from a stream seeded by ``(seed, mesh name)``: a mesh's views do not depend on the job
  order, on ``jobs``, or on which classes are built. Each view's SL(2, ℂ) matrix and its
  largest linear scale factor ``k`` are stored (the record, the .npz and the manifest).
* Storage: one folder per ``(res, transforms, seed, mobius mode, severity, recipe version,
  source checksum)``
  under ``<cache>/cshrec11/``; per mesh ``meshes/<name>.npy`` (the signals, float16
  ``(1 + T, 16, H, W)``, memory-mappable), ``meshes/<name>.npz`` (the sphere map, HKS,
  eigenvalues, Möbius matrices, per-view k and per-view channel statistics) and ``meshes/<name>.json``
  (the record, with sha256 of both files and the map's quality report). The record is
  written last, atomically, so a killed build resumes: meshes whose record and checksums
  verify are skipped. ``manifest.json`` summarises the folder after each build.
* Splits (:func:`split_indices`): per class, 4 test and up to 10 train meshes (the
  paper's 10/4; alien, with 13 meshes, gets 9/4), drawn from a stream seeded by
  ``(split seed, class name)``.
* Normalization: the paper's ``zbound`` with per-channel mean and std over the **train**
  meshes of the split (all their views), each view weighted by the grid quadrature
  (the official code also used the test meshes, §7 item 17).

The loader (:func:`load_cshrec11`) returns a :class:`CShrec11` that reads the per-mesh
float16 files through ``np.memmap`` and normalizes only what is asked for: the full
96×192 set is 488 × 31 × 16 × 18,432 values (8.9 GB as float16, 18 GB as float32).

NumPy/SciPy only (no torch).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from niso_geom.cache import DiskCache
from niso_geom.domains.sphere import SphereGrid
from niso_geom.errors import DataError, MeshError
from niso_geom.geometry.mobius import mobius_max_scale
from niso_geom.geometry.mobius_severity import DEFAULT_MODE, check_severity, draw_view_transforms
from niso_geom.shared_data import file_sha256
from niso_geom.threads import blas_threads, set_blas_threads

__all__ = [
    "CSHREC11_VERSION",
    "GENUS1",
    "SKIP_CLASSES",
    "CShrec11",
    "CShrec11Views",
    "MeshEntry",
    "build_cshrec11",
    "channel_stats",
    "compute_mesh_views",
    "dataset_folder",
    "list_source",
    "load_cshrec11",
    "mesh_rng",
    "read_manifest",
    "split_indices",
    "view_k_summary",
    "zbound",
]

#: Bumped whenever the builder's output for given parameters changes (part of the folder key).
#: 2: the Möbius mode and severity, per-view k.
CSHREC11_VERSION = 2
NAMESPACE = "cshrec11"
SOURCE_FILE = "shrec_16.tar.gz"
#: Classes the official script skips (``SKIP`` in process_cshrec11.py).
SKIP_CLASSES = ("glasses", "lamp", "snake", "two_balls", "myScissor")
#: The genus-1 meshes of shrec_16 (the shared data README); all other meshes are genus 0.
GENUS1 = (
    "alien/test/T124", "alien/train/T9", "alien/train/T18", "alien/train/T30", "alien/train/T137",
    "alien/train/T290", "alien/train/T311", "cat/train/T406", "dog1/train/T99", "dog1/train/T136",
    "man/train/T338", "woman/train/T238",
)
NUM_EIGS = 128
NUM_CHANNELS = 16
HKS_LOG_RANGE = (-2.0, 0.0)
N_TRAIN, N_TEST = 10, 4
ZBOUND_WIDTH = 2.5  # zbound: mean ± 2.5 std is mapped to [-1, 1]

_MEMBER = re.compile(r"^(?:\./)?shrec_16/([^/]+)/(train|test)/(T\d+)\.obj$")


# ============================================================================ source


@dataclass(frozen=True)
class MeshEntry:
    """One shrec_16 mesh: ``name`` (``"T12"``, unique), ``cls`` and ``relpath`` (``"alien/train/T12"``)."""

    name: str
    cls: str
    relpath: str

    @property
    def member(self) -> str:
        return f"shrec_16/{self.relpath}.obj"


def _natural(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else -1, name)


def resolve_source(source: str | os.PathLike | None, data_root: str | os.PathLike | None) -> tuple[Path, str]:
    """(tarball path, sha256). The default is verified against the data root's SHA256SUMS."""
    if source is None:
        from niso_geom.shared_data import sha256_file, data_file

        path = data_file(SOURCE_FILE, data_root)
        st = path.stat()
        return path, sha256_file(path, st.st_size, st.st_mtime)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"SHREC'11 source {path} not found (expected shrec_16.tar.gz)")
    return path, file_sha256(path)


def list_source(tarball: str | os.PathLike) -> tuple[list[MeshEntry], list[MeshEntry]]:
    """(genus-0 entries of the 25 kept classes, excluded genus-1 entries), sorted by class then name.

    Raises :class:`DataError` if the archive cannot be read, holds no shrec_16 meshes or
    uses a mesh name twice.
    """
    tarball = Path(tarball)
    try:
        with tarfile.open(tarball) as tar:
            names = tar.getnames()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{tarball}: cannot read the SHREC'11 archive ({exc})") from exc
    entries: list[MeshEntry] = []
    for member in names:
        m = _MEMBER.match(member)
        if m:
            cls, part, name = m.groups()
            entries.append(MeshEntry(name, cls, f"{cls}/{part}/{name}"))
    if not entries:
        raise DataError(f"{tarball}: no shrec_16/<class>/<train|test>/T<n>.obj members")
    seen: dict[str, str] = {}
    for e in entries:
        if e.name in seen:
            raise DataError(f"{tarball}: mesh name {e.name} is used twice ({seen[e.name]}, {e.relpath})")
        seen[e.name] = e.relpath
    entries = [e for e in entries if e.cls not in SKIP_CLASSES]
    entries.sort(key=lambda e: (e.cls, _natural(e.name)))
    genus1 = set(GENUS1)
    return [e for e in entries if e.relpath not in genus1], [e for e in entries if e.relpath in genus1]


def _select(entries: list[MeshEntry], classes: Sequence[str] | str | None,
            max_per_class: int | None) -> tuple[list[str], list[MeshEntry]]:
    available = sorted({e.cls for e in entries})
    if classes is None:
        names = available
    else:
        items = classes.split(",") if isinstance(classes, str) else list(classes)
        names = sorted({c.strip() for c in items if c.strip()})
        unknown = [c for c in names if c not in available]
        if unknown or not names:
            raise ValueError(f"unknown class(es) {unknown or classes!r}; available: {', '.join(available)}")
    chosen = []
    for c in names:
        members = [e for e in entries if e.cls == c]
        chosen.extend(members if max_per_class is None else members[:int(max_per_class)])
    return names, chosen


# ============================================================================ recipe


def _name_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def mesh_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one mesh: ``SeedSequence([seed, hash(name)])``."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), _name_key(name)]))


def hks_times() -> np.ndarray:
    from niso_geom.geometry.descriptors import default_hks_times

    return default_hks_times(NUM_CHANNELS, *HKS_LOG_RANGE)


def recipe_params(res: tuple[int, int], transforms: int, seed: int, mobius: str = DEFAULT_MODE,
                  severity: float | None = None) -> dict[str, Any]:
    """Everything that defines the per-mesh output (stored in the manifest and each record).

    ``severity`` None takes the mode's default; ValueError for an unknown mode or a severity
    out of the mode's range (:func:`~niso_geom.geometry.mobius_severity.check_severity`).
    """
    sev = check_severity(mobius, severity)
    return {"version": CSHREC11_VERSION, "res": [int(res[0]), int(res[1])], "transforms": int(transforms),
            "seed": int(seed), "num_eigs": NUM_EIGS, "hks_times": hks_times().tolist(),
            "hks_normalization": "unit total area",
            "signal": "HKS minus its constant-eigenfunction term (exactly 1 at unit area)",
            "mobius": mobius, "severity": sev,
            "grid": "equiangular with both poles (Clenshaw-Curtis weights), lon 2*pi*j/W",
            "dtype": "float16", "layout": "(1 + transforms, 16, H, W); view 0 = the conformal map"}


def compute_mesh_views(V: np.ndarray, F: np.ndarray, *, res: tuple[int, int], transforms: int, seed: int,
                       name: str, label: str | None = None, mobius: str = DEFAULT_MODE,
                       severity: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The recipe for one mesh.

    Parameters
    ----------
    V, F : (N, 3) vertices and (M, 3) triangles of a closed genus-0 mesh.
    res : grid (H, W).  transforms : number of Möbius views.  seed : base seed.
    name : mesh name (seeds its Möbius stream).  label : how errors name the mesh (default ``name``).
    mobius, severity : how the views are drawn (:mod:`~niso_geom.geometry.mobius_severity`).

    Returns
    -------
    arrays : ``signals`` (1 + T, 16, H, W) float16: ``hks − 1`` pulled back (the constant
        eigenfunction contributes exactly 1 at unit area; without it float16 keeps the long
        times' variation), ``sphere`` (N, 3) the map, ``hks`` (N, 16) the full HKS,
        ``evals`` (128,), ``mobius`` (T, 2, 2) complex (view v = ``mobius[v − 1]`` · the map),
        ``view_k`` (1 + T,) the largest linear scale factor of each view (1 for view 0),
        ``view_mean`` / ``view_mean2`` (1 + T, 16):
        quadrature-weighted mean and mean square per view and channel of the stored float16
        values (float64).
    info : the map's quality report, wall seconds per stage and the CPU seconds of this process.

    Raises
    ------
    MeshError : the mesh is not a closed genus-0 surface, or a signal is not finite.
    """
    from niso_geom.domains.mesh import TriMesh
    from niso_geom.geometry.conformal import spherical_conformal_map
    from niso_geom.geometry.descriptors import heat_kernel_signature
    from niso_geom.geometry.pullback import pullback_matrix

    label = label or name
    H, W = (int(r) for r in res)
    t0, cpu0 = time.perf_counter(), time.process_time()
    S, report = spherical_conformal_map(V, F, name=label)
    if report.n_flipped:
        raise MeshError(f"{label}: the sphere map has {report.n_flipped} flipped face(s)")
    t1 = time.perf_counter()
    mesh = TriMesh(V, F, name=label)
    k = min(NUM_EIGS, mesh.n - 1)
    eb = mesh.eigenbasis(k, cache=False)
    area = float(eb.mass.sum())
    if abs(eb.evals[0]) * area > 1e-8 or eb.evals[1] * area < 1e-8:
        raise MeshError(f"{label}: the Laplacian's null space is not one constant (λ·area {eb.evals[:2] * area})")
    hks = heat_kernel_signature(eb, hks_times(), normalize="area")
    # the constant eigenfunction adds exactly 1 at unit area: store the rest, which float16
    # resolves far better at the long times (zbound of either is the same)
    varying = SimpleNamespace(evals=eb.evals[1:], evecs=eb.evecs[:, 1:], mass=eb.mass)
    signal = heat_kernel_signature(varying, hks_times(), normalize="area")
    if not (np.all(np.isfinite(hks)) and np.all(np.isfinite(signal))):
        raise MeshError(f"{label}: the heat kernel signature has non-finite values")
    t2 = time.perf_counter()
    grid = SphereGrid.equiangular(H, W)
    t_draw = time.perf_counter()
    mats = draw_view_transforms(mesh_rng(seed, name), mobius, severity, int(transforms), sphere=S, V=V, F=F)
    t_draw = time.perf_counter() - t_draw
    view_k = np.concatenate([[1.0], np.atleast_1d(mobius_max_scale(mats)) if transforms else []])
    signals = np.empty((1 + transforms, NUM_CHANNELS, H, W), dtype=np.float16)
    for v in range(1 + transforms):
        Wmat = pullback_matrix(S, F, grid.points, mobius=None if v == 0 else mats[v - 1])
        x = grid.to_grid(Wmat @ signal)  # (16, H, W)
        if not np.all(np.isfinite(x)) or np.abs(x).max() >= np.finfo(np.float16).max:
            raise MeshError(f"{label}: view {v} has values that float16 cannot hold (max {np.abs(x).max():.3g})")
        signals[v] = x
    t3 = time.perf_counter()
    w = grid.mass / grid.mass.sum()
    flat = signals.reshape(1 + transforms, NUM_CHANNELS, H * W).astype(np.float64)
    arrays = {"signals": signals, "sphere": S, "hks": hks, "evals": np.asarray(eb.evals, dtype=np.float64),
              "mobius": np.asarray(mats, dtype=np.complex128), "view_k": view_k.astype(np.float64),
              "view_mean": flat @ w, "view_mean2": (flat * flat) @ w}
    info = {"report": report.as_dict(), "num_eigs": k, "view_k": view_k.tolist(),
            "seconds": {"map": t1 - t0, "hks": t2 - t1, "transforms": t_draw, "pullback": t3 - t2 - t_draw,
                        "total": t3 - t0,
                        "cpu": time.process_time() - cpu0}}
    return arrays, info


# ============================================================================ storage


def dataset_folder(cache_dir: str | os.PathLike | None, res: tuple[int, int], transforms: int, seed: int,
                   source_sha256: str, mobius: str = DEFAULT_MODE, severity: float | None = None) -> Path:
    """``<cache>/cshrec11/<H>x<W>_t<T>_s<seed>_<mobius><severity>_v<version>_<source sha256[:12]>``.

    The severity is written with ``repr`` of the float (``paper1.2``, ``boost0.2``,
    ``rotation0.0``), so two severities never share a folder.
    """
    root = DiskCache(cache_dir).root
    H, W = (int(r) for r in res)
    sev = check_severity(mobius, severity)
    return root / NAMESPACE / (f"{H}x{W}_t{int(transforms)}_s{int(seed)}_{mobius}{sev!r}_v{CSHREC11_VERSION}_"
                               f"{source_sha256[:12]}")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared between users' runs
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz with fixed member timestamps: equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()


def _file_entry(path: Path, digest: str) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": digest}


def _record_path(folder: Path, name: str) -> Path:
    return folder / "meshes" / f"{name}.json"


def _read_record(folder: Path, name: str) -> dict[str, Any] | None:
    path = _record_path(folder, name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _verify(folder: Path, name: str, params: dict[str, Any], source_sha: str | None, *, full: bool) -> bool:
    """True when the mesh's record exists, matches ``params`` and its files verify.

    ``full`` hashes both files; otherwise sizes are compared (the loader's quick check).
    """
    rec = _read_record(folder, name)
    if rec is None or rec.get("params") != params:
        return False
    if source_sha is not None and rec.get("source_sha256") != source_sha:
        return False
    for entry in rec.get("files", {}).values():
        path = folder / "meshes" / entry["file"]
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            return False
        if full and file_sha256(path) != entry["sha256"]:
            return False
    return bool(rec.get("files"))


def _build_one(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: compute one mesh, write its three files (record last), return the record."""
    from niso_geom.geometry.mesh_io import read_mesh

    folder, entry, params = Path(job["folder"]), MeshEntry(**job["entry"]), job["params"]
    obj = Path(job["obj"])
    label = f"{job['source']}:{entry.member}"
    V, F = read_mesh(obj)
    arrays, info = compute_mesh_views(V, F, res=tuple(params["res"]), transforms=params["transforms"],
                                      seed=params["seed"], name=entry.name, label=label, mobius=params["mobius"],
                                      severity=params["severity"])
    mdir = folder / "meshes"
    npy, npz = mdir / f"{entry.name}.npy", mdir / f"{entry.name}.npz"
    signals = arrays.pop("signals")
    _atomic_write(npy, lambda f: np.lib.format.write_array(f, signals, allow_pickle=False))
    _atomic_write(npz, lambda f: f.write(_npz_bytes(arrays)))
    record = {"name": entry.name, "class": entry.cls, "relpath": entry.relpath, "params": params,
              "source_sha256": job["source_sha256"], "obj_sha256": file_sha256(obj),
              "n_vertices": len(V), "n_faces": len(F), "num_views": int(signals.shape[0]),
              "files": {"signals": _file_entry(npy, file_sha256(npy)) | {"dtype": "float16",
                                                                           "shape": list(signals.shape)},
                        "extras": _file_entry(npz, file_sha256(npz)) | {"arrays": sorted(arrays)}},
              **info}
    _write_json(_record_path(folder, entry.name), record)
    return record


def _worker_init() -> None:
    set_blas_threads(1)


def _genus(path: Path) -> int | None:
    from niso_geom.geometry.mesh_io import read_mesh
    from niso_geom.geometry.validate import validate_mesh

    try:
        return validate_mesh(*read_mesh(path), name=str(path)).genus
    except MeshError:
        return None


def build_cshrec11(cache_dir: str | os.PathLike | None = None, *, res: tuple[int, int] = (96, 192),
                   transforms: int = 30, seed: int = 0, classes: Sequence[str] | str | None = None, jobs: int = 1,
                   data_root: str | os.PathLike | None = None, progress: bool = True,
                   source: str | os.PathLike | None = None, _max_per_class: int | None = None,
                   mobius: str = DEFAULT_MODE, severity: float | None = None) -> Path:
    """Build (or complete) the conformal SHREC'11 dataset; return its folder.

    Parameters
    ----------
    cache_dir : cache root (default ``$NISO_GEOM_CACHE_DIR``, else the user cache directory).
    res : grid (H, W), equiangular with both poles.
    transforms : Möbius views per mesh (the paper: 30).
    seed : base seed of the per-mesh Möbius streams.
    classes : build only these classes (a list or ``"a,b"``); files are shared with full builds.
    jobs : worker processes (spawned, so a calling script needs ``if __name__ == "__main__"``);
        1 computes in this process. Either way BLAS runs on one thread per process.
    data_root : shared data root holding ``shrec_16.tar.gz`` (verified against SHA256SUMS).
    progress : tqdm progress bar.
    source : another shrec_16 tarball (its sha256 keys the folder).
    _max_per_class : tests only: the first n meshes of each class.
    mobius : how the views are drawn: ``"paper"`` (default), ``"boost"`` or ``"rotation"``
        (:mod:`~niso_geom.geometry.mobius_severity`).
    severity : ``|c|`` of the paper mode's inversion (default 1.2, > 0.9; larger is milder), the
        largest boost of the boost mode (default 0.2, in [0, 1)); the rotation mode has none.
        Mode and severity are part of the folder key.

    Raises
    ------
    DataError
        Missing or corrupt source, naming the file.
    MeshError
        A mesh that should be genus 0 is not, naming the file.

    Notes
    -----
    Meshes whose record and sha256 checksums verify are kept; others are (re)computed.
    """
    H, W = (int(r) for r in res)
    if H < 3 or W < 3 or transforms < 0 or jobs < 1:
        raise ValueError(f"need res ≥ 3x3, transforms ≥ 0 and jobs ≥ 1, got {res}, {transforms}, {jobs}")
    params = recipe_params((H, W), transforms, seed, mobius, severity)
    tarball, source_sha = resolve_source(source, data_root)
    entries, excluded = list_source(tarball)
    _, chosen = _select(entries, classes, _max_per_class)
    folder = dataset_folder(cache_dir, (H, W), transforms, seed, source_sha, mobius, severity)
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    todo = [e for e in chosen if not _verify(folder, e.name, params, source_sha, full=True)]
    reused = [e.name for e in chosen if e not in todo]
    records: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cshrec11-") as tmp:
        wanted = {e.member for e in todo} | {e.member for e in excluded}
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                if member.name.removeprefix("./") in wanted:
                    tar.extract(member, tmp, filter="data")
        genus = {e.relpath: _genus(Path(tmp) / e.member) for e in excluded}
        jobs_args = [{"folder": str(folder), "entry": {"name": e.name, "cls": e.cls, "relpath": e.relpath},
                      "params": params, "obj": str(Path(tmp) / e.member), "source": tarball.name,
                      "source_sha256": source_sha} for e in todo]
        bar = tqdm(total=len(chosen), initial=len(reused), desc="cSHREC'11", unit="mesh", disable=not progress)
        # one BLAS thread: small eigenproblems are fastest so (niso_geom.threads), and every mesh comes
        # out the same whatever jobs is
        with bar, blas_threads(1):
            if jobs == 1 or len(jobs_args) <= 1:
                for job in jobs_args:
                    rec = _build_one(job)
                    records[rec["name"]] = rec
                    bar.update(1)
            else:  # spawned workers (a script calling this needs the __main__ guard)
                with cf.ProcessPoolExecutor(max_workers=min(jobs, len(jobs_args)), mp_context=mp.get_context("spawn"),
                                            initializer=_worker_init) as pool:
                    futures = [pool.submit(_build_one, job) for job in jobs_args]
                    try:
                        for fut in cf.as_completed(futures):
                            rec = fut.result()
                            records[rec["name"]] = rec
                            bar.update(1)
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise
    seconds = time.perf_counter() - t0
    _write_manifest(folder, params, tarball, source_sha, excluded, genus,
                    {"computed": sorted(records, key=_natural), "reused": sorted(reused, key=_natural),
                     "seconds": seconds, "jobs": jobs, "classes": sorted({e.cls for e in chosen})})
    return folder


def _write_manifest(folder: Path, params: dict[str, Any], tarball: Path, source_sha: str,
                    excluded: list[MeshEntry], genus: dict[str, int | None], last_build: dict[str, Any]) -> None:
    meshes = {}
    for path in sorted((folder / "meshes").glob("*.json"), key=lambda p: _natural(p.stem)):
        rec = _read_record(folder, path.stem)
        if rec is None or rec.get("params") != params:
            continue
        meshes[rec["name"]] = {"class": rec["class"], "relpath": rec["relpath"],
                               "n_vertices": rec["n_vertices"], "num_views": rec["num_views"],
                               "files": rec["files"], "seconds": rec["seconds"], "view_k": rec["view_k"],
                               "map": {k: rec["report"][k] for k in ("n_flipped", "angle_error_mean", "qc_mean",
                                                                    "area_distortion_mean", "method")}}
    total = sum(f["bytes"] for m in meshes.values() for f in m["files"].values())
    manifest = {
        "dataset": "cshrec11", "folder": folder.name, "params": params,
        "source": {"file": tarball.name, "sha256": source_sha},
        "skipped_classes": list(SKIP_CLASSES),
        "excluded_meshes": [{"relpath": e.relpath, "genus": genus.get(e.relpath),
                             "reason": "genus 1: no bijective map to the sphere"} for e in excluded],
        "classes": sorted({m["class"] for m in meshes.values()}),
        "counts": {"meshes": len(meshes), "bytes": total,
                   "per_class": {c: sum(m["class"] == c for m in meshes.values())
                                 for c in sorted({m["class"] for m in meshes.values()})}},
        "view_k": view_k_summary([m["view_k"] for m in meshes.values()]),
        "meshes": meshes, "last_build": last_build,
        "note": "files[*].sha256 are of the files as written; they are reproducible from the seed "
                "(the .npz members have fixed timestamps)",
    }
    _write_json(folder / "manifest.json", manifest)


#: Quantiles of k the manifest and the dataset card report.
K_QUANTILES = (0.1, 0.5, 0.9, 0.99)
#: Thresholds of the share of views above k the manifest reports.
K_THRESHOLDS = (2.0, 3.0, 5.0, 10.0, 20.0, 100.0)


def view_k_summary(per_mesh: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Quantiles, maximum and shares above thresholds of ``k`` over the Möbius views (view 0 left out)."""
    k = np.concatenate([np.asarray(v[1:], dtype=np.float64) for v in per_mesh]) if per_mesh else np.zeros(0)
    if not len(k):
        return {"views": 0}
    return {"views": len(k), "quantiles": {f"{q:g}": float(np.quantile(k, q)) for q in K_QUANTILES},
            "max": float(k.max()), "share_above": {f"{t:g}": float(np.mean(k > t)) for t in K_THRESHOLDS}}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's manifest.json (DataError if missing or unreadable)."""
    path = Path(folder) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the cSHREC'11 manifest ({exc}); build the dataset first") from exc


# ============================================================================ splits and normalization


def split_indices(labels: np.ndarray, class_names: Sequence[str], seed: int, *, n_train: int = N_TRAIN,
                  n_test: int = N_TEST) -> tuple[np.ndarray, np.ndarray]:
    """Per class, ``n_test`` test and up to ``n_train`` train indices into ``labels`` (sorted int64).

    Each class with n meshes gives ``min(n_test, n // 2)`` test meshes and
    ``min(n_train, n − test)`` train meshes, drawn by a permutation from the stream
    ``SeedSequence([seed, hash(class name)])`` of the class's meshes in their order in
    ``labels``: a class's split does not depend on which other classes are loaded. The rest
    is unused (the paper: 10 + 4 of 20).
    """
    labels = np.asarray(labels, dtype=np.int64)
    train, test = [], []
    for c, cname in enumerate(class_names):
        idx = np.flatnonzero(labels == c)
        n = len(idx)
        nt = min(int(n_test), n // 2)
        nr = min(int(n_train), n - nt)
        perm = np.random.default_rng(np.random.SeedSequence([int(seed), _name_key(cname)])).permutation(n)
        train.append(idx[perm[:nr]])
        test.append(idx[perm[nr:nr + nt]])
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)
    return cat(train), cat(test)


def channel_stats(view_mean: Sequence[np.ndarray], view_mean2: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (16,) from per-mesh (V, 16) weighted means and mean squares.

    Every view of every given mesh counts once; pass the train meshes only.
    """
    if not len(view_mean):
        raise ValueError("normalization statistics need at least one mesh")
    m = np.concatenate([np.asarray(a, dtype=np.float64) for a in view_mean]).mean(axis=0)
    m2 = np.concatenate([np.asarray(a, dtype=np.float64) for a in view_mean2]).mean(axis=0)
    var = m2 - m * m
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        raise ValueError(f"degenerate channel variance {var}")
    return m, np.sqrt(var)


def zbound(x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """The paper's normalization: ``2 clip((x − (μ − 2.5σ)) / 5σ, 0, 1) − 1`` per channel (axis −3).

    ``x`` (..., 16, H, W); returns float32 in [−1, 1]."""
    lo = (np.asarray(mean) - ZBOUND_WIDTH * np.asarray(std)).astype(np.float32)[:, None, None]
    inv = (1.0 / (2 * ZBOUND_WIDTH * np.asarray(std))).astype(np.float32)[:, None, None]
    y = np.subtract(x, lo, out=out, dtype=np.float32)
    y *= inv
    np.clip(y, 0.0, 1.0, out=y)
    y *= 2.0
    y -= 1.0
    return y


# ============================================================================ loader


@dataclass
class CShrec11:
    """One split of conformal SHREC'11, normalized on the fly.

    Attributes
    ----------
    class_names : sorted class names (labels index them).
    mesh_names : per mesh, e.g. ``"T12"`` (sorted by class, then number).
    labels : (M,) int64.
    train_index, test_index : int64 indices into the M meshes (:func:`split_indices`).
    res : (H, W).  num_views : 1 + transforms.
    grid : the equiangular grid the signals live on (``grid.mass``: quadrature weights).
    mean, std : (16,) per-channel statistics of the train meshes (all views).
    folder : the dataset folder.  split_seed : the seed of the split.

    The signals stay on disk as float16 and are memory-mapped per mesh; :meth:`views`
    reads and normalizes only the requested meshes and views.
    """

    class_names: list[str]
    mesh_names: list[str]
    labels: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    res: tuple[int, int]
    num_views: int
    grid: SphereGrid
    mean: np.ndarray
    std: np.ndarray
    folder: Path
    split_seed: int = 0
    mesh_classes: list[str] = field(default_factory=list, repr=False)
    _maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    num_channels = NUM_CHANNELS

    def __len__(self) -> int:
        return len(self.mesh_names)

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened after unpickling
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def signal_path(self, i: int) -> Path:
        return self.folder / "meshes" / f"{self.mesh_names[i]}.npy"

    def _raw(self, i: int) -> np.ndarray:
        arr = self._maps.get(i)
        if arr is None:
            if not 0 <= i < len(self.mesh_names):
                raise IndexError(f"mesh index {i} out of range 0..{len(self.mesh_names) - 1}")
            path = self.signal_path(i)
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read the signals of mesh {self.mesh_names[i]} ({exc})") from exc
            expected = (self.num_views, NUM_CHANNELS, *self.res)
            if arr.shape != expected:
                raise DataError(f"{path}: signals have shape {arr.shape}, expected {expected}")
            self._maps[i] = arr
        return arr

    def raw_views(self, mesh_idx: np.ndarray | int, view_idx: np.ndarray | int | None = None) -> np.ndarray:
        """Unnormalized float16 signals, shaped as :meth:`views`."""
        meshes = np.atleast_1d(np.asarray(mesh_idx, dtype=np.int64))
        if meshes.ndim != 1:
            raise ValueError(f"mesh_idx must be an int or 1-D, got shape {meshes.shape}")
        if view_idx is None:
            sel = None
        else:
            sel = np.asarray(view_idx, dtype=np.int64)
            if sel.ndim == 0:
                sel = np.full((len(meshes), 1), int(sel))
            elif sel.ndim == 1:
                if len(sel) != len(meshes):
                    raise ValueError(f"a 1-D view_idx gives one view per mesh: need {len(meshes)} entries, "
                                     f"got {len(sel)} (use shape (M, k) for k views per mesh)")
                sel = sel[:, None]
            elif sel.ndim != 2 or len(sel) != len(meshes):
                raise ValueError(f"view_idx must be None, an int, (M,) or (M, k) with M = {len(meshes)}, "
                                 f"got shape {sel.shape}")
            if sel.size and (sel.min() < 0 or sel.max() >= self.num_views):
                raise IndexError(f"view index out of range 0..{self.num_views - 1}")
        k = self.num_views if sel is None else sel.shape[1]
        out = np.empty((len(meshes), k, NUM_CHANNELS, *self.res), dtype=np.float16)
        for row, i in enumerate(meshes):
            arr = self._raw(int(i))
            out[row] = arr if sel is None else arr[sel[row]]
        return out

    def views(self, mesh_idx: np.ndarray | int, view_idx: np.ndarray | int | None = None) -> np.ndarray:
        """float32 (len(mesh_idx), V or k, 16, H, W) normalized signals in [−1, 1]; view 0 = the map itself.

        ``view_idx``: None (all V views), an int (that view of every mesh), (M,) (one view
        per mesh, e.g. a random one for training) or (M, k). An int ``mesh_idx`` counts as one mesh.
        """
        return self.normalize(self.raw_views(mesh_idx, view_idx))

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """zbound with this split's train statistics: (..., 16, H, W) → float32 in [−1, 1]."""
        return zbound(x, self.mean, self.std)

    def extras(self, i: int) -> dict[str, np.ndarray]:
        """The mesh's sphere map, HKS, eigenvalues, Möbius matrices (T, 2, 2) and per-view stats."""
        path = self.folder / "meshes" / f"{self.mesh_names[i]}.npz"
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def with_split(self, split_seed: int) -> CShrec11:
        """The same meshes with another split (and its own train statistics)."""
        train, test = split_indices(self.labels, self.class_names, split_seed)
        mean, std = _train_stats(self.folder, [self.mesh_names[i] for i in train])
        return CShrec11(self.class_names, self.mesh_names, self.labels, train, test, self.res, self.num_views,
                        self.grid, mean, std, self.folder, split_seed, self.mesh_classes)


def _train_stats(folder: Path, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    means, means2 = [], []
    for name in names:
        path = folder / "meshes" / f"{name}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                means.append(z["view_mean"])
                means2.append(z["view_mean2"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read the statistics of mesh {name} ({exc})") from exc
    return channel_stats(means, means2)


def load_cshrec11(cache_dir: str | os.PathLike | None = None, *, res: tuple[int, int] = (96, 192),
                  transforms: int = 30, seed: int = 0, split_seed: int = 0,
                  classes: Sequence[str] | str | None = None, data_root: str | os.PathLike | None = None,
                  build: bool = True, jobs: int = 1, progress: bool = True,
                  source: str | os.PathLike | None = None, _max_per_class: int | None = None,
                  mobius: str = DEFAULT_MODE, severity: float | None = None) -> CShrec11:
    """Open one split of the dataset, building missing meshes first when ``build`` (else DataError).

    Arguments as :func:`build_cshrec11`; ``split_seed`` picks the split and with it the
    train meshes the normalization statistics come from. Meshes already built are checked
    by their record and file sizes (a build verifies sha256).
    """
    H, W = (int(r) for r in res)
    params = recipe_params((H, W), transforms, seed, mobius, severity)
    tarball, source_sha = resolve_source(source, data_root)
    entries, _ = list_source(tarball)
    class_names, chosen = _select(entries, classes, _max_per_class)
    folder = dataset_folder(cache_dir, (H, W), transforms, seed, source_sha, mobius, severity)
    missing = [e for e in chosen if not _verify(folder, e.name, params, source_sha, full=False)]
    if missing:
        if not build:
            raise DataError(f"{folder}: {len(missing)} mesh(es) not built (first {missing[0].relpath}); "
                            f"run `niso data build cshrec11 --res {H}x{W} --transforms {transforms} --seed {seed} "
                            f"--mobius {mobius} --severity {params['severity']}`")
        build_cshrec11(cache_dir, res=(H, W), transforms=transforms, seed=seed, classes=classes, jobs=jobs,
                       data_root=data_root, progress=progress, source=source, _max_per_class=_max_per_class,
                       mobius=mobius, severity=severity)
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[e.cls] for e in chosen], dtype=np.int64)
    names = [e.name for e in chosen]
    train, test = split_indices(labels, class_names, split_seed)
    mean, std = _train_stats(folder, [names[i] for i in train])
    return CShrec11(class_names=list(class_names), mesh_names=names, labels=labels, train_index=train,
                    test_index=test, res=(H, W), num_views=1 + int(transforms), grid=SphereGrid.equiangular(H, W),
                    mean=mean, std=std, folder=folder, split_seed=int(split_seed),
                    mesh_classes=[e.cls for e in chosen])


# ============================================================================ torch dataset


class CShrec11Views:
    """A map-style torch dataset of one split's views: item = (view, label, Möbius matrix).

    Item ``i`` is view ``views[i % len(views)]`` of mesh ``meshes[i // len(views)]``:

    * view : (16, H, W) float32 tensor, normalized to [−1, 1] with the split's train statistics;
    * label : int64 tensor, the class index into ``data.class_names``;
    * mobius : (2, 2) complex128 tensor, the Möbius matrix the view was pulled back with
      (``pullback_matrix(..., mobius=A)`` in :func:`compute_mesh_views`); the identity for view 0,
      the mesh's own conformal map.

    Works with ``torch.utils.data.DataLoader`` (worker processes included: the memory maps are
    reopened after pickling) and ``DistributedSampler`` (it has ``__len__``).

    Parameters
    ----------
    data : an opened split (:func:`load_cshrec11`).
    split : "train", "test" or "all".
    views : view indices to serve (default all, 0..num_views−1).
    """

    def __init__(self, data: CShrec11, split: Literal["train", "test", "all"] = "train",
                 views: Sequence[int] | None = None):
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.data = data
        self.split = split
        self.meshes = {"train": data.train_index, "test": data.test_index,
                       "all": np.arange(len(data.mesh_names))}[split].astype(np.int64)
        self.views = np.arange(data.num_views) if views is None else np.asarray(views, dtype=np.int64)
        if self.views.ndim != 1 or (self.views.size and not (0 <= self.views.min() and self.views.max() < data.num_views)):
            raise ValueError(f"views must be indices in 0..{data.num_views - 1}, got {views!r}")
        self._mobius: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.meshes) * len(self.views)

    def _mobius_of(self, mesh: int) -> np.ndarray:
        """(num_views, 2, 2) complex: the identity, then the mesh's stored Möbius matrices."""
        if mesh not in self._mobius:
            stored = np.asarray(self.data.extras(mesh)["mobius"], dtype=np.complex128)
            self._mobius[mesh] = np.concatenate([np.eye(2, dtype=np.complex128)[None], stored])
        return self._mobius[mesh]

    def __getitem__(self, i: int) -> tuple[Any, Any, Any]:
        # torch is imported here, not at module top: the builder's spawned workers import this
        # module and need no torch
        import torch

        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} (mesh, view) pairs")
        i %= len(self)
        mesh, view = int(self.meshes[i // len(self.views)]), int(self.views[i % len(self.views)])
        x = self.data.views(mesh, view)[0, 0]
        return (torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(int(self.data.labels[mesh])),
                torch.from_numpy(self._mobius_of(mesh)[view].copy()))


# ============================================================================ figure


def plot_views(folder: str | os.PathLike, names: Sequence[str], *, channel: int = 8, n_mobius: int = 3):
    """A grid: one row per mesh, its view 0 and ``n_mobius`` Möbius views of one HKS channel.

    Raw (unnormalized) values, one colour scale per row. Returns the Figure.
    """
    from niso_geom.plotting import pyplot

    plt = pyplot()
    folder = Path(folder)
    manifest = read_manifest(folder)
    times = manifest["params"]["hks_times"]
    if not 0 <= channel < len(times):
        raise ValueError(f"channel must be in 0..{len(times) - 1}, got {channel}")
    cols = 1 + n_mobius
    fig, axes = plt.subplots(len(names), cols, figsize=(2.6 * cols + 0.6, 1.5 * len(names) + 0.5), squeeze=False,
                             layout="constrained")
    for r, name in enumerate(names):
        if name not in manifest["meshes"]:
            raise DataError(f"{folder}: mesh {name} is not built here (built: {len(manifest['meshes'])} meshes)")
        arr = np.load(folder / "meshes" / f"{name}.npy", mmap_mode="r")
        views = list(range(min(cols, arr.shape[0])))
        imgs = [np.asarray(arr[v, channel], dtype=np.float32) for v in views]
        vmin, vmax = min(i.min() for i in imgs), max(i.max() for i in imgs)
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(imgs):
                ax.axis("off")
                continue
            im = ax.imshow(imgs[c], extent=(0, 360, 180, 0), aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax,
                           interpolation="nearest")
            ax.set_title(f"{manifest['meshes'][name]['class']} {name}: " + ("map" if c == 0 else f"Möbius {c}"),
                         fontsize=8)
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.03, pad=0.01)
    fig.suptitle(f"HKS − 1 at t = {times[channel]:.3g} (unit-area mesh) on the sphere, "
                 f"{arr.shape[2]}x{arr.shape[3]} (raw values)", fontsize=9)
    return fig
