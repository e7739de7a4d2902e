"""The ``niso`` command line.

Each command group lives in its own module under ``niso_geom.cli`` and exposes
``register(subparsers)``, which adds its parsers and sets ``func`` on them. The
module list below is the only place that names them, so adding a command is a
new module plus one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from niso_geom import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "tour",
    "domain",
    "cache",
    "spectra",
    "data",
    "homnist",
    "cshrec11",
    "mesh",
    "pose",
)


def installed_version() -> str:
    """The installed distribution's version; the package's ``__version__`` when run from a source tree
    that was never installed."""
    try:
        return metadata.version("niso_geom")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="niso",
        description="niso_geom: learned-versus-analytic geometry (Neural Isometries in PyTorch).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"niso_geom.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from niso_geom.errors import NisoGeomError

    try:
        return int(args.func(args) or 0)
    except NisoGeomError as exc:  # a clear one-line error, not a traceback
        print(f"niso: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
