"""Figures of the simulated active-stereo D435 (``diffgrasp_ros.sim.stereo``).

    .venv/bin/python benchmarks/stereo_sim.py [--scenes 5] [--seed 0] [--out benchmarks/results/stereo_sim]
        [--allow-dirty]

On pile scenes of the validation objects (single side view), with every object given each material in
turn (the table stays diffuse): the invalid-pixel ratio on the objects, the valid object pixels'
depth error against the renderer's exact depth (MAE / RMSE / share off by more than 1 cm; for
``transparent`` that error is the distance to the background the stereo reads through it) and the
render time per frame. With diffuse objects: the invalid ratio by distance to the nearest depth edge
(the matcher fails at discontinuities and in the band the right imager cannot see). On the empty
table: the error by distance (stereo error grows as z²), and the implied disparity error f·B·σ_z / z².
Writes ``<out>.json`` and ``<out>.md`` (the README's invalid-pixel shares and plane RMSE come from them).
About 30 s with the defaults.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 report_paths, write_report)
from diffgrasp_ros.geometry import camera_on_sphere
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.sim.object_set import default_objects
from diffgrasp_ros.sim.stereo import MATERIALS, D435Simulator
from diffgrasp_ros.sim.world import ClutterWorld

EDGE_BINS_PX = ((0, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 10_000))
EDGE_STEP = 0.03  # a depth step between neighbouring surface pixels above 3 % of the depth is an edge
NEAR_M = 1.0  # edge statistics over the workspace's depths, not the far table seen at grazing angles
TABLE_DISTANCES_M = (0.4, 0.6, 0.8, 1.0, 1.4)
REPO = Path(__file__).resolve().parents[1]


def depth_errors(frame, mask: np.ndarray) -> dict:
    valid = mask & frame.valid_mask
    error = (frame.depth_m - frame.clean_depth_m)[valid].astype(np.float64)
    return {"pixels": int(mask.sum()), "invalid": int(mask.sum() - valid.sum()),
            "abs_sum_m": float(np.abs(error).sum()), "sq_sum_m2": float((error**2).sum()),
            "outliers": int((np.abs(error) > 0.01).sum())}


def summarise(parts: list[dict]) -> dict:
    total = {key: sum(p[key] for p in parts) for key in parts[0]}
    valid = total["pixels"] - total["invalid"]
    return {"invalid_ratio": total["invalid"] / total["pixels"],
            "mae_mm": 1000.0 * total["abs_sum_m"] / valid, "rmse_mm": 1000.0 * np.sqrt(total["sq_sum_m2"] / valid),
            "outliers_over_1cm": total["outliers"] / valid, "pixels": total["pixels"]}


def edge_distance_px(frame, focal_baseline_px_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each pixel to the nearest depth edge, and which pixels count: surface nearer than
    ``NEAR_M`` whose match falls inside the right image (the left margin has no partner to match)."""
    z = frame.clean_depth_m.astype(np.float64)
    step = np.zeros(z.shape, bool)
    for axis, pair in ((1, np.s_[:, 1:]), (0, np.s_[1:, :])):
        jump = np.abs(np.diff(z, axis=axis))
        surfaces = np.minimum(z[pair], np.delete(z, -1, axis=axis))  # both neighbours see a surface
        step[pair] |= (surfaces > 0.0) & (jump > EDGE_STEP * surfaces)
    distance = cv2.distanceTransform((~step).astype(np.uint8), cv2.DIST_L2, 5)
    u = np.arange(z.shape[1])[None, :]
    counted = (z > 0.0) & (z < NEAR_M) & (u - focal_baseline_px_m / np.where(z > 0.0, z, np.inf) >= 0.0)
    return distance, counted


