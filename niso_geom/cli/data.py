"""``niso data build|show``: build the project's datasets from the shared data (cached, checksummed)."""

from __future__ import annotations

import argparse
import time


from niso_geom.cli._common import add_data_root, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build or show datasets (homnist; cshrec11 once its builder lands)")
    dsub = p.add_subparsers(dest="data_command", metavar="{build,show}")
    dsub.required = True
    b = dsub.add_parser("build", help="build a dataset into the cache")
    bsub = b.add_subparsers(dest="dataset", metavar="DATASET")
    bsub.required = True
    h = bsub.add_parser("homnist", help="MNIST test digits padded to 40×40 and warped by 32 homographies each")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--subset", type=int, default=None, help="use the first N test digits (default all 10,000)")
    h.add_argument("--sampler", choices=["metropolis", "gaussian"], default="metropolis")
    h.add_argument("--scale", type=float, default=1.0, help="factor on the homConv sl(3) scales")
    h.add_argument("--homographies", type=int, default=32)
    h.add_argument("--idx-dir", default=None, help="read t10k-* IDX files from this folder instead")
    h.add_argument("--cache-dir", default=None, help="cache root (default $NISO_GEOM_CACHE_DIR)")
    h.add_argument("--threads", type=int, default=1)
    h.add_argument("--no-progress", action="store_true")
    add_data_root(h)
    h.set_defaults(func=cmd_build_homnist)


def cmd_build_homnist(args: argparse.Namespace) -> int:
    import numpy as np

    from niso_geom.data.homnist import build_homnist

    t0 = time.perf_counter()
    ds = build_homnist(args.cache_dir, seed=args.seed, subset=args.subset, progress=not args.no_progress,
                       data_root=args.data_root, idx_dir=args.idx_dir, num_homographies=args.homographies,
                       scale=args.scale, sampler=args.sampler, threads=args.threads)
    secs = time.perf_counter() - t0
    counts = np.bincount(ds.labels, minlength=10)
    rows = [["images", len(ds)], ["digits", len(np.unique(ds.digit_index))], ["homographies per digit", args.homographies],
            ["sampler", args.sampler], ["seed", args.seed], ["per-label counts", " ".join(map(str, counts))],
            ["cache file", ds.path if ds.path else "(not cached)"], ["seconds", f"{secs:.1f}"]]
    print(format_table(rows, ["homNIST", "value"]))
    return 0



