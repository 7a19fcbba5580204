"""How well does grafted depth match a real sensor? Paired on the geometry of real frames.

    .venv/bin/python benchmarks/grafting_real.py [--weights models/depth_noise] [--reference-weights OLD]
        [--samples 2] [--sim-frames 6] [--out benchmarks/results/grafting_real] [--allow-dirty]

For every real frame of ../shared/real (its README: ``ucn_tabletop``, ``posecnn_tabletop`` learnable,
``cleargrasp_d435`` evaluation only; ``sixdof_graspnet`` is left out because the source range-cropped its
depth, so its holes are not the sensor's), the frame's holes are filled (``noise_train.stand_in_clean``)
to stand in for clean depth, which is then grafted by

- ``model``: the depth-noise model under test (``--weights``),
- ``reference``: another depth-noise model, e.g. the previously shipped one (``--reference-weights``),
- ``dex``: the parametric Dex-Net noise of the published benchmarks (``sim.noise.apply_depth_noise``),

and each grafted image's invalid share is binned, with the real frame's own, by distance to the nearest
depth edge of the stand-in (px), by surface slant (angle between the stand-in's normal, from the depth
and the intrinsics, and the viewing ray; pixels within 4 px of an edge left out, their normal straddles
the edge) and by range (the stand-in's depth). A method's distance to the real sensor is the mean
absolute difference of its binned shares from the real frames' (per curve, and their mean). The models
are given each frame's own f·B (fx × 50 mm), so disparities keep their meaning in pixels.
``cleargrasp_d435`` (1280×720) is evaluated at half resolution (every second pixel, fx halved), the
pixel scale the models work at.

Error near edges (``cleargrasp_d435``, the only set with ground truth): the histogram of real raw − gt
(mm) on pixels valid in both within 3 px of a ground-truth depth edge, against grafted-onto-gt − gt (gt's
own holes filled first, its valid pixels kept exactly; edges found on the filled gt, as the gt's own
edges are holes), as a total-variation distance (0 = same, 1 =
disjoint), with and without the transparent objects' pixels. The "ground truth" is a second D435
capture with opaque copies, so it carries its own sensor noise.

Reference rows: the physically based D435 simulator (``sim.stereo.D435Simulator``) cannot render the
real scenes, so its curves come from simulated scenes of the validation objects (side view plus one
random view, materials drawn as in training) and are compared with the real frames' unpaired; the two
models' grafts on the same simulated clean depth are given beside it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_sim import EDGE_BINS_PX, EDGE_STEP  # noqa: E402

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results,  # noqa: E402
                                                 provenance_markdown, report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "real"
HOLE_SETS = {"learnable": ("ucn_tabletop", "posecnn_tabletop"), "evaluation": ("cleargrasp_d435",)}
SLANT_BINS_DEG = ((0, 20), (20, 40), (40, 60), (60, 75), (75, 90))
RANGE_BINS_M = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.2), (1.2, 2.0), (2.0, np.inf))
SLANT_EDGE_CLEARANCE_PX = 4
NORMAL_STEP_PX = 3  # central differences over ±3 px: 1 mm depth steps would otherwise tilt normals by ~20°
NEAR_EDGE_PX = 3
ERROR_BINS_MM = np.concatenate([[-np.inf], np.linspace(-20.0, 20.0, 41), [np.inf]])  # 1 mm bins + tails
CURVES = ("edge", "slant", "range")
MATERIALS = {"diffuse": 0.55, "dark": 0.15, "specular": 0.15, "transparent": 0.15}


def edge_distance_px(depth_m: np.ndarray) -> np.ndarray:
    """Distance (px) of each pixel to the nearest depth edge (a step above ``EDGE_STEP`` of the depth
    between neighbouring surface pixels, as in ``stereo_sim.py``)."""
    z = depth_m.astype(np.float64)
    step = np.zeros(z.shape, bool)
    for axis, pair in ((1, np.s_[:, 1:]), (0, np.s_[1:, :])):
        jump = np.abs(np.diff(z, axis=axis))
        surfaces = np.minimum(z[pair], np.delete(z, -1, axis=axis))
        step[pair] |= (surfaces > 0.0) & (jump > EDGE_STEP * surfaces)
    return cv2.distanceTransform((~step).astype(np.uint8), cv2.DIST_L2, 5)


def slant_deg(depth_m: np.ndarray, intrinsics) -> np.ndarray:
    """Angle (degrees) between each pixel's surface normal and its viewing ray; NaN without depth."""
    h, w = depth_m.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = depth_m.astype(np.float64)
    points = np.dstack([(u - intrinsics.cx) * z / intrinsics.fx, (v - intrinsics.cy) * z / intrinsics.fy, z])
    k = NORMAL_STEP_PX
    du = np.zeros_like(points)
    dv = np.zeros_like(points)
    du[:, k:-k] = points[:, 2 * k:] - points[:, :-2 * k]
    dv[k:-k] = points[2 * k:] - points[:-2 * k]
    normal = np.cross(du, dv)
    norm = np.linalg.norm(normal, axis=2) * np.linalg.norm(points, axis=2)
    cosine = np.abs((normal * points).sum(axis=2)) / np.where(norm > 0, norm, np.inf)
    angle = np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0)))
    return np.where((norm > 0) & (z > 0), angle, np.nan)


