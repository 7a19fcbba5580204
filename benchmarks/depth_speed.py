"""Depth restoration speed on one core: the learned restoration and the classical fills, per frame.

    .venv/bin/python benchmarks/depth_speed.py [--weights models/depth_restore] [--repeats 10]
        [--out benchmarks/results/depth_speed] [--allow-dirty]

Median milliseconds per frame over ``--repeats`` runs after two warm-up runs, with one torch and one
OpenCV thread (numba's compiled plane fill runs on one thread), at 640×480 and 1280×720. The frames are real ones (a ``ucn_tabletop`` and a
``cleargrasp_d435`` frame of ../shared/real, limited to [0.1, 2.0] m as the pipeline does) where
../shared/real is present, else synthetic (a tilted plane with boxes, 15 % of it in holes). Issue 18's
bar for the learned restoration: ≤ 60 ms at 640×480, ≤ 200 ms at 1280×720.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 report_paths, write_report)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / ".." / "shared" / "real"
REAL_FRAMES = {(640, 480): "ucn_tabletop/000000", (1280, 720): "cleargrasp_d435/080"}
BUDGET_MS = {(640, 480): 60.0, (1280, 720): 200.0}


def synthetic_frame(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A table plane seen at a slant with a few boxes on it, and blotchy holes over 15 % of it."""
    import cv2

    rng = np.random.default_rng(seed)
    v = np.mgrid[:height, :width][0]
    depth = (0.6 + 0.4 * v / height).astype(np.float32)
    color = np.full((height, width, 3), 150, np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        w, h = rng.integers(width // 12, width // 5), rng.integers(height // 12, height // 5)
        depth[y:y + h, x:x + w] -= rng.uniform(0.05, 0.15)
        color[y:y + h, x:x + w] = rng.integers(0, 256, 3)
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), width / 100)
    depth[noise > np.quantile(noise, 0.85)] = 0.0
    return depth, color


def frame_of_size(width: int, height: int) -> tuple[np.ndarray, np.ndarray, str]:
    name = REAL_FRAMES[width, height]
    if (REAL / name).is_dir():
        from diffgrasp_ros.camera.real_frames import load_real_frame, within_range

        frame = within_range(load_real_frame(REAL / name), 0.1, 2.0)
        return frame.depth_m, frame.color_rgb, name
    return (*synthetic_frame(width, height), "synthetic")


def median_ms(function, repeats: int) -> float:
    for _ in range(2):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None,
                        help="restoration model folder (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-classical", action="store_true", help="time the learned restoration only")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "depth_speed")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, *report_paths(args.out), code_paths=[p for p in (args.weights, REAL) if p])

    import cv2
    import torch

    from diffgrasp_ros.depth.classical import CLASSICAL_FILLS
    from diffgrasp_ros.depth.plane_fill import plane_fill
    from diffgrasp_ros.depth.restoration import DEFAULT_WEIGHTS, DepthRestorer

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    restorer = DepthRestorer.from_pretrained(args.weights or DEFAULT_WEIGHTS)
    methods = {"learned": lambda depth, color: restorer.restore(depth, color=color),
               "plane_fill (the learned restoration's first stage)":
                   lambda depth, color: plane_fill(depth, color, restorer.config.fill)}
    if not args.no_classical:
        methods.update(CLASSICAL_FILLS)
    rows = []
    for (width, height), budget in BUDGET_MS.items():
        depth, color, source = frame_of_size(width, height)
        for name, method in methods.items():
            ms = median_ms(lambda: method(depth, color), args.repeats)
            rows.append({"method": name, "size": [width, height], "frame": source, "median_ms": ms,
                         "budget_ms": budget if name == "learned" else None})
            print(f"{name} {width}x{height} ({source}): {ms:.1f} ms", flush=True)
    report = {"context": context, "weights": str(args.weights or DEFAULT_WEIGHTS), "repeats": args.repeats,
              "rows": rows}
    lines = ["# Depth restoration speed (one core)", "", *provenance_markdown(context),
             f"- median of {args.repeats} runs after 2 warm-up runs; 1 torch thread, 1 OpenCV thread", "",
             "| method | frame | size | median [ms] | budget [ms] |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        budget = "" if r["budget_ms"] is None else (f"{r['budget_ms']:.0f} "
                                                    f"({'ok' if r['median_ms'] <= r['budget_ms'] else 'OVER'})")
        lines.append(f"| {r['method']} | {r['frame']} | {r['size'][0]}×{r['size'][1]} | {r['median_ms']:.1f} "
                     f"| {budget} |")
    text = "\n".join(lines) + "\n"
    write_report(args.out, report, text)
    print(text)


if __name__ == "__main__":
    main()
