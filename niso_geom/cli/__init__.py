"""The ``niso`` command line.

Each command group lives in its own module under ``niso_geom.cli`` and exposes
``register(subparsers)``, which adds its parsers and sets ``func`` on them. The
module list below is the only place that names them, so adding a command is a
new module plus one line here.

Errors: every failure is one line on stderr, ``niso: error: …``, naming the flag or
file and the value, with exit code 2 and no traceback (argparse's own errors too).
``--debug`` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from niso_geom import __version__
from niso_geom.errors import NisoGeomError

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

EXIT_ERROR = 2
PREFIX = "niso: error: "


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``niso: error: niso domain spectrum: argument -k: …``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(one_line(f"{self.prog}: {message} (see {self.prog} --help)"), file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def one_line(message: str) -> str:
    """``niso: error: MESSAGE`` on a single line (a message's own prefix is not repeated)."""
    text = " ".join(str(message).split())
    while text.startswith(PREFIX.strip()):
        text = text[len(PREFIX.strip()):].strip()
    return PREFIX + text


def installed_version() -> str:
    """The installed distribution's version; the package's ``__version__`` when run from a source tree
    that was never installed."""
    try:
        return metadata.version("niso_geom")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="niso",
        description="niso_geom: learned-versus-analytic geometry (Neural Isometries in PyTorch).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (may be given anywhere)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"niso_geom.cli.{name}").register(sub)
    return parser


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NisoGeomError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'MemoryError'}); try a smaller size or resolution"
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror or exc}" if exc.filename is not None else str(exc)
    return f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(one_line("interrupted"), file=sys.stderr)
        return 130
    except SystemExit as exc:  # a command's own "niso: error: ..." exit: one line, exit code 2
        if isinstance(exc.code, str):
            if debug:
                traceback.print_exc()
            print(one_line(exc.code), file=sys.stderr)
            exc.code = EXIT_ERROR
            exc.args = (one_line(str(exc.args[0])),) if exc.args else exc.args
        raise
    except Exception as exc:  # noqa: BLE001  one line instead of a traceback (--debug shows it)
        if debug:
            traceback.print_exc()
        print(one_line(_describe(exc)), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
