"""Figures of the learned depth restoration (``diffgrasp_ros.depth.restoration``).

    .venv/bin/python benchmarks/depth_restoration.py --data PAIRS [--weights models/depth_restore] [--json out.json]
        [--allow-dirty]

On held-out stereo pairs (``diffgrasp depth-data --split val``: validation objects, unseen in
training), against the renderer's clean depth, overall and per material of the surface each pixel
sees (the table is ``diffuse``):

- ``raw``: the simulated D435's depth, on the pixels it reports (``coverage`` = their share of the
  pixels with clean depth);
- ``nearest fill``: raw with every hole given its nearest valid pixel's depth, a classical baseline;
- ``restored`` (depth only: simulated frames have no colour): on all pixels with clean depth, and on the
  raw-valid pixels alone (does restoration spoil good depth? It keeps the readings it trusts exactly).

Real frames are scored by ``benchmarks/real_depth.py``; this is the simulated side.

Errors: MAE and RMSE in mm, δ<1.05 = share of pixels whose depth ratio to the truth is within 5 %.
Restoration time: median over the frames of one 640×480 frame through ``DepthRestorer.restore`` on
one thread.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import warnings

import numpy as np
import torch

from diffgrasp_ros.depth.classical import nearest_fill
from diffgrasp_ros.depth.restoration import DEFAULT_WEIGHTS, DepthRestorer
from diffgrasp_ros.evaluation.real_depth import pooled_errors, region_errors
from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results
from diffgrasp_ros.training.depth_pairs import MATERIAL_NAMES, load_pairs

METHODS = ("raw", "nearest fill", "restored")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="validation pairs (diffgrasp depth-data --split val)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="model folder (default: shipped)")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    add_provenance_arguments(parser)
    args = parser.parse_args(argv)
    context = prepare_results(args, args.json, code_paths=[args.weights])
    torch.set_num_threads(1)
    model = DepthRestorer.from_pretrained(args.weights)
    pairs = load_pairs(args.data, args.frames)
    groups = ("all",) + MATERIAL_NAMES[1:]
    # (group, method, pixel set) -> per-frame region_errors; pixel sets: "reported" (raw-valid) and "all"
    # (clean depth).
    errors: dict[tuple[str, str, str], list[dict]] = {}
    coverage = {g: [0, 0] for g in groups}  # raw-valid, with clean depth
    times_s = []
    warnings.filterwarnings("ignore", message="no colour image")  # simulated frames have none
    for i in range(len(pairs)):
        raw, clean = pairs.raw_depth_m[i], pairs.clean_depth_m[i]
        start = time.perf_counter()
        restored = model.restore(raw)
        times_s.append(time.perf_counter() - start)
        outputs = {"raw": raw, "nearest fill": nearest_fill(raw), "restored": restored}
        has = clean > 0.0
        reported = has & (raw > 0.0)
        for group in groups:
            in_group = has if group == "all" else has & (pairs.material[i] == MATERIAL_NAMES.index(group))
            coverage[group][0] += int((in_group & reported).sum())
            coverage[group][1] += int(in_group.sum())
            for method, pred in outputs.items():
                for pixels, mask in (("reported", in_group & reported), ("all", in_group)):
                    if method == "raw" and pixels == "all":
                        continue
                    errors.setdefault((group, method, pixels), []).append(region_errors(pred, clean, mask))
    figures = {
        "context": context,
        "frames": len(pairs), "weights": str(args.weights),
        "restore_ms_median": 1000.0 * statistics.median(times_s),
        "restore_ms_p90": 1000.0 * float(np.percentile(times_s, 90)),
        "coverage": {g: c[0] / max(c[1], 1) for g, c in coverage.items()},
        "metrics": {f"{g} | {m} | {p}": pooled_errors(frames) for (g, m, p), frames in errors.items()},
    }
    print(f"{len(pairs)} held-out frames from {args.data}, weights {args.weights}, commit "
          f"{figures['context']['git_commit']}\n")
    print("| material | raw coverage | method | pixels | MAE mm | RMSE mm | δ<1.05 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for group in groups:
        for method in METHODS:
            for pixels in ("reported", "all"):
                s = figures["metrics"].get(f"{group} | {method} | {pixels}")
                if s is None or not s["pixels"]:
                    continue
                label = "raw-valid" if pixels == "reported" else "all with truth"
                print(f"| {group} | {figures['coverage'][group]:.1%} | {method} | {label} | {s['mae_mm']:.1f} | "
                      f"{s['rmse_mm']:.1f} | {s['delta_105']:.1%} |")
    print(f"\nrestoration: {figures['restore_ms_median']:.0f} ms median per 640x480 frame "
          f"(p90 {figures['restore_ms_p90']:.0f} ms), one thread, {len(times_s)} frames")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
