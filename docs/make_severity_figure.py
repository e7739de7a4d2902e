"""Write docs/figures/cshrec11_severity.png: one shrec_16 mesh through paper-mode views of growing
severity (|c| of the 3-D inversion from mild to the default 1.2 and beyond), each titled with its k.
Usage: ``python docs/make_severity_figure.py [--mesh man] [--res 32x64] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

from niso_geom import plotting
from niso_geom.data.cshrec11 import list_source
from niso_geom.data.cshrec11_views import plot_severities
from niso_geom.geometry.mesh_io import read_mesh
from niso_geom.shared_data import data_file
from niso_geom.threads import set_blas_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mesh", default="man", help="a class (its first mesh) or a mesh name such as T12")
    p.add_argument("--res", default="32x64")
    p.add_argument("--severities", default="3,2,1.5,1.2,1.05")
    p.add_argument("--channel", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("docs/figures/cshrec11_severity.png"))
    args = p.parse_args()
    set_blas_threads(1)
    tarball = data_file("shrec_16.tar.gz")
    entries, _ = list_source(tarball)
    entry = next(e for e in entries if args.mesh in (e.cls, e.name))
    H, W = (int(x) for x in args.res.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(tarball) as tar:
        tar.extract(entry.member, tmp, filter="data")
        V, F = read_mesh(Path(tmp) / entry.member)
    fig = plot_severities(V, F, [float(s) for s in args.severities.split(",")], title=f"{entry.cls} {entry.name}",
                          res=(H, W), channel=args.channel)
    plotting.save(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
