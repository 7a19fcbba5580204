"""Benchmark reports: the run's context (command, date, machine) and results as JSON and Markdown."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from .clutter_removal import BenchmarkResult, MethodSummary


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None  # not a git checkout (e.g. an installed package)
    return out.stdout.strip() or None


def run_context(command: str) -> dict:
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "diffgrasp": __version__,
        "git_commit": _git_commit(),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{1000 * x:.0f}"


def summary_table(summaries: Sequence[MethodSummary]) -> str:
    lines = ["| method | GSR | DR | grasps (ok / tried) | objects (removed / placed) | latency p50 / p95 [ms] "
             "| s / round |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        lines.append(f"| {s.method} | {_pct(s.gsr)} | {_pct(s.dr)} | {s.successes} / {s.attempts} "
                     f"| {s.objects_removed} / {s.objects_placed} | {_ms(s.latency_p50_s)} / {_ms(s.latency_p95_s)} "
                     f"| {s.seconds_per_round:.2f} |")
    return "\n".join(lines)


def arm_table(summaries: Sequence[MethodSummary]) -> str:
    """The arm executor's figures: reachable fraction of the ranked grasps, medians per execution of the
    reachability IK, the motion planning and both, in milliseconds."""
    lines = ["| method | ranked grasps reachable | IK p50 [ms] | motion planning p50 [ms] | arm planning p50 [ms] |",
             "| --- | --- | --- | --- | --- |"]
    for s in summaries:
        lines.append(f"| {s.method} | {_pct(s.reachable_fraction)} | {_ms(s.ik_p50_s)} | "
                     f"{_ms(s.motion_planning_p50_s)} | {_ms(s.arm_planning_p50_s)} |")
    return "\n".join(lines)


def stage_table(summaries: Sequence[MethodSummary]) -> str:
    """Median planner timings per stage (each method reports its own stages), in milliseconds."""
    stages = list(dict.fromkeys(stage for s in summaries for stage in s.stage_p50_s))
    lines = ["| method | " + " | ".join(stages) + " |", "| --- |" + " --- |" * len(stages)]
    for s in summaries:
        lines.append(f"| {s.method} | " + " | ".join(_ms(s.stage_p50_s.get(stage)) for stage in stages) + " |")
    return "\n".join(lines)


def to_markdown(results: Sequence[BenchmarkResult], context: dict) -> str:
    lines = ["# Clutter-removal benchmark", "",
             f"- command: `{context['command']}`",
             f"- date: {context['date']}",
             f"- machine: {context['machine']}",
             f"- diffgrasp {context['diffgrasp']}" + (f" (commit {context['git_commit']})" if context["git_commit"] else ""),
             "",
             "GSR = successful grasps / attempts; DR = objects removed by grasping / objects placed (pooled "
             "over rounds); latency = depth frames in -> ranked grasps out (fusion + planning), over all "
             "planning calls; s / round = wall time per round including scene generation and simulation."]
    for result in results:
        s = result.settings
        summaries = list(result.summaries.values())
        materials = f" ({s.materials} materials)" if s.noise == "stereo" else ""
        lines += ["", f"## {s.scene}: {s.rounds} rounds, seed {s.seed}, {s.views} view, noise {s.noise}{materials}, "
                      f"depth {s.depth_mode}, {s.objects_per_round} objects per round, executed by the {s.executor}"
                      + (f", LEAP hand friction {s.leap_friction}" if s.leap_friction != 1.0 else ""),
                  "",
                  f"Objects: {result.objects}.", "", summary_table(summaries), ""]
        if s.executor == "arm":
            lines += ["Arm execution (per execution: batched grasp + pre-grasp IK of every ranked grasp, then "
                      "pick planning of the reachable ones in rank order until one plans; a ranked list "
                      "with none counts as a failed attempt):", "", arm_table(summaries), ""]
        lines += ["Median time per planner stage [ms] (`plan` is the planner's total after fusion):", "",
                  stage_table(summaries)]
    return "\n".join(lines) + "\n"


def to_json(results: Sequence[BenchmarkResult], context: dict) -> dict:
    return {**context, "results": [r.to_dict() for r in results]}
