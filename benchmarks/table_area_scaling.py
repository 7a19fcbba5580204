"""How planning time grows with table area at a fixed object density (tiled planning, `scene.tiling`).

    .venv/bin/python benchmarks/table_area_scaling.py [--methods baseline igd] [--sizes 0.3x0.3 0.6x0.45 ...]
        [--density 40] [--scenes 3] [--repeats 3] [--json out.json] [--markdown out.md] [--allow-dirty]

Renders `--scenes` synthetic tabletops per size (`sim.tabletop`: boxes and cylinders at `--density`
objects per m², a 1280x720 D435-like camera that sees the whole table), then plans each `--repeats`
times per method over the whole table (true camera pose and area; one warm-up plan first). Prints per
method and size the median time of fusion + planning, the tiles used, the grasps found, the time per
square metre and its ratio to the median time per square metre over all sizes (within ±30 % is the
target: time proportional to area). One torch thread. The Markdown table is printed (and written to
``--markdown``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, method_code_paths, prepare_results,
                                                 provenance_markdown, write_text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["baseline", "igd"])
    parser.add_argument("--sizes", nargs="+", default=["0.3x0.3", "0.6x0.45", "0.9x0.6", "1.2x0.9"],
                        help="table areas XxY in metres")
    parser.add_argument("--density", type=float, default=40.0, help="objects per square metre (default: 40)")
    parser.add_argument("--scenes", type=int, default=3, help="tabletops per size (default: 3)")
    parser.add_argument("--repeats", type=int, default=3, help="plans per tabletop and method (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.json, args.markdown, code_paths=method_code_paths(args.methods))

    import torch

    from diffgrasp_ros import make_planner
    from diffgrasp_ros.geometry import transform_points
    from diffgrasp_ros.sim.tabletop import render_tabletop

    torch.set_num_threads(1)
    sizes = [tuple(float(v) for v in s.split("x")) for s in args.sizes]
    tables = {s: [render_tabletop(s, args.density, seed) for seed in range(args.scenes)] for s in sizes}
    figures: dict = {"context": context, "density_per_m2": args.density, "methods": {}}
    for method in args.methods:
        planner = make_planner(method)
        warm = tables[sizes[0]][0]
        planner.plan_from_depth(warm.depth, warm.T_workspace_camera, warm.area)
        rows = []
        for size in sizes:
            times, tiles, found = [], [], []
            for table in tables[size]:
                points = transform_points(table.T_workspace_camera, table.depth.to_points(stride=2))
                tiles.append(len(planner.workspace_tiles(table.area, points)))
                for _ in range(args.repeats):
                    result = planner.plan_from_depth(table.depth, table.T_workspace_camera, table.area)
                    times.append(result.timings_s["fusion"] + result.timings_s["plan"])
                    found.append(len(result.grasps))
            area_m2 = size[0] * size[1]
            rows.append({"size_m": list(size), "area_m2": area_m2, "objects": len(tables[size][0].object_centres_m),
                         "tiles_median": float(np.median(tiles)), "grasps_median": float(np.median(found)),
                         "time_s_median": float(np.median(times)), "s_per_m2": float(np.median(times)) / area_m2})
        reference = float(np.median([r["s_per_m2"] for r in rows]))
        for r in rows:
            r["ratio_to_median_s_per_m2"] = r["s_per_m2"] / reference
        figures["methods"][method] = rows

    lines = [f"# Planning time against table area ({args.density:g} objects/m², {args.scenes} tabletops x "
             f"{args.repeats} plans per size)", "", *provenance_markdown(context), "",
             "| method | table [m] | objects | tiles | grasps | time [s] (median) | s / m² "
             "| ratio to median s / m² |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, rows in figures["methods"].items():
        for r in rows:
            lines.append(f"| {method} | {r['size_m'][0]:.2f} x {r['size_m'][1]:.2f} | {r['objects']} "
                         f"| {r['tiles_median']:.0f} | {r['grasps_median']:.0f} | {r['time_s_median']:.2f} "
                         f"| {r['s_per_m2']:.2f} | {r['ratio_to_median_s_per_m2']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.markdown:
        write_text(args.markdown, text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