class Curves:
    """Invalid and total pixel counts per bin of edge distance, slant and range, summed over frames."""

    def __init__(self):
        self.counts = {name: np.zeros((len(bins), 2), np.int64)
                       for name, bins in zip(CURVES, (EDGE_BINS_PX, SLANT_BINS_DEG, RANGE_BINS_M))}

    def add(self, invalid: np.ndarray, geometry: dict) -> None:
        counted = geometry["counted"]
        edge, slant, depth = geometry["edge_px"], geometry["slant_deg"], geometry["depth_m"]
        masks = {
            "edge": [(edge >= lo) & (edge < hi + 1) for lo, hi in EDGE_BINS_PX],
            "slant": [(edge >= SLANT_EDGE_CLEARANCE_PX) & (slant >= lo) & (slant < hi) for lo, hi in SLANT_BINS_DEG],
            "range": [(depth >= lo) & (depth < hi) for lo, hi in RANGE_BINS_M],
        }
        for name, bins in masks.items():
            for i, in_bin in enumerate(bins):
                in_bin = in_bin & counted
                self.counts[name][i] += ((in_bin & invalid).sum(), in_bin.sum())

    def summary(self) -> dict:
        invalid, total = self.counts["range"].sum(axis=0)
        return {"invalid_share": float(invalid / max(total, 1)), "pixels": int(total),
                **{name: [float(b / t) if t else None for b, t in c] for name, c in self.counts.items()},
                **{f"{name}_pixels": [int(t) for _, t in c] for name, c in self.counts.items()}}


def curve_distance(row: dict, target: dict) -> dict:
    """Mean absolute difference of binned invalid shares, per curve and averaged (bins empty in either skipped)."""
    out = {}
    for name in CURVES:
        pairs = [(a, b) for a, b in zip(row[name], target[name]) if a is not None and b is not None]
        out[name] = float(np.mean([abs(a - b) for a, b in pairs])) if pairs else None
    out["mean"] = float(np.mean([out[n] for n in CURVES if out[n] is not None]))
    return out


def geometry_of(clean_m: np.ndarray, intrinsics) -> dict:
    return {"counted": clean_m > 0, "edge_px": edge_distance_px(clean_m), "slant_deg": slant_deg(clean_m, intrinsics),
            "depth_m": clean_m}


def error_histogram(error_m: np.ndarray) -> np.ndarray:
    counts = np.histogram(1000.0 * error_m, ERROR_BINS_MM)[0].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p - q).sum())


def half_resolution(frame):
    """The frame at every second pixel (its intrinsics halved): 1280×720 → 640×360."""
    from dataclasses import replace

    take = np.s_[::2, ::2]
    return replace(frame, depth_m=frame.depth_m[take], color_rgb=frame.color_rgb[take],
                   intrinsics=frame.intrinsics.scaled(0.5),
                   gt_depth_m=None if frame.gt_depth_m is None else frame.gt_depth_m[take],
                   transparent_mask=None if frame.transparent_mask is None else frame.transparent_mask[take])


