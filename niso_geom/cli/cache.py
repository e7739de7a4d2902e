"""``niso cache info|clear``."""

from __future__ import annotations

import argparse

from niso_geom.cli._common import format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="inspect or clear the on-disk cache ($NISO_GEOM_CACHE_DIR)")
    csub = p.add_subparsers(dest="cache_command", metavar="{info,clear}")
    csub.required = True
    for name, func, text in (("info", cmd_info, "entries and sizes per namespace"),
                             ("clear", cmd_clear, "remove cached entries")):
        c = csub.add_parser(name, help=text)
        c.add_argument("--cache-dir", default=None, help="cache root (default: $NISO_GEOM_CACHE_DIR or the user cache dir)")
        if name == "clear":
            c.add_argument("--namespace", default=None, help="only this namespace (e.g. eigenbasis)")
        c.set_defaults(func=func)


def cmd_info(args: argparse.Namespace) -> int:
    from niso_geom.cache import DiskCache

    info = DiskCache(args.cache_dir).info()
    print(f"cache root: {info['root']}")
    rows = [[ns, v["entries"], f"{v['bytes'] / 2**20:.2f} MiB"] for ns, v in info["namespaces"].items()]
    print(format_table(rows, ["namespace", "entries", "size"]) if rows else "(empty)")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    from niso_geom.cache import DiskCache

    cache = DiskCache(args.cache_dir)
    n = cache.clear(args.namespace)
    print(f"removed {n} file(s) from {cache.root}" + (f"/{args.namespace}" if args.namespace else ""))
    return 0