def markdown(report: dict) -> str:
    lines = ["# The simulated D435 (`sim.stereo.D435Simulator`)", "", *provenance_markdown(report["context"]),
             f"- {report['scenes']} pile scenes of the validation objects (seed {report['seed']}), side view; every "
             "object given each material in turn, the table diffuse", "",
             "## Objects by material (valid object pixels against the exact depth)", "",
             "| material | invalid | MAE [mm] | RMSE [mm] | off by > 1 cm | object pixels |",
             "| --- | --- | --- | --- | --- | --- |"]
    for material, row in report["materials"].items():
        lines.append(f"| {material} | {100 * row['invalid_ratio']:.1f} % | {row['mae_mm']:.2f} | {row['rmse_mm']:.2f} "
                     f"| {100 * row['outliers_over_1cm']:.1f} % | {row['pixels']} |")
    lines += ["", "`transparent`: the error is the distance to the background the stereo reads through the object.",
              "", f"## Invalid share by distance to the nearest depth edge (diffuse objects, surfaces within "
                  f"{NEAR_M} m)", "", "| distance [px] | invalid | pixels |", "| --- | --- | --- |"]
    for row in report["invalid_by_edge_distance"]:
        lines.append(f"| {row['distance_px']} | {100 * row['invalid_ratio']:.1f} % | {row['pixels']} |")
    lines += ["", "## Empty table, 40° off vertical (plane error by distance)", "",
              "| distance [m] | valid | MAE [mm] | RMSE [mm] | disparity RMS [px] |", "| --- | --- | --- | --- | --- |"]
    for row in report["table"]:
        lines.append(f"| {row['distance_m']:.2f} | {100 * (1 - row['invalid_ratio']):.1f} % | {row['mae_mm']:.2f} "
                     f"| {row['rmse_mm']:.2f} | {row['disparity_rms_px']:.3f} |")
    lines += ["", f"Render time per frame: {report['render_median_ms']:.0f} ms (median)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=5, help="pile scenes (default: 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stereo_sim",
                        help="write <out>.json and <out>.md (default: benchmarks/results/stereo_sim)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, *report_paths(args.out))

    errors: dict[str, list[dict]] = {m: [] for m in MATERIALS}
    times_s: list[float] = []
    edge_counts = np.zeros((len(EDGE_BINS_PX), 2), np.int64)  # invalid, total
    table_rows = []
    with ClutterWorld(default_objects("val"), seed=args.seed) as world:
        simulator = D435Simulator(world.p, seed=args.seed)
        fb = simulator.config.focal_baseline_px_m
        simulator.render(side_view())  # warm-up (imports, allocations)
        for _ in range(args.scenes):
            world.generate("pile")
            for material in MATERIALS:
                start = time.perf_counter()
                frame = simulator.render(side_view(), {body: material for body in world.object_ids})
                times_s.append(time.perf_counter() - start)
                errors[material].append(depth_errors(frame, np.isin(frame.body_ids, world.object_ids)))
                if material == "diffuse":
                    distance, counted = edge_distance_px(frame, fb)
                    for i, (low, high) in enumerate(EDGE_BINS_PX):
                        in_bin = counted & (distance >= low) & (distance < high + 1)
                        edge_counts[i] += ((in_bin & ~frame.valid_mask).sum(), in_bin.sum())
        world.clear()
        for distance_m in TABLE_DISTANCES_M:
            frame = simulator.render(camera_on_sphere((0.15, 0.15, world.workspace.table_height_m), distance_m,
                                                      np.deg2rad(40.0), 0.3))
            centre = np.zeros(frame.depth_m.shape, bool)
            centre[80:400, 160:560] = True  # clear of the left margin
            row = summarise([depth_errors(frame, centre)])
            mean_z = float(frame.clean_depth_m[centre].mean())
            row.update(distance_m=mean_z, disparity_rms_px=row["rmse_mm"] / 1000.0 * fb / mean_z**2)
            table_rows.append(row)

    materials = {m: summarise(parts) for m, parts in errors.items()}
    edges = [{"distance_px": f"{low}-{high}" if high < 10_000 else f">={low}",
              "invalid_ratio": float(bad / max(total, 1)), "pixels": int(total)}
             for (low, high), (bad, total) in zip(EDGE_BINS_PX, edge_counts)]
    render_ms = 1000.0 * statistics.median(times_s)

    report = {"context": context, "scenes": args.scenes, "seed": args.seed, "materials": materials,
              "invalid_by_edge_distance": edges, "table": table_rows, "render_median_ms": render_ms}
    text = markdown(report)
    write_report(args.out, report, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
