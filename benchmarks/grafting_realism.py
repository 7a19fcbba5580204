"""How realistic is noise grafting? Grafted vs simulated-stereo depth on held-out scenes.

    .venv/bin/python benchmarks/grafting_realism.py [--weights models/depth_noise] [--scenes 8] [--json out.json]
        [--allow-dirty]

Pile / packed scenes of the validation objects (never seen in training), each object given a material
drawn as in training (diffuse 55 %, dark, specular, transparent 15 % each), rendered by the physically
based D435 simulator from the side view and one random view. Its raw depth is the reference ("stereo");
the renderer's clean depth gets artifacts from:

- ``graft``: the depth-noise diffusion model (holes + bounded, zero-mean disparity error);
- ``graft-holes``: the same samples, holes only (valid pixels keep the clean depth);
- ``dex``: the parametric Dex-Net noise of the published benchmarks (no holes);
- ``clean``: nothing.

Figures (surface pixels nearer than 1 m whose stereo match lies inside the right image, as in
``stereo_sim.py``): invalid ratio; invalid ratio by distance to the nearest depth edge, with the mean
absolute difference to stereo's curve; the valid pixels' error against the clean depth (MAE, RMSE,
90th percentile) overall and by distance, and the total-variation distance between each method's
histogram of disparity errors and stereo's (0 = same, 1 = disjoint; closer = better).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_sim import EDGE_BINS_PX, edge_distance_px  # noqa: E402

from diffgrasp_ros.camera.frame import DepthFrame  # noqa: E402
from diffgrasp_ros.depth.grafting import graft  # noqa: E402
from diffgrasp_ros.depth.noise_diffusion import DEFAULT_WEIGHTS, NoiseDiffusionModel  # noqa: E402
from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results  # noqa: E402
from diffgrasp_ros.geometry import camera_on_sphere  # noqa: E402
from diffgrasp_ros.sim.camera import side_view  # noqa: E402
from diffgrasp_ros.sim.noise import apply_depth_noise  # noqa: E402
from diffgrasp_ros.sim.object_set import default_objects  # noqa: E402
from diffgrasp_ros.sim.stereo import D435Simulator  # noqa: E402
from diffgrasp_ros.sim.world import ClutterWorld  # noqa: E402

METHODS = ("stereo", "graft", "graft-holes", "dex", "clean")
MATERIALS = {"diffuse": 0.55, "dark": 0.15, "specular": 0.15, "transparent": 0.15}
DISTANCE_BINS_M = ((0.3, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 1.0))
DISPARITY_HIST_PX = np.concatenate([[-np.inf], np.linspace(-1.0, 1.0, 41), [np.inf]])  # 0.05 px bins + tails


class Tally:
    """Per-method pixel counts and errors accumulated over frames."""

    def __init__(self):
        self.edge = np.zeros((len(EDGE_BINS_PX), 2), np.int64)  # invalid, total
        self.errors_m: list[np.ndarray] = []
        self.depths_m: list[np.ndarray] = []
        self.disparity_hist = np.zeros(len(DISPARITY_HIST_PX) - 1, np.int64)

    def add(self, depth: np.ndarray, clean: np.ndarray, counted: np.ndarray, distance_px: np.ndarray, fb: float):
        for i, (low, high) in enumerate(EDGE_BINS_PX):
            in_bin = counted & (distance_px >= low) & (distance_px < high + 1)
            self.edge[i] += ((in_bin & (depth <= 0)).sum(), in_bin.sum())
        valid = counted & (depth > 0)
        self.errors_m.append((depth[valid] - clean[valid]).astype(np.float64))
        self.depths_m.append(clean[valid].astype(np.float64))
        self.disparity_hist += np.histogram(fb / depth[valid] - fb / clean[valid], DISPARITY_HIST_PX)[0]

    def summary(self) -> dict:
        errors, depths = np.concatenate(self.errors_m), np.concatenate(self.depths_m)

        def spread(e: np.ndarray) -> dict:
            a = 1000.0 * np.abs(e)
            return {"mae_mm": float(a.mean()), "rmse_mm": float(np.sqrt((a**2).mean())),
                    "p90_mm": float(np.percentile(a, 90)), "pixels": int(len(e))} if len(e) else {}

        invalid, total = self.edge.sum(axis=0)
        return {"invalid_ratio": float(invalid / total),
                "invalid_by_edge_distance": [float(b / max(t, 1)) for b, t in self.edge],
                "error": spread(errors),
                "error_by_distance": [spread(errors[(depths >= lo) & (depths < hi)]) for lo, hi in DISTANCE_BINS_M],
                "disparity_hist": (self.disparity_hist / max(self.disparity_hist.sum(), 1)).tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="depth-noise model folder")
    parser.add_argument("--scenes", type=int, default=8, help="validation scenes, two views each (default: 8)")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed (training data used other seeds)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.json, code_paths=[args.weights, Path(__file__).with_name("stereo_sim.py")])

    import torch

    torch.set_num_threads(1)
    model = NoiseDiffusionModel.from_pretrained(args.weights)
    rng = np.random.default_rng(args.seed)
    tallies = {m: Tally() for m in METHODS}
    by_material: dict[str, np.ndarray] = {m: np.zeros((2, 2), np.int64) for m in MATERIALS}  # stereo/graft × bad/all
    graft_s: list[float] = []
    with ClutterWorld(default_objects("val"), seed=args.seed) as world:
        simulator = D435Simulator(world.p, seed=args.seed)
        fb = simulator.config.focal_baseline_px_m
        c = world.workspace.size_m / 2.0
        for s in range(args.scenes):
            world.generate("pile" if s % 2 == 0 else "packed")
            random_view = camera_on_sphere((c, c, world.workspace.table_height_m + 0.05), rng.uniform(0.45, 0.9),
                                           np.deg2rad(rng.uniform(15, 65)), rng.uniform(0, 2 * np.pi))
            for T in (side_view(), random_view):
                names = list(MATERIALS)
                materials = {b: str(rng.choice(names, p=list(MATERIALS.values()))) for b in world.object_ids}
                frame = simulator.render(T, materials)
                clean = frame.clean_depth_m
                distance_px, counted = edge_distance_px(frame, fb)
                start = time.perf_counter()
                grafted = graft(clean, model, rng, steps=args.steps)
                graft_s.append(time.perf_counter() - start)
                holes_only = np.where(grafted > 0, clean, 0.0)
                dex = apply_depth_noise(DepthFrame(clean, frame.intrinsics), "dex", rng).depth_m
                for method, depth in zip(METHODS, (frame.depth_m, grafted, holes_only, dex, clean)):
                    tallies[method].add(depth, clean, counted, distance_px, fb)
                for body, material in materials.items():
                    on = (frame.body_ids == body) & (clean > 0)
                    for row, depth in enumerate((frame.depth_m, grafted)):
                        by_material[material][row] += ((on & (depth <= 0)).sum(), on.sum())

    results = {m: t.summary() for m, t in tallies.items()}
    stereo = results["stereo"]
    for method, row in results.items():
        row["edge_curve_mad"] = float(np.mean(np.abs(np.subtract(row["invalid_by_edge_distance"],
                                                                stereo["invalid_by_edge_distance"]))))
        difference = np.subtract(row["disparity_hist"], stereo["disparity_hist"])
        row["disparity_hist_tv"] = float(0.5 * np.abs(difference).sum())

    frames = 2 * args.scenes
    print(f"grafting realism: {frames} frames of {args.scenes} validation scenes, weights {args.weights}, "
          f"{args.steps or model.config.sampling_steps} DDIM steps, graft {1000 * np.median(graft_s):.0f} ms/frame")
    print(f"  {'method':<12} {'invalid':>8} {'edge-curve':>11} {'disp-hist':>10} {'MAE mm':>8} {'RMSE mm':>8} "
          f"{'p90 mm':>7}   (valid pixels vs clean depth; distances to stereo)")
    for method, row in results.items():
        e = row["error"]
        print(f"  {method:<12} {row['invalid_ratio']:8.1%} {row['edge_curve_mad']:11.3f} "
              f"{row['disparity_hist_tv']:10.3f} {e['mae_mm']:8.2f} {e['rmse_mm']:8.2f} {e['p90_mm']:7.2f}")
    print("  invalid ratio by distance to the nearest depth edge:")
    print("    " + f"{'px':>8}" + "".join(f"{m:>12}" for m in METHODS))
    for i, (low, high) in enumerate(EDGE_BINS_PX):
        label = f"{low}-{high}" if high < 10_000 else f">={low}"
        ratios = (results[m]["invalid_by_edge_distance"][i] for m in METHODS)
        print("    " + f"{label:>8}" + "".join(f"{r:12.1%}" for r in ratios))
    print("  valid-pixel MAE / p90 (mm) by clean depth:")
    print("    " + f"{'m':>9}" + "".join(f"{m:>16}" for m in METHODS))
    for i, (lo, hi) in enumerate(DISTANCE_BINS_M):
        cells = []
        for m in METHODS:
            e = results[m]["error_by_distance"][i]
            cells.append(f"{e['mae_mm']:7.2f} / {e['p90_mm']:5.2f}" if e else f"{'-':>15}")
        print("    " + f"{lo:.1f}-{hi:.1f}".rjust(9) + "".join(f"{c:>16}" for c in cells))
    print("  invalid ratio on objects by material (the model sees geometry only, not materials):")
    for material, ((s_bad, s_all), (g_bad, g_all)) in by_material.items():
        if s_all:
            print(f"    {material:<12} stereo {s_bad / s_all:6.1%}   graft {g_bad / g_all:6.1%}   ({s_all} px)")
    if args.json:
        args.json.write_text(json.dumps({"context": context,
                                         "scenes": args.scenes, "seed": args.seed, "weights": str(args.weights),
                                         "methods": results, "graft_median_ms": 1000 * float(np.median(graft_s)),
                                         "invalid_by_material": {k: v.tolist() for k, v in by_material.items()}},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