def grafters(models: dict, samples: int):
    """name → f(clean, intrinsics, rng) → list of grafted depth images."""
    from diffgrasp_ros.camera.frame import DepthFrame
    from diffgrasp_ros.depth.grafting import graft
    from diffgrasp_ros.sim.noise import apply_depth_noise
    from diffgrasp_ros.sim.stereo import D435Config

    def by_model(model):
        return lambda clean, K, rng: [graft(clean, model, rng, focal_baseline_px_m=K.fx * D435Config.baseline_m)
                                      for _ in range(samples)]

    out = {name: by_model(model) for name, model in models.items()}
    out["dex"] = lambda clean, K, rng: [apply_depth_noise(DepthFrame(clean, K), "dex", rng).depth_m
                                        for _ in range(samples)]
    return out


def real_frames_part(methods, samples: int, rng: np.random.Generator, log) -> tuple[dict, dict, list]:
    from diffgrasp_ros.camera.real_frames import load_real_frames
    from diffgrasp_ros.training.noise_train import stand_in_clean

    groups = (*HOLE_SETS, "evaluation_opaque")
    curves = {group: {m: Curves() for m in ("real", *methods)} for group in groups}
    per_frame, graft_s = [], []
    near_edge_hists: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("all", "opaque")}
    for group, sets in HOLE_SETS.items():
        for frame in load_real_frames(REAL, sets):
            if frame.learnable != (group == "learnable"):
                raise RuntimeError(f"{frame.key}: its set is in the wrong group")
            if frame.intrinsics.width > 640:
                frame = half_resolution(frame)
            K = frame.intrinsics
            clean = stand_in_clean(frame.depth_m)
            geometry = geometry_of(clean, K)
            tallies = [(curves[group], geometry)]
            if frame.transparent_mask is not None:  # holes a geometry-only model cannot know of, left out
                near_glass = cv2.dilate(frame.transparent_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
                opaque_geometry = {**geometry, "counted": geometry["counted"] & ~near_glass}
                tallies.append((curves["evaluation_opaque"], opaque_geometry))
            for by_method, g in tallies:
                by_method["real"].add(frame.depth_m <= 0, g)
            record = {"frame": frame.key, "group": group, "real_invalid": float((frame.depth_m <= 0).mean())}
            for name, make in methods.items():
                start = time.perf_counter()
                grafted = make(clean, K, rng)
                graft_s.append((time.perf_counter() - start) / samples)
                for by_method, g in tallies:
                    for image in grafted:
                        by_method[name].add(image <= 0, g)
                record[f"{name}_invalid"] = float(np.mean([(g <= 0).mean() for g in grafted]))
            per_frame.append(record)
            log(f"  {frame.key}: invalid share real {record['real_invalid']:.1%}, "
                + ", ".join(f"{m} {record[f'{m}_invalid']:.1%}" for m in methods))
            if frame.gt_depth_m is not None:
                gt = frame.gt_depth_m  # a D435 capture too: its edges are holes, so they are found once filled
                gt_clean = np.where(gt > 0, gt, stand_in_clean(gt))
                near = (edge_distance_px(gt_clean) <= NEAR_EDGE_PX) & (gt > 0)
                opaque = near & ~frame.transparent_mask
                results = {"real": [frame.depth_m]}
                results.update({name: make(gt_clean, K, rng) for name, make in methods.items()})
                for name, images in results.items():
                    for key, mask in (("all", near), ("opaque", opaque)):
                        errors = np.concatenate([(d - gt)[mask & (d > 0)] for d in images]).astype(np.float64)
                        hist = error_histogram(errors) * len(images)
                        near_edge_hists[key][name] = near_edge_hists[key].get(name, 0) + hist
    summaries = {group: {m: c.summary() for m, c in by_method.items()} for group, by_method in curves.items()}
    for by_method in summaries.values():
        for name, row in by_method.items():
            row["distance_to_real"] = curve_distance(row, by_method["real"])
    hist_out = {}
    for key, hists in near_edge_hists.items():
        normed = {name: h / h.sum() for name, h in hists.items()}
        hist_out[key] = {name: {"histogram": h.tolist(), "tv_to_real": total_variation(h, normed["real"])}
                         for name, h in normed.items()}
    return summaries, hist_out, per_frame + [{"graft_median_s": float(np.median(graft_s))}]


def simulator_part(models: dict, frames: int, seed: int, log) -> dict:
    """The D435 simulator's curves (raw vs its clean depth) on simulated scenes, and the models' grafts there."""
    from diffgrasp_ros.depth.grafting import graft
    from diffgrasp_ros.geometry import camera_on_sphere
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.object_set import default_objects
    from diffgrasp_ros.sim.stereo import D435Simulator
    from diffgrasp_ros.sim.world import ClutterWorld

    rng = np.random.default_rng(seed)
    curves = {name: Curves() for name in ("simulator", *models)}
    with ClutterWorld(default_objects("val"), seed=seed) as world:
        simulator = D435Simulator(world.p, seed=seed)
        c = world.workspace.size_m / 2.0
        for i in range(frames):
            if i % 2 == 0:
                world.generate("pile" if i % 4 == 0 else "packed")
                T = side_view()
            else:
                T = camera_on_sphere((c, c, world.workspace.table_height_m + 0.05), rng.uniform(0.45, 0.9),
                                     np.deg2rad(rng.uniform(15, 65)), rng.uniform(0, 2 * np.pi))
            names = list(MATERIALS)
            materials = {b: str(rng.choice(names, p=list(MATERIALS.values()))) for b in world.object_ids}
            frame = simulator.render(T, materials)
            geometry = geometry_of(frame.clean_depth_m, frame.intrinsics)
            curves["simulator"].add(frame.depth_m <= 0, geometry)
            for name, model in models.items():
                curves[name].add(graft(frame.clean_depth_m, model, rng) <= 0, geometry)
            invalid = (frame.depth_m <= 0)[geometry["counted"]].mean()
            log(f"  simulated frame {i + 1}/{frames}: simulator invalid {invalid:.1%}")
    return {name: c.summary() for name, c in curves.items()}


def bin_labels() -> dict:
    return {"edge": [f"{lo}-{hi}" if hi < 10_000 else f">={lo}" for lo, hi in EDGE_BINS_PX],
            "slant": [f"{lo}-{hi}" for lo, hi in SLANT_BINS_DEG],
            "range": [f"{lo:.1f}-{hi:.1f}" if np.isfinite(hi) else f">={lo:.1f}" for lo, hi in RANGE_BINS_M]}


def markdown(report: dict) -> str:
    ctx = report["context"]
    lines = ["# Grafting realism on real frames", "", *provenance_markdown(ctx),
             f"- model: `{report['weights']}`; reference: "
             f"`{report['reference_weights']}`; {report['samples']} grafts per frame and method", "",
             "Invalid share of each method's graft on the real frames' filled depth against the frames' own, by "
             "distance to the nearest depth edge, surface slant and range; distance = mean absolute difference "
             "of the binned shares (lower = closer to the real sensor). `sixdof_graspnet` is left out (its "
             "holes are the source's range crop).", ""]
    labels = bin_labels()
    titles = {"learnable": "Learnable frames (ucn_tabletop, posecnn_tabletop: the model may have trained on them)",
              "evaluation": "Evaluation-only frames (cleargrasp_d435 at half resolution; never trained on)",
              "evaluation_opaque": "Evaluation-only frames without the transparent objects (their pixels and 4 px "
                                   "around them left out: holes of a material, which a geometry-only model cannot "
                                   "know of)"}
    for group, rows in report["real"].items():
        lines += [f"## {titles[group]}", "", "| method | invalid share | edge | slant | range | mean distance |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, row in rows.items():
            d = row["distance_to_real"]
            lines.append(f"| {name} | {100 * row['invalid_share']:.1f} % | {d['edge']:.3f} | {d['slant']:.3f} "
                         f"| {d['range']:.3f} | **{d['mean']:.3f}** |")
        for curve, unit in (("edge", "px to edge"), ("slant", "slant [deg]"), ("range", "range [m]")):
            lines += ["", f"| {unit} | " + " | ".join(rows) + " | pixels |",
                      "| --- | " + " | ".join("---" for _ in rows) + " | --- |"]
            for i, label in enumerate(labels[curve]):
                cells = [f"{100 * r[curve][i]:.1f} %" if r[curve][i] is not None else "-" for r in rows.values()]
                lines.append(f"| {label} | " + " | ".join(cells) + f" | {rows['real'][curve + '_pixels'][i]} |")
        lines.append("")
    lines += ["## Depth error within 3 px of edges (cleargrasp_d435, against its ground truth)", "",
              "Total-variation distance of each method's histogram of (depth − gt) in 1 mm bins over ±20 mm "
              "(plus tails) to the real frames' (0 = same, 1 = disjoint).", "",
              "| method | all near-edge pixels | without transparent objects |", "| --- | --- | --- |"]
    for name in report["near_edge_error"]["all"]:
        lines.append(f"| {name} | {report['near_edge_error']['all'][name]['tv_to_real']:.3f} "
                     f"| {report['near_edge_error']['opaque'][name]['tv_to_real']:.3f} |")
    sim = report["simulator"]
    lines += ["", "## Reference: the D435 simulator on simulated scenes (unpaired)", "",
              f"The simulator cannot render the real scenes: its curves are from {report['sim_frames']} simulated "
              "frames of validation-object scenes (raw vs its own clean depth), compared bin by bin with the real "
              "frames' curves above; the models' grafts on the same simulated clean depth beside it.", "",
              "| method (simulated scenes) | invalid share | mean distance to learnable real | "
              "mean distance to evaluation real | mean distance to evaluation real, opaque |",
              "| --- | --- | --- | --- | --- |"]
    for name, row in sim.items():
        lines.append(f"| {name} | {100 * row['invalid_share']:.1f} % "
                     f"| {row['distance_to_real']['learnable']['mean']:.3f} "
                     f"| {row['distance_to_real']['evaluation']['mean']:.3f} "
                     f"| {row['distance_to_real']['evaluation_opaque']['mean']:.3f} |")
    for curve, unit in (("edge", "px to edge"), ("slant", "slant [deg]"), ("range", "range [m]")):
        lines += ["", f"| {unit} | " + " | ".join(sim) + " |", "| --- | " + " | ".join("---" for _ in sim) + " |"]
        for i, label in enumerate(labels[curve]):
            cells = [f"{100 * r[curve][i]:.1f} %" if r[curve][i] is not None else "-" for r in sim.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None, help="depth-noise model under test "
                        "(default: models/depth_noise)")
    parser.add_argument("--reference-weights", type=Path, default=None,
                        help="a second depth-noise model to compare with, e.g. the previously shipped one")
    parser.add_argument("--samples", type=int, default=2, help="grafts per frame and method (default: 2)")
    parser.add_argument("--sim-frames", type=int, default=6, help="simulated frames for the simulator row "
                        "(default: 6; 0 skips it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "grafting_real")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"grafting_real: {REAL} not found (../shared/real beside the repository)")
    if args.samples < 1:
        sys.exit("--samples must be at least 1")

    import torch

    from diffgrasp_ros.depth.noise_diffusion import DEFAULT_WEIGHTS, NoiseDiffusionModel
    weights = args.weights or DEFAULT_WEIGHTS
    context = prepare_results(args, *report_paths(args.out), code_paths=[
        weights, *filter(None, [args.reference_weights]), REAL, Path(__file__).with_name("stereo_sim.py")])
    torch.set_num_threads(args.threads)
    models = {"model": NoiseDiffusionModel.from_pretrained(weights)}
    if args.reference_weights:
        models["reference"] = NoiseDiffusionModel.from_pretrained(args.reference_weights)
    log = lambda line: print(line, flush=True)  # noqa: E731
    log("real frames:")
    real, near_edge, per_frame = real_frames_part(grafters(models, args.samples), args.samples,
                                                  np.random.default_rng(args.seed), log)
    simulator = {}
    if args.sim_frames:
        log("simulated scenes:")
        simulator = simulator_part(models, args.sim_frames, 1000 + args.seed, log)
        for row in simulator.values():
            row["distance_to_real"] = {group: curve_distance(row, rows["real"]) for group, rows in real.items()}
    report = {"context": context, "weights": str(weights), "reference_weights": str(args.reference_weights),
              "samples": args.samples, "sim_frames": args.sim_frames, "bins": bin_labels(),
              "error_bins_mm": [float(b) for b in ERROR_BINS_MM[1:-1]], "real": real,
              "near_edge_error": near_edge, "simulator": simulator, "frames": per_frame}
    text = markdown(report) if simulator else markdown({**report, "simulator": {}})
    write_report(args.out, report, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
