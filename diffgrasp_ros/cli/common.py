"""Arguments and output shared by the commands that plan (and the device option of every learned model)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..grasping import PlanResult, device_option, planner_names
from ..robots import robot_names


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="where the learned models run: auto (CUDA when available, else the CPU; default), "
                             "cpu, cuda, cuda:N or mps; a method spec's own device= wins, baseline runs none")


def add_planner_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("planner")
    group.add_argument("--method", default="igd",
                       help=f"grasp planning method (available: {', '.join(planner_names())}; default: igd), "
                            "optionally with options: igd:rounds=11,denoising_steps=4,weights=FOLDER")
    group.add_argument("--robot", default="franka",
                       help=f"embodiment to plan for (available: {', '.join(robot_names())}; default: franka)")
    group.add_argument("--max-grasps", type=int, default=20, help="how many ranked grasps to return (default: 20)")
    group.add_argument("--planner-seed", type=int, default=0, help="random seed of the planner (default: 0)")
    add_device_argument(parser)  # not in the planner group: plan's depth restoration runs there too


def planner_options(args: argparse.Namespace) -> dict:
    """Keyword options of ``make_planner``; ``--device`` only for a method that runs a model and whose spec
    names no device (``grasping.device_option``)."""
    return {"max_grasps": args.max_grasps, "seed": args.planner_seed, **device_option(args.method, args.device)}


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all (through a temporary file), so a reader never sees half a result."""
    text = json.dumps(data, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def format_grasp_table(result: PlanResult, limit: int = 5) -> str:
    if not result.found:
        return f"  {result.message}"
    lines = ["  rank  score  width[mm]  position [m] (workspace)      approach"]
    for i, g in enumerate(result.grasps[:limit]):
        p, a = g.position_m, g.approach_axis
        lines.append(f"  {i + 1:>4}  {g.score:5.2f}  {1000 * g.width_m:9.1f}  "
                     f"({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f})   ({a[0]:+.2f}, {a[1]:+.2f}, {a[2]:+.2f})")
    if len(result.grasps) > limit:
        lines.append(f"  … {len(result.grasps) - limit} more")
    return "\n".join(lines)


def format_timings(timings_s: dict[str, float]) -> str:
    return ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in timings_s.items())
