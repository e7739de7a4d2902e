"""``niso cache info|clear``."""

from __future__ import annotations

import argparse

from niso_geom.cli._common import format_table
from niso_geom.errors import CacheError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="inspect or clear the on-disk cache ($NISO_GEOM_CACHE_DIR)")
    csub = p.add_subparsers(dest="cache_command", metavar="{info,clear}")
    csub.required = True
    for name, func, text in (("info", cmd_info, "entries and sizes per namespace"),
                             ("clear", cmd_clear, ("remove cached entries (only files the cache recognises "
                                                   "as its own; anything else in the folder is left alone)"))):
        c = csub.add_parser(name, help=text)
        c.add_argument("--cache-dir", default=None, help="cache root (default: $NISO_GEOM_CACHE_DIR or the user cache dir)")
        if name == "clear":
            c.add_argument("--namespace", default=None,
                           help="only this namespace, a plain name (e.g. eigenbasis, homnist, cshrec11)")
        c.set_defaults(func=func)


def _cache(args: argparse.Namespace):
    from niso_geom.cache import DiskCache

    try:
        return DiskCache(args.cache_dir)
    except ValueError as exc:
        raise UsageError(f"--cache-dir {args.cache_dir}: {exc}") from exc


def _foreign_note(foreign: list[str]) -> str:
    if not foreign:
        return ""
    return f"{len(foreign)} file(s) in the cache folder are not cache entries and were left alone, e.g. {foreign[0]}"


def cmd_info(args: argparse.Namespace) -> int:
    info = _cache(args).info()
    print(f"cache root: {info['root']}")
    rows = [[ns, v["entries"], f"{v['bytes'] / 2**20:.2f} MiB", v["temp_files"]]
            for ns, v in info["namespaces"].items()]
    print(format_table(rows, ["namespace", "entries", "size", "temp files"]) if rows else "(empty)")
    note = _foreign_note(info["foreign_files"])
    if note:
        print(note.replace("were left alone", "are not counted"))
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    cache = _cache(args)
    try:
        n = cache.clear(args.namespace)
    except CacheError as exc:
        raise UsageError(f"--namespace {args.namespace!r}: {exc}") from exc
    print(f"removed {n} file(s) from {cache.root}" + (f"/{args.namespace}" if args.namespace else ""))
    note = _foreign_note(cache.info()["foreign_files"] if args.namespace is None else [])
    if note:
        print(note)
    return 0
