"""Locate and verify the real data the project uses (meshes, SHREC'11, MNIST).

The data root is, in order: an explicit ``root`` argument (the CLI's ``--data-root``),
the ``NISO_GEOM_DATA`` environment variable, then, only when niso_geom runs from a source
checkout (not from an installed wheel), ``../shared/data`` beside that checkout or beside a
checkout that is the current directory. Every file is checked against the
root's ``SHA256SUMS`` before use; a missing or corrupt file raises
:class:`~niso_geom.errors.DataError` saying where it looked.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from niso_geom.errors import DataError

ENV_VAR = "NISO_GEOM_DATA"
_CHECKOUT = Path(__file__).resolve().parents[1]


def is_source_checkout(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a niso_geom source tree (pyproject.toml beside niso_geom/)."""
    folder = Path(folder)
    return (folder / "pyproject.toml").is_file() and (folder / "niso_geom" / "__init__.py").is_file()


def _candidates(root: str | os.PathLike | None) -> list[tuple[str, Path]]:
    if root is not None:
        return [("--data-root", Path(root))]
    out: list[tuple[str, Path]] = []
    if os.environ.get(ENV_VAR):
        return [(f"${ENV_VAR}", Path(os.environ[ENV_VAR]))]
    # an installed package sits in site-packages: ../shared/data beside it would be meaningless
    if is_source_checkout(_CHECKOUT):
        out.append(("../shared/data beside the checkout", _CHECKOUT.parent / "shared" / "data"))
    if is_source_checkout(Path.cwd()) and Path.cwd().resolve() != _CHECKOUT:
        out.append(("../shared/data beside the checkout in the working directory",
                    Path.cwd().parent / "shared" / "data"))
    return out


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the data root directory (see module docstring for the search order)."""
    tried = []
    for how, path in _candidates(root):
        if path.is_dir():
            return path.resolve()
        tried.append(f"{how}: {path}")
    where = "looked in " + "; ".join(tried) if tried else (
        f"no --data-root given, ${ENV_VAR} is not set, and niso_geom is installed rather than run from a"
        " source checkout (so there is no ../shared/data fallback)")
    raise DataError(
        f"shared data not found: {where}. Pass --data-root DIR or set {ENV_VAR}=DIR to the folder holding"
        " SHA256SUMS (`niso data info` shows the search and the layout; docs/data.md says where to get the data)."
    )


@lru_cache(maxsize=8)
def _checksums(sums_file: Path, mtime: float) -> dict[str, str]:
    """``SHA256SUMS`` as {relative path: hex digest}; a malformed line is a DataError naming it."""
    try:
        text = sums_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{sums_file}: cannot be read ({exc})") from exc
    table = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]) or not parts[1].strip().lstrip("*"):
            raise DataError(f"{sums_file}: line {lineno} is not 'SHA256  FILE' (64 hex digits, then a name):"
                            f" {line.strip()[:80]!r}")
        table[parts[1].strip().lstrip("*")] = parts[0].lower()
    return table


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def sha256_file(path: Path, size: int, mtime: float) -> str:
    """:func:`file_sha256`, remembered while the file's size and mtime stay the same."""
    return file_sha256(path)


def data_file(relpath: str, root: str | os.PathLike | None = None, *, verify: bool = True) -> Path:
    """Path of ``relpath`` under the data root, verified against ``SHA256SUMS``.

    Raises :class:`DataError` if the file is missing, not listed, or its checksum differs.
    """
    base = data_root(root)
    path = base / relpath
    if not path.is_file():
        raise DataError(f"{relpath} not found under the data root {base} (looked for {path})")
    if verify:
        sums = base / "SHA256SUMS"
        if not sums.is_file():
            raise DataError(f"{sums} is missing: cannot verify {relpath}")
        table = _checksums(sums, sums.stat().st_mtime)
        key = Path(relpath).as_posix()
        if key not in table:
            raise DataError(f"{relpath} is not listed in {sums}")
        st = path.stat()
        got = sha256_file(path, st.st_size, st.st_mtime)
        if got != table[key]:
            raise DataError(
                f"checksum mismatch for {path}: sha256 {got}, expected {table[key]} (from {sums});"
                " the file is corrupt or was replaced"
            )
    return path


def mesh_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Path of a mesh in ``meshes/`` by stem (``"spot"``) or file name (``"spot.obj"``)."""
    base = data_root(root) / "meshes"
    if "." not in name:
        hits = sorted(base.glob(name + ".*"))
        if not hits:
            raise DataError(f"no mesh named {name!r} in {base}")
        name = hits[0].name
    return data_file(f"meshes/{name}", root)


# --- what `niso data info` / `niso data verify` report ---------------------------------------
EXPECTED_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("SHA256SUMS", "sha256 of every file below, `sha256sum` format", "every command"),
    ("meshes/*.off, meshes/spot.obj", "triangle meshes, by name (`mesh_path('spot')`)",
     "niso domain / tour / mesh, mesh tests"),
    ("mnist/mnist.pkl.gz", "MNIST as the classic gzip'd pickle (50k/10k/10k)", "homNIST, --signals mnist"),
    ("shrec_16.tar.gz", "SHREC'11, MeshCNN's 500-face release: shrec_16/<class>/{train,test}/T<n>.obj",
     "cSHREC'11"),
)


def search_locations(root: str | os.PathLike | None = None) -> list[tuple[str, Path, bool]]:
    """Where :func:`data_root` looks, in order: (how it was chosen, path, whether it is a folder)."""
    return [(how, path, path.is_dir()) for how, path in _candidates(root)]


def verify_all(root: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """Check every file listed in the root's ``SHA256SUMS``: (relative path, "ok" | "missing" |
    "checksum mismatch"), in the order listed. Raises :class:`DataError` without a root or sums."""
    base = data_root(root)
    sums = base / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{sums} is missing: nothing to verify against")
    out = []
    for rel, digest in _checksums(sums, sums.stat().st_mtime).items():
        path = base / rel
        status = "missing" if not path.is_file() else (
            "ok" if file_sha256(path) == digest else "checksum mismatch")
        out.append((rel, status))
    return out
