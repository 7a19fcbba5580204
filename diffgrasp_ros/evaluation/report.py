"""Clutter-removal benchmark reports as JSON and Markdown; the run's context comes from ``provenance``."""
from __future__ import annotations

from collections.abc import Sequence

from .clutter_removal import BenchmarkResult, MethodSummary
from .provenance import provenance_markdown, run_context

__all__ = ["arm_table", "outcome_table", "run_context", "stage_table", "summary_table", "to_json", "to_markdown"]


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


def outcome_table(summaries: Sequence[MethodSummary]) -> str:
    """Attempts by outcome (``clutter_removal.attempt_outcome``): count and share of the method's attempts."""
    kinds = list(dict.fromkeys(["held", *(kind for s in summaries for kind in s.outcomes)]))
    lines = ["| method | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    for s in summaries:
        lines.append(f"| {s.method} | " + " | ".join(
            f"{s.outcomes.get(kind, 0)} ({_pct(s.outcomes.get(kind, 0) / s.attempts if s.attempts else None)})"
            for kind in kinds) + " |")
    return "\n".join(lines)


def stage_table(summaries: Sequence[MethodSummary]) -> str:
    """Median planner timings per stage (each method reports its own stages), in milliseconds."""
    stages = list(dict.fromkeys(stage for s in summaries for stage in s.stage_p50_s))
    lines = ["| method | " + " | ".join(stages) + " |", "| --- |" + " --- |" * len(stages)]
    for s in summaries:
        lines.append(f"| {s.method} | " + " | ".join(_ms(s.stage_p50_s.get(stage)) for stage in stages) + " |")
    return "\n".join(lines)


def to_markdown(results: Sequence[BenchmarkResult], context: dict) -> str:
    lines = ["# Clutter-removal benchmark", "", *provenance_markdown(context), f"- diffgrasp {context['diffgrasp']}",
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
        if any(s.outcomes for s in summaries):
            lines += ["Attempts by outcome (the executor's reason a grasp failed):", "", outcome_table(summaries), ""]
        lines += ["Median time per planner stage [ms] (`plan` is the planner's total after fusion):", "",
                  stage_table(summaries)]
    return "\n".join(lines) + "\n"


def to_json(results: Sequence[BenchmarkResult], context: dict) -> dict:
    return {**context, "results": [r.to_dict() for r in results]}
