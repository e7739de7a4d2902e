"""``niso mesh sphere-map``: map a closed genus-0 mesh conformally onto the unit sphere."""

from __future__ import annotations

import argparse
from pathlib import Path

from niso_geom.cli._common import add_data_root, check_output_file, format_table, resolve_mesh
from niso_geom.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mesh", help="mesh tools: conformal sphere map")
    msub = p.add_subparsers(dest="mesh_command", metavar="{sphere-map}")
    msub.required = True
    s = msub.add_parser("sphere-map", help="bijective near-conformal map of a closed genus-0 mesh onto the unit "
                                           "sphere, written as PLY, with its quality report (docs/conformal.md)")
    s.add_argument("mesh", help="a mesh file (OBJ/OFF/PLY/STL) or a mesh name in the data root (e.g. spot)")
    s.add_argument("--out", type=Path, required=True, help="output .ply: the input's vertices and faces, on the sphere")
    s.add_argument("--refine", choices=["auto", "always", "never"], default="auto",
                   help="bijective finish: when needed (auto), also on valid flow images (always), or never")
    s.add_argument("--no-weld", action="store_true", help="do not weld coincident vertices of an open-looking mesh")
    add_data_root(s)
    s.set_defaults(func=cmd_sphere_map)


def cmd_sphere_map(args: argparse.Namespace) -> int:
    from niso_geom.geometry.conformal import sphere_map_file

    path = resolve_mesh(args.mesh, args.data_root)
    if args.out.suffix.lower() != ".ply":
        raise UsageError(f"--out {args.out}: the sphere map is written as PLY; give a .ply file name")
    check_output_file(args.out, inputs=(path,))  # before the map is computed
    rep = sphere_map_file(path, args.out, weld=not args.no_weld, refine=args.refine, name=path.name)
    rows = [["mesh", f"{path} ({rep.n_vertices} vertices, {rep.n_faces} faces)"],
            ["flipped faces", rep.n_flipped],
            ["angle error mean / max (rad)", f"{rep.angle_error_mean:.4f} / {rep.angle_error_max:.3f}"],
            ["QC ratio mean / max", f"{rep.qc_mean:.3f} / {rep.qc_max:.2f}"],
            ["|log area ratio| mean / max", f"{rep.area_distortion_mean:.3f} / {rep.area_distortion_max:.2f}"],
            ["min area ratio", f"{rep.min_area_ratio:.2e}"],
            ["centroid norm", f"{rep.centroid_norm:.1e}"],
            ["method", rep.method],
            ["flow / Newton iterations", f"{rep.flow_iterations} / {rep.newton_iterations}"],
            ["seconds", f"{rep.seconds:.2f}"],
            ["written", str(args.out)]]
    print(format_table(rows, ["sphere map", "value"]))
    return 0 if rep.bijective else 1
