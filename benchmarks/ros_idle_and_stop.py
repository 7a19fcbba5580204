"""What the ROS graph costs when nobody asks, and how fast it stops: `diffgrasp up` as a user runs it.

    .venv/bin/python benchmarks/ros_idle_and_stop.py [--idle-s 30] [--runs 3] [--out benchmarks/results/ros_idle_and_stop]
        [--allow-dirty]

Each run starts `diffgrasp up --camera sim` in its own process, waits until the graph serves
`/plan_grasp` and has answered one call, then:
- **idle CPU**: the process's CPU time (user + system, /proc) over ``--idle-s`` seconds with the
  simulated camera running and no request, as a share of one core;
- **stop**: the time from SIGTERM (what systemd and `docker stop` send) to the process's exit, its
  exit code, and whether its output holds a traceback.

Once with the defaults (the grasp server plans only when asked) and once with
`--ros-args -p plan_continuously:=true` (every new scene planned too: the behaviour before), in the
same run; medians over ``--runs`` runs of each.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results,  # noqa: E402
                                                 provenance_markdown, report_paths, write_report)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def wait_until_served(domain: str, timeout_s: float = 120.0) -> float:
    """Call /plan_grasp from a separate client process until it succeeds; returns the seconds it took."""
    client = ("import sys, time, rclpy\n"
              "from moveit_msgs.msg import MoveItErrorCodes\nfrom moveit_msgs.srv import GraspPlanning\n"
              "rclpy.init(); node = rclpy.create_node('bench_client')\n"
              "client = node.create_client(GraspPlanning, '/plan_grasp')\n"
              f"deadline = time.monotonic() + {timeout_s}\n"
              "while time.monotonic() < deadline:\n"
              "    if client.wait_for_service(timeout_sec=1.0):\n"
              "        future = client.call_async(GraspPlanning.Request())\n"
              "        rclpy.spin_until_future_complete(node, future, timeout_sec=60.0)\n"
              "        if future.done() and future.result().error_code.val == MoveItErrorCodes.SUCCESS:\n"
              "            sys.exit(0)\n"
              "    time.sleep(0.5)\n"
              "sys.exit(1)\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", client], env={**os.environ, "ROS_DOMAIN_ID": domain},
                            capture_output=True, text=True, timeout=timeout_s + 30)
    if result.returncode != 0:
        raise RuntimeError(f"the graph never answered /plan_grasp: {result.stderr[-2000:]}")
    return time.monotonic() - start


def one_run(extra: list[str], idle_s: float, domain: str) -> dict:
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "diffgrasp_ros.cli.main", "up", "--camera", "sim", *extra],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "ROS_DOMAIN_ID": domain})
        try:
            served_s = wait_until_served(domain)
            before, start = cpu_seconds(process.pid), time.monotonic()
            time.sleep(idle_s)
            idle_share = (cpu_seconds(process.pid) - before) / (time.monotonic() - start)
            stop = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
            stop_s = time.monotonic() - stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        log.seek(0)
        output = log.read()
    return {"served_after_s": served_s, "idle_cpu_share": idle_share, "stop_s": stop_s, "exit_code": code,
            "traceback": "Traceback" in output}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ros_idle_and_stop")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, *report_paths(args.out))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain = str(100 + os.getpid() % 100)
    settings = {"plans on request (default)": [],
                "plan_continuously:=true (before)": ["--ros-args", "-p", "plan_continuously:=true"]}
    rows = {}
    for name, extra in settings.items():
        runs = []
        for run in range(args.runs):
            runs.append(one_run(extra, args.idle_s, domain))
            print(f"{name}, run {run + 1}: " + json.dumps(runs[-1]), flush=True)
        rows[name] = {"runs": runs,
                      "idle_cpu_share_median": statistics.median(r["idle_cpu_share"] for r in runs),
                      "stop_s_median": statistics.median(r["stop_s"] for r in runs),
                      "stop_s_max": max(r["stop_s"] for r in runs),
                      "all_exit_0": all(r["exit_code"] == 0 for r in runs),
                      "any_traceback": any(r["traceback"] for r in runs)}
    lines = ["# The ROS graph idle and stopping (`diffgrasp up --camera sim`)", "", *provenance_markdown(context),
             f"- {args.runs} runs per setting; idle: {args.idle_s:.0f} s with the simulated camera running, no request", "",
             "| setting | idle CPU (share of one core, median) | SIGTERM to exit [s] (median / max) | exit 0 | traceback |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['idle_cpu_share_median']:.2f} | {row['stop_s_median']:.2f} / "
                     f"{row['stop_s_max']:.2f} | {'yes' if row['all_exit_0'] else 'NO'} | "
                     f"{'YES' if row['any_traceback'] else 'none'} |")
    text = "\n".join(lines) + "\n"
    write_report(args.out, {"context": context, "idle_s": args.idle_s, "rows": rows}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
