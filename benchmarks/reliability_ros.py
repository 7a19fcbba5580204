"""Reliability of the ROS graph (issue 20, item 1): a soak, killed node processes, camera faults, corrupt weights.

    .venv/bin/python benchmarks/reliability_ros.py [--quick] [--only soak,kill,camera,weights] [--calls 1000]
        [--rate-hz 2] [--warmup 50] [--out /tmp/reliability_ros]

Each part is a function returning a JSON-able dict (benchmarks/results/reliability.md is assembled from them);
``main()`` runs the chosen ones and writes ``--out``.json (and the graphs' logs beside it), under /tmp only.

- ``soak``: ``/plan_grasp`` at ``rate_hz`` from a client process of its own against
  ``diffgrasp up --camera sim --processes`` (one process per node, the simulated camera running): the
  answers' error codes, latency p50 / p95 / p99, and per node process its RSS, open file descriptors
  (/proc/<pid>/fd) and threads (/proc/<pid>/status) after ``warmup`` calls, every ``sample_every_s`` and at
  the end, with the growth from the warm-up to the end;
- ``kill_each_node``: SIGKILL of each node's process in turn while two clients call (``ros_graph.run_kill``):
  restarted by the supervisor, configured and activated again by the lifecycle manager, seconds until
  ``/plan_grasp`` succeeds again, the codes and messages the calls got meanwhile, calls never answered;
- ``camera_faults``: depth_capture on a RealSense whose faults are injected (``FakeRealSense``, a stand-in
  for pyrealsense2: frames that stop coming, an unplugged camera, a pipeline that fails to start) and on
  a replayed recording that ends (replay.loop false and true), in a process of its own with the lifecycle
  manager: what the node reports (log, last_error, ~/get_status), whether it recovers and how fast, whether
  its services stay answered;
- ``corrupt_weights_at_configure``: the grasp server given a copy of models/igd whose weights.pt is truncated
  or random bytes: configure fails naming the file, the other nodes keep serving (the scene builder
  publishes, the executor answers /plan_grasp with an error code), and once the file is repaired the
  manager brings the server up; and the depth processor in restore mode with a corrupt restoration model.

Every subprocess and wait has a timeout, and every graph is stopped (its process group killed) even when a
part fails. ``quick=True`` makes each part short enough for CI (all four in about three minutes).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (str(REPO), str(HERE), str(REPO / "test")):  # ros_graph, ros_idle_and_stop; ros_helpers
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ros_graph import (NODES, Graph, Observer, call_figures, code_names, fmt, node_pids, outcome,  # noqa: E402
                       outcomes_text, percentile, run_kill, slim)
import ros_graph  # noqa: E402
from ros_graph import CODE_NAMES as _CODE_NAMES  # noqa: E402  (filled once rclpy's messages are importable)

SUPERVISED = (*NODES, "lifecycle_manager")


# ---------------------------------------------------------------------------------------------------------
# Environment: a private ROS domain on this machine only, per part
# ---------------------------------------------------------------------------------------------------------
def use_private_domain() -> str:
    """A ROS_DOMAIN_ID in the safe range 20..99 (the tests use 100..199, ros_graph 200..229), set in
    os.environ for this process's rclpy contexts and the processes it starts; with localhost discovery."""
    domain = str(random.Random(os.getpid() * 7919 + time.time_ns()).randint(20, 99))
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not _CODE_NAMES:
        _CODE_NAMES.update(code_names())
    return domain


def workdir_for(tag: str, workdir: Path | None) -> Path:
    base = Path(workdir) if workdir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"reliability_{tag}_", dir=base))


@contextlib.contextmanager
def running_graph(tag: str, workdir: Path, extra: list[str] | None = None, served_timeout_s: float | None = 300.0):
    """``diffgrasp up --camera sim --processes`` on a private domain, until ``/plan_grasp`` has succeeded once
    (``served_timeout_s``; None: not waited for) and an Observer (lifecycle services, the scene cloud) in this
    process. Yields (graph, observer, env, info); the graph is stopped on leaving, whatever happened."""
    from ros_idle_and_stop import wait_until_served

    domain = use_private_domain()
    env = dict(os.environ)
    log_path = workdir / f"{tag}_up.log"
    graph = Graph(env, log_path, list(extra or []))
    info = {"domain": int(domain), "command": graph.command[2:], "log": str(log_path)}
    observer = None
    try:
        if served_timeout_s is not None:
            wait_until_served(domain, served_timeout_s)
            info["served_after_s"] = time.monotonic() - graph.started
        observer = Observer()
        yield graph, observer, env, info
    except Exception:
        info["output_tail"] = graph.output()[-3000:]
        raise
    finally:
        if observer is not None:
            observer.close()
        info["stop"] = graph.stop()
        output = log_path.read_text(errors="replace")
        info["tracebacks"] = output.count("Traceback")
        info["restarts_logged"] = re.findall(r"diffgrasp up: (\w+) exited with code (-?\d+)", output)


@contextlib.contextmanager
def graph_session(session, tag: str, workdir: Path):
    """``session`` (a running_graph's (graph, observer, env, info), left running), or a graph of its own."""
    if session is not None:
        yield session
    else:
        with running_graph(tag, workdir) as own:
            yield own


# ---------------------------------------------------------------------------------------------------------
# A client process calling /plan_grasp at a fixed rate (``ros_graph.py --client`` with rate_hz); one JSON
# line per call (times: CLOCK_MONOTONIC, shared by every process on the machine)
# ---------------------------------------------------------------------------------------------------------
class RateClient:
    """One client process: ``calls`` calls at ``rate_hz`` (a call that takes longer than the period
    delays the next; none is skipped), each waited for at most ``timeout_s``."""

    def __init__(self, workdir: Path, env: dict, name: str, calls: int, rate_hz: float, timeout_s: float,
                 service_wait_s: float = 1.0):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=workdir))
        self.out, self.stop_file, self.go_file = self.dir / "calls.jsonl", self.dir / "stop", self.dir / "go"
        # The client gives up after this (every call may take its whole timeout); its owner waits less.
        max_s = calls / rate_hz + calls * (timeout_s + service_wait_s) + 120.0
        spec = {"name": name, "out": str(self.out), "calls": calls, "rate_hz": rate_hz, "timeout_s": timeout_s,
                "service_wait_s": service_wait_s, "ready_timeout_s": 60.0, "max_s": max_s,
                "stop_file": str(self.stop_file), "go_file": str(self.go_file)}
        self._log = open(self.dir / "client.log", "w")
        self.process = subprocess.Popen([sys.executable, ros_graph.__file__, "--client", json.dumps(spec)],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def lines(self) -> list[dict]:
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def records(self) -> list[dict]:
        return [r for r in self.lines() if "event" not in r]

    def events(self) -> set:
        return {r["event"] for r in self.lines() if "event" in r}

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.events()
            if "ready" in events:
                return
            if "no_service" in events or self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the client process is not ready: {(self.dir / 'client.log').read_text()[-1500:]}")

    def go(self) -> float:
        self.go_file.touch()
        return time.monotonic()

    def close(self, timeout_s: float = 60.0) -> int | None:
        """Stop the client (after its current call), wait for it, kill it after ``timeout_s``; its exit code."""
        self.stop_file.touch()
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            code = None
        self._log.close()
        return code


def latency_figures(records: list[dict]) -> dict:
    """ros_graph's call figures plus p99 and the error-code histogram of the answered calls."""
    latencies = [r["latency_ms"] for r in records if r["answered"]]
    figures = call_figures(records)
    figures["p99_ms"] = percentile(latencies, 99)
    figures["error_codes"] = dict(Counter(_CODE_NAMES.get(r["code"], str(r["code"])) for r in records if r["answered"]))
    figures["unanswered"] = sum(not r["answered"] for r in records)
    return figures


# ---------------------------------------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------------------------------------
def proc_stats(pid: int, names: bool = False) -> dict | None:
    """RSS (kB), open file descriptors and threads of ``pid`` now (with ``names``: the threads by name and the
    fds by what they point to); None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stats = {"pid": pid, "rss_kb": int(fields["VmRSS"].split()[0]), "fds": len(fds),
             "threads": int(fields["Threads"]), "rss_anon_kb": int(fields.get("RssAnon", "0 kB").split()[0])}
    if names:
        threads, targets = Counter(), Counter()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                threads[(task / "comm").read_text().strip()] += 1
        for fd in fds:
            with contextlib.suppress(OSError):
                target = re.sub(r"\[\d+\]", "[*]", os.readlink(f"/proc/{pid}/fd/{fd}"))  # socket:[*], pipe:[*]
                targets[re.sub(r"^/dev/shm/.*", "/dev/shm/*", target)] += 1
        stats.update(thread_names=dict(threads), fd_targets=dict(targets))
    return stats


def graph_stats(graph: Graph, names: bool = False) -> dict[str, dict | None]:
    """``proc_stats`` of every node process, the lifecycle manager and the supervisor."""
    pids = node_pids(graph.process.pid)
    stats = {name: proc_stats(pids[name], names) if name in pids else None for name in SUPERVISED}
    stats["supervisor"] = proc_stats(graph.process.pid, names)
    return stats


def growth(before: dict | None, after: dict | None) -> dict | None:
    if not before or not after:
        return None
    row = {"same_process": before["pid"] == after["pid"],
           "rss_kb": after["rss_kb"] - before["rss_kb"],
           "rss_pct": 100.0 * (after["rss_kb"] - before["rss_kb"]) / before["rss_kb"],
           "fds": after["fds"] - before["fds"], "threads": after["threads"] - before["threads"]}
    for key in ("thread_names", "fd_targets"):
        if key in before and key in after:
            changed = {k: after[key].get(k, 0) - before[key].get(k, 0) for k in {*before[key], *after[key]}}
            row[f"{key}_changed"] = {k: v for k, v in changed.items() if v}
    return row


def rss_trend(samples: list[dict], name: str, from_calls: int, key: str = "rss_kb") -> dict | None:
    """``key`` (rss_kb, or rss_anon_kb: the process's own heap, without the file pages of its libraries that
    the kernel drops and reloads at will) of ``name`` over the samples from ``from_calls`` calls on: the
    medians of the first and the last quarter (RSS swings by tens of MB as big arrays come and go, so two
    instants can mislead) and the least-squares slope in MiB per hour."""
    points = [(s["t_s"], s["stats"][name][key] / 1024.0) for s in samples
              if s["calls_done"] >= from_calls and s["stats"].get(name)]
    if len(points) < 4:
        return None
    quarter = max(len(points) // 4, 1)
    first, last = np.median([v for _, v in points[:quarter]]), np.median([v for _, v in points[-quarter:]])
    t, v = np.array(points).T
    slope = float(np.polyfit(t / 3600.0, v, 1)[0]) if np.ptp(t) > 0 else None
    return {"samples": len(points), "first_quarter_median_mib": float(first), "last_quarter_median_mib": float(last),
            "median_growth_pct": float(100.0 * (last - first) / first), "min_mib": float(v.min()),
            "max_mib": float(v.max()), "slope_mib_per_hour": slope}


# ---------------------------------------------------------------------------------------------------------
# 1. Soak
# ---------------------------------------------------------------------------------------------------------
WATCHED_TOPICS = {"depth_capture": "/depth/camera_info", "depth_processor": "/depth/processed/camera_info",
                  "scene_builder (surface)": "/scene/surface", "scene_builder (tsdf)": "/scene/tsdf"}


class TopicWatch:
    """When each stage's output arrives (each image is published with its camera_info, so the small camera
    infos stand for the images), in an rclpy context of its own; best effort, so it holds nobody back."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, PointCloud2

        from ros_helpers import Spinner

        self.arrivals: dict[str, list[tuple[float, float]]] = {name: [] for name in WATCHED_TOPICS}
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("reliability_topic_watch", context=self.context)
        for name, topic in WATCHED_TOPICS.items():
            msg_type = CameraInfo if topic.endswith("camera_info") else PointCloud2
            self.node.create_subscription(msg_type, topic, self._on(name), qos_profile_sensor_data)
        self.spinner = Spinner(SingleThreadedExecutor(context=self.context))
        self.spinner.executor.add_node(self.node)
        self.spinner.__enter__()

    def _on(self, name: str):
        def record(msg) -> None:
            self.arrivals[name].append((time.monotonic(), msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec))
        return record

    def gaps(self, t0: float, t1: float, longer_than_s: float = 5.0) -> dict:
        """Per topic between ``t0`` and ``t1``: messages, median period, longest gap, and the gaps longer than
        ``longer_than_s`` (seconds from ``t0``: start, length)."""
        rows = {}
        for name, arrivals in self.arrivals.items():
            times = [t0] + [t for t, _ in list(arrivals) if t0 <= t <= t1] + [t1]
            steps = np.diff(times)
            rows[name] = {"messages": len(times) - 2,
                          "median_period_s": float(np.median(steps[1:-1])) if len(steps) > 2 else None,
                          "longest_gap_s": float(steps.max()) if len(steps) else None,
                          "gaps": [(round(a - t0, 1), round(b - a, 1)) for a, b in zip(times[:-1], times[1:])
                                   if b - a > longer_than_s]}
        return rows

    def close(self) -> None:
        import rclpy

        self.spinner.__exit__(None, None, None)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def soak(calls: int = 1000, rate_hz: float = 2.0, warmup: int = 50, quick: bool = False, *,
         call_timeout_s: float = 30.0, sample_every_s: float = 10.0, workdir: Path | None = None,
         session=None) -> dict:
    """``calls`` /plan_grasp calls at ``rate_hz`` against the graph of one process per node (the simulated
    camera running throughout); figures after ``warmup`` calls and at the end (quick: 60 calls at 4 Hz,
    warm-up 20). ``session``: a ``running_graph`` to use (else one of its own is started and stopped)."""
    if quick:
        calls, rate_hz, warmup, sample_every_s = 60, 4.0, 20, 5.0  # the grasp server's heap grows for ~20 calls
    warmup = min(warmup, calls)
    workdir = workdir_for("soak", workdir)
    result: dict = {"settings": {"calls": calls, "rate_hz": rate_hz, "warmup": warmup, "call_timeout_s": call_timeout_s,
                                 "quick": quick}, "errors": []}
    with graph_session(session, "soak", workdir) as (graph, observer, env, info):
        result["graph"] = info
        result["all_active"] = observer.wait_all_active(60.0)
        watch = TopicWatch()
        client = RateClient(workdir, env, "soak", calls, rate_hz, call_timeout_s)
        samples: list[dict] = []
        try:
            client.wait_ready()
            start = client.go()
            deadline = start + calls / rate_hz + calls * 2.0 + call_timeout_s + 120.0  # answers may be slower
            next_sample = start
            while time.monotonic() < deadline and client.process.poll() is None and "done" not in client.events():
                done = len(client.records())
                if (done >= warmup and "warmup" not in result) or time.monotonic() >= next_sample:
                    is_warmup = done >= warmup and "warmup" not in result
                    sample = {"t_s": time.monotonic() - start, "calls_done": done,
                              "stats": graph_stats(graph, names=is_warmup)}
                    samples.append(sample)
                    if is_warmup:
                        result["warmup"] = sample
                    next_sample = time.monotonic() + sample_every_s
                time.sleep(0.2)
            if "done" not in client.events():
                result["errors"].append(f"the client did not finish within {deadline - start:.0f} s")
            result["end"] = {"t_s": time.monotonic() - start, "calls_done": len(client.records()),
                             "stats": graph_stats(graph, names=True)}
            samples.append(result["end"])
            result["wall_s"] = time.monotonic() - start
        finally:
            result["client_exit_code"] = client.close()
            watch.close()
        if result.get("wall_s"):
            result["stage_output_gaps"] = watch.gaps(start, start + result["wall_s"])
        records = client.records()
        result["calls"] = latency_figures(records)
        result["calls"]["achieved_rate_hz"] = len(records) / result["wall_s"] if result.get("wall_s") else None
        result["calls"]["late_calls"] = sum(r["late_s"] > 0.05 for r in records)
        result["failures"] = [{**slim(r), "t_send_s": r["t_send"] - start}
                              for r in records if not (r["answered"] and r["code"] == 1)][:50]
        result["samples"] = [{"t_s": s["t_s"], "calls_done": s["calls_done"],
                              "rss_kb": {n: (v or {}).get("rss_kb") for n, v in s["stats"].items()},
                              "rss_anon_kb": {n: (v or {}).get("rss_anon_kb") for n, v in s["stats"].items()},
                              "fds": {n: (v or {}).get("fds") for n, v in s["stats"].items()},
                              "threads": {n: (v or {}).get("threads") for n, v in s["stats"].items()}}
                             for s in samples]
        if "warmup" in result:
            result["growth"] = {name: growth(result["warmup"]["stats"].get(name), result["end"]["stats"].get(name))
                                for name in result["end"]["stats"]}
            result["rss_trend"] = {name: rss_trend(samples, name, warmup) for name in result["end"]["stats"]}
            result["rss_anon_trend"] = {name: rss_trend(samples, name, warmup, "rss_anon_kb")
                                        for name in result["end"]["stats"]}
            result["rss_anon_growth_pct"] = {
                name: 100.0 * (e["rss_anon_kb"] - w["rss_anon_kb"]) / w["rss_anon_kb"]
                for name in result["end"]["stats"]
                if (w := result["warmup"]["stats"].get(name)) and (e := result["end"]["stats"].get(name))}
            result["threads_max_after_warmup"] = {
                name: max((s["stats"][name] or {}).get("threads", 0) for s in samples if s["calls_done"] >= warmup)
                for name in result["end"]["stats"]}
            measured = [g for g in result["growth"].values() if g and g["same_process"]]
            result["max_rss_growth_pct"] = max((g["rss_pct"] for g in measured), default=None)
            # The same from the medians of the first and the last quarter of the samples after the warm-up: a
            # node's RSS swings by 5-10 % between samples (the scene builder's TSDF arrays), so one sample at
            # each end can show growth, or shrinkage, that is not there.
            trends = [t for t in result["rss_trend"].values() if t]
            result["max_rss_growth_pct_median"] = max((t["median_growth_pct"] for t in trends), default=None)
            result["fd_growth"] = {n: g["fds"] for n, g in result["growth"].items() if g and g["fds"]}
            result["thread_growth"] = {n: g["threads"] for n, g in result["growth"].items() if g and g["threads"]}
            result["target_met"] = (result["max_rss_growth_pct"] is not None and result["max_rss_growth_pct"] <= 5.0
                                    and not result["fd_growth"] and not result["thread_growth"]
                                    and all(g["same_process"] for g in result["growth"].values() if g))
        else:
            result["errors"].append(f"fewer than {warmup} calls were answered: no warm-up figures")
    result["graph"] = info
    return result


# ---------------------------------------------------------------------------------------------------------
# 2. SIGKILL of each node process
# ---------------------------------------------------------------------------------------------------------
def kill_each_node(nodes: tuple[str, ...] | list[str] = NODES, quick: bool = False, *, call_timeout_s: float = 20.0,
                   workdir: Path | None = None, session=None) -> dict:
    """SIGKILL of each node process in turn (quick: grasp_server and scene_builder) while two client processes
    call /plan_grasp back to back (``ros_graph.run_kill``); per node whether it came back (a new process under
    the supervisor, configured and activated by the lifecycle manager), the seconds until /plan_grasp
    succeeded again, what the calls got meanwhile and how many were never answered (``call_timeout_s``)."""
    if quick:
        nodes = ("grasp_server", "scene_builder")
    workdir = workdir_for("kill", workdir)
    result: dict = {"settings": {"nodes": list(nodes), "call_timeout_s": call_timeout_s, "quick": quick},
                    "kills": {}, "errors": []}
    with graph_session(session, "kill", workdir) as (graph, observer, env, info):
        result["graph"] = info
        for name in nodes:
            manager_lines_before = graph.output().count(f"[lifecycle_manager]: {name} is active")
            try:
                row = run_kill(graph, observer, workdir, env, name, call_timeout_s)
            except Exception as error:  # one node's failure is reported; the others are still killed
                result["kills"][name] = {"error": f"{type(error).__name__}: {error}"}
                continue
            output = graph.output()
            reactivated = output.count(f"[lifecycle_manager]: {name} is active") > manager_lines_before
            records = row.pop("records", [])
            # The calls in flight at the kill and those sent until /plan_grasp succeeded again.
            affected = [r for r in records if r["t_send_after_kill_s"] + r["latency_ms"] / 1000.0 >= 0
                        and r["t_send_after_kill_s"] <= (row.get("first_success_s") or 1e9)]
            failures = [r for r in affected if not (r.get("answered") and r.get("code") == 1)]
            summary = {
                "survived": bool(row.get("new_pid") and row.get("active_s") is not None and reactivated),
                "restarted_s": row.get("respawn_s"), "active_again_s": row.get("active_s"),
                "reconfigured_and_reactivated_by_manager": reactivated,
                "plan_grasp_succeeds_again_s": row.get("first_success_s"),
                "success_of_a_call_sent_after_active_s": row.get("success_after_active_s"),
                "calls_in_flight_at_kill": row.get("in_flight"),
                "outage_calls": row.get("during"),
                "outage_codes": dict(Counter(outcome(r) for r in failures)),
                "failed_answers_over_1_5_s": row.get("failed_answers_over_1_5_s"),
                "slowest_failed_answer_ms": row.get("slowest_failure_ms"),
                "unanswered_calls": row.get("unanswered"),
                "calls_answered_late_or_never": sum(not r.get("answered") or r["latency_ms"] > 1500 for r in affected),
                "messages": row.get("messages"),
                "service_listing": row.get("service_listing"), "watched_service": row.get("watched_service"),
                "error": row.get("error"), "warning": row.get("warning"),
            }
            result["kills"][name] = summary
            print(f"  kill {name}: survived {summary['survived']}, restarted {summary['restarted_s']}, active "
                  f"{summary['active_again_s']}, success again {summary['plan_grasp_succeeds_again_s']} s; "
                  f"unanswered {summary['unanswered_calls']}; {summary['outage_codes']}", flush=True)
        result["all_active_after"] = observer.wait_all_active(120.0)
    result["graph"] = info
    return result


# ---------------------------------------------------------------------------------------------------------
# 3. Camera faults: a fake pyrealsense2 and replayed recordings, depth_capture in a process of its own
# ---------------------------------------------------------------------------------------------------------
class FakeRealSense:
    """pyrealsense2 as far as ``camera.realsense`` uses it, on one camera whose faults are switched here.

    - ``unplug()`` / ``plug()``: the device leaves ``query_devices``; a pipeline started before the unplug
      never delivers again, even after the plug (as with the SDK, it must be stopped and started anew);
    - ``stall = "raise"``: waits raise RuntimeError("Frame didn't arrive within N"), as ``wait_for_frames``
      does; ``stall = "timeout"``: ``try_wait_for_frames`` returns False;
    - ``start_error``: ``pipeline.start`` raises RuntimeError with this text.

    A wait that fails blocks for its timeout_ms, as the SDK's does. Frames are a plane ``depth_mm`` away.
    ``with fake.installed():`` puts it in ``sys.modules`` as ``pyrealsense2``.
    """

    def __init__(self, width: int = 64, height: int = 48, depth_mm: int = 600):
        self.width, self.height, self.depth_mm = width, height, depth_mm
        self.connected, self.stall, self.start_error = True, None, None
        self.generation = 0  # bumped by unplug(): pipelines of an older generation are dead
        self.counts = Counter()
        self._lock = threading.Lock()
        self.module = self._build()

    def unplug(self) -> None:
        with self._lock:
            self.connected = False
            self.generation += 1

    def plug(self) -> None:
        with self._lock:
            self.connected = True

    @contextlib.contextmanager
    def installed(self):
        previous = sys.modules.get("pyrealsense2")
        sys.modules["pyrealsense2"] = self.module
        try:
            yield self
        finally:
            if previous is None:
                sys.modules.pop("pyrealsense2", None)
            else:
                sys.modules["pyrealsense2"] = previous

    def _build(self) -> types.ModuleType:
        fake = self
        rs = types.ModuleType("pyrealsense2")
        rs.__fake__ = True
        rs.stream = types.SimpleNamespace(depth="depth")
        rs.format = types.SimpleNamespace(z16="z16", disparity32="disparity32")
        rs.camera_info = types.SimpleNamespace(serial_number="serial_number", name="name")
        rs.option = types.SimpleNamespace(filter_magnitude="filter_magnitude")
        rs.playback_status = types.SimpleNamespace(stopped="stopped", playing="playing")

        class Intrinsics:
            width, height = fake.width, fake.height
            fx = fy = 0.9 * fake.width
            ppx, ppy = fake.width / 2 - 0.5, fake.height / 2 - 0.5

        class VideoProfile:
            def as_video_stream_profile(self):
                return self

            def format(self):
                return rs.format.z16

            def get_intrinsics(self):
                return Intrinsics()

        class DepthFrame:
            def __init__(self, number: int):
                self.number = number

            def get_profile(self):
                return VideoProfile()

            def as_depth_frame(self):
                return self

            def get_data(self):
                return np.full((fake.height, fake.width), fake.depth_mm, np.uint16)

            def get_units(self):
                return 0.001

            def get_timestamp(self):
                return time.time() * 1000.0

        class Frameset:
            def __init__(self, number: int):
                self.number = number

            def get_depth_frame(self):
                return DepthFrame(self.number)

        class Device:
            def get_info(self, info):
                return "FAKE0001" if info == rs.camera_info.serial_number else "Fake D435"

            def supports(self, info):
                return True

            def is_playback(self):
                return False

            def first_depth_sensor(self):
                return types.SimpleNamespace(get_depth_scale=lambda: 0.001)

        class Profile:
            def get_device(self):
                return Device()

            def get_stream(self, stream):
                return VideoProfile()

        class Context:
            def query_devices(self):
                return [Device()] if fake.connected else []

        class Config:
            def enable_device(self, serial):
                self.serial = serial

            def enable_stream(self, *args):
                self.stream = args

            def enable_device_from_file(self, *args, **kwargs):
                raise RuntimeError("the fake pyrealsense2 plays back no files")

        class Pipeline:
            def __init__(self, *args):
                self.generation = None
                self.frames = 0

            def start(self, config=None):
                with fake._lock:
                    fake.counts["start"] += 1
                    if fake.start_error:
                        fake.counts["start_failed"] += 1
                        raise RuntimeError(fake.start_error)
                    if not fake.connected:
                        fake.counts["start_failed"] += 1
                        raise RuntimeError("No device connected")
                    self.generation = fake.generation
                return Profile()

            def stop(self):
                fake.counts["stop"] += 1
                if self.generation is None:
                    raise RuntimeError("stop() cannot be called before start()")
                self.generation = None

            def try_wait_for_frames(self, timeout_ms: int = 5000):
                if self.generation is None:
                    raise RuntimeError("try_wait_for_frames cannot be called before start()")
                with fake._lock:
                    dead = self.generation != fake.generation
                    stall = fake.stall or ("raise" if dead else None)
                if stall:
                    fake.counts[f"wait_failed_{stall}"] += 1
                    time.sleep(timeout_ms / 1000.0)
                    if stall == "raise":
                        raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
                    return False, None
                fake.counts["frames"] += 1
                self.frames += 1
                return True, Frameset(self.frames)

            def wait_for_frames(self, timeout_ms: int = 5000):
                ok, frames = self.try_wait_for_frames(timeout_ms)
                if not ok:
                    raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
                return frames

        class Passthrough:  # the post-processing filters: frames pass as they are
            def __init__(self, *args):
                pass

            def set_option(self, *args):
                pass

            def process(self, frame):
                return frame

        rs.pipeline, rs.config, rs.context = Pipeline, Config, Context
        rs.pipeline_wrapper = lambda pipeline: pipeline
        rs.decimation_filter = rs.disparity_transform = rs.spatial_filter = Passthrough
        rs.temporal_filter = rs.hole_filling_filter = Passthrough
        return rs


def write_recording(path: Path, frames: int = 3, width: int = 64, height: int = 48) -> Path:
    """A rosbag2 (mcap) recording of ``frames`` depth images 0.5, 0.6, ... m with their camera info."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from diffgrasp_ros.camera import DepthFrame
    from diffgrasp_ros.camera.intrinsics import CameraIntrinsics
    from diffgrasp_ros.nodes.conversions import depth_frame_to_msgs

    store = get_typestore(Stores.ROS2_KILTED)
    intrinsics = CameraIntrinsics(width, height, 0.9 * width, 0.9 * width, width / 2, height / 2)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection("/camera/depth", "sensor_msgs/msg/Image", typestore=store)
        info_conn = writer.add_connection("/camera/info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for i in range(frames):
            frame = DepthFrame(np.full((height, width), 0.5 + 0.1 * i, np.float32), intrinsics, frame_id="bag_cam",
                               stamp=100.0 + i)
            image, info = depth_frame_to_msgs(frame)
            t = int(frame.stamp * 1e9)
            writer.write(info_conn, t, bytes(serialize_message(info)))
            writer.write(image_conn, t, bytes(serialize_message(image)))
    return path


class CaptureRig:
    """depth_capture (a ``DepthCaptureNode``, or ``node_class``) in this process, with the lifecycle manager
    managing it, a listener counting its frames and a prober timing its get_state and ~/get_status answers
    (every ``probe_period_s``), all on one executor of their own rclpy context. For tests and camera_faults."""

    def __init__(self, parameters: dict, node_class=None, manager: bool = True, probe_period_s: float = 0.25,
                 check_period_s: float = 0.25):
        import rclpy
        from lifecycle_msgs.srv import GetState
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from diffgrasp_ros.nodes.lifecycle_manager import LifecycleManagerNode
        from ros_helpers import Spinner

        if node_class is None:
            from diffgrasp_ros.nodes.depth_capture import DepthCaptureNode as node_class
        self.node_class = node_class
        self.parameters = parameters
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.frames: list[float] = []  # time.monotonic() of each frame received
        self.probes: list[dict] = []  # {t, state_ms, state, status}
        self.executor = MultiThreadedExecutor(num_threads=8, context=self.context)
        self.node = self._make_node()
        self.manager = None
        if manager:
            self.manager = LifecycleManagerNode(context=self.context, parameter_overrides=[
                Parameter("node_names", value=["depth_capture"]), Parameter("check_period_s", value=check_period_s)])
            self.executor.add_node(self.manager)
        self.listener = rclpy.create_node("capture_rig_listener", context=self.context)
        self.listener.create_subscription(Image, "depth/image_raw", lambda _: self.frames.append(time.monotonic()), 10)
        self.get_state = self.listener.create_client(GetState, "depth_capture/get_state")
        self.get_status = self.listener.create_client(Trigger, "depth_capture/get_status")
        self.executor.add_node(self.listener)
        self.spinner = Spinner(self.executor).__enter__()
        self._probing = threading.Event()
        self._prober = threading.Thread(target=self._probe, args=(probe_period_s,), daemon=True)
        self._prober.start()

    def _make_node(self):
        from rclpy.parameter import Parameter

        node = self.node_class(context=self.context, parameter_overrides=[
            Parameter(name, value=value) for name, value in self.parameters.items()])
        self.executor.add_node(node)
        return node

    def restart_node(self):
        """As the supervisor does after a crash: the node destroyed and a new one (unconfigured) started."""
        old = self.node
        self.executor.remove_node(old)
        old.destroy_node()
        self.node = self._make_node()
        return self.node

    def _call(self, client, request, timeout_s: float = 5.0):
        from ros_helpers import wait_for

        if not client.service_is_ready():
            return None
        future = client.call_async(request)
        if not wait_for(future.done, timeout_s, period_s=0.005):
            client.remove_pending_request(future)
            return None
        return future.result()

    def _probe(self, period_s: float) -> None:
        from lifecycle_msgs.srv import GetState
        from std_srvs.srv import Trigger

        while not self._probing.wait(period_s):
            t = time.monotonic()
            state = self._call(self.get_state, GetState.Request())
            state_ms = 1000.0 * (time.monotonic() - t)
            status = self._call(self.get_status, Trigger.Request())
            self.probes.append({"t": t, "state_ms": state_ms if state is not None else None,
                                "state": None if state is None else state.current_state.label,
                                "status": None if status is None else [status.success, status.message]})

    def frames_between(self, t0: float, t1: float) -> int:
        return sum(t0 <= t < t1 for t in list(self.frames))

    def wait_frames(self, count: int, since: float, timeout_s: float) -> float | None:
        """time.monotonic() of the ``count``-th frame received after ``since``, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            after = [t for t in list(self.frames) if t >= since]
            if len(after) >= count:
                return after[count - 1]
            time.sleep(0.02)
        return None

    def probes_between(self, t0: float, t1: float) -> list[dict]:
        return [p for p in list(self.probes) if t0 <= p["t"] < t1]

    def close(self) -> None:
        import rclpy

        self._probing.set()
        self._prober.join(timeout=10)
        self.spinner.__exit__(None, None, None)
        for node in (self.node, self.manager, self.listener):
            if node is not None:
                node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def first_of_each_kind(lines) -> list[str]:
    """The first of the lines that differ only in their numbers."""
    kinds: dict[str, str] = {}
    for line in lines:
        kinds.setdefault(re.sub(r"\d+(\.\d+)?", "N", line), line)
    return list(kinds.values())


def _window(rig: CaptureRig, t0: float, t1: float) -> dict:
    probes = rig.probes_between(t0, t1)
    answered = [p["state_ms"] for p in probes if p["state_ms"] is not None]
    statuses = first_of_each_kind(p["status"][1] for p in probes if p["status"])
    return {"frames": rig.frames_between(t0, t1), "probes": len(probes),
            "get_state_unanswered": sum(p["state_ms"] is None for p in probes),
            "get_state_max_ms": max(answered) if answered else None,
            "states": sorted({p["state"] for p in probes if p["state"]}),
            "status_messages": statuses[:6]}


def realsense_faults(quick: bool = False, node_class=None) -> dict:
    """The injected RealSense faults, in this process (``camera_faults`` runs it in a child process)."""
    fake = FakeRealSense()
    timeout_ms = 1000 if quick else 5000
    fault_s = 2.0 if quick else 12.0
    params = {"source": "realsense", "rate_hz": 10.0, "realsense.width": fake.width, "realsense.height": fake.height}
    params["realsense.timeout_ms"] = timeout_ms  # (a node that does not declare it ignores it: 5000 ms)
    if quick:
        params.update({"reopen_initial_s": 0.5, "reopen_max_s": 2.0})
    results: dict = {"settings": {"timeout_ms": timeout_ms, "fault_s": fault_s, **params}, "scenarios": {}}
    with fake.installed():
        rig = CaptureRig(params, node_class=node_class)
        try:
            up = rig.wait_frames(3, 0.0, 60.0)
            results["brought_up"] = up is not None
            if up is None:
                results["error"] = f"no frames from the node within 60 s: {rig.node.last_error}"
                return results

            def scenario(name: str, inject, clear, recovery_timeout_s: float = 60.0) -> None:
                counts_before = Counter(fake.counts)
                rig.node.last_error = ""
                t0 = time.monotonic()
                inject()
                time.sleep(fault_s)
                errors = rig.node.last_error
                t1 = time.monotonic()
                clear()
                first = rig.wait_frames(3, t1, recovery_timeout_s)
                time.sleep(1.0)
                row = {"fault_s": t1 - t0, "during": _window(rig, t0, t1),
                       "last_error_during": errors[:400],
                       "recovered": first is not None,
                       "frames_again_after_s": None if first is None else first - t1,
                       "after": _window(rig, t1, time.monotonic()),
                       "node_state_after": rig.probes[-1]["state"] if rig.probes else None,
                       "sdk_calls": {k: fake.counts[k] - counts_before[k] for k in fake.counts
                                     if fake.counts[k] != counts_before[k]}}
                row["during"]["frames_after_the_first_second"] = rig.frames_between(t0 + timeout_ms / 1000.0 + 0.5, t1)
                results["scenarios"][name] = row
                print(f"  camera {name}: recovered {row['recovered']} "
                      f"({row['frames_again_after_s'] if first is None else round(first - t1, 2)} s), "
                      f"get_state max {row['during']['get_state_max_ms']} ms, unanswered "
                      f"{row['during']['get_state_unanswered']}; {errors[:160]}", flush=True)

            scenario("frames stop (wait_for_frames raises \"Frame didn't arrive\")",
                     lambda: setattr(fake, "stall", "raise"), lambda: setattr(fake, "stall", None))
            scenario("frames stop (try_wait_for_frames returns false)",
                     lambda: setattr(fake, "stall", "timeout"), lambda: setattr(fake, "stall", None))
            scenario("camera unplugged, plugged in again", fake.unplug, fake.plug)

            def busy():
                fake.stall = "raise"
                fake.start_error = "xioctl(VIDIOC_S_FMT) failed, errno=16 Last Error: Device or resource busy"

            def free():
                fake.stall = fake.start_error = None

            scenario("frames stop and pipeline.start() fails (device busy) until both work again", busy, free)

            # The node process restarted while the camera cannot start: configure fails, the manager retries.
            fake.start_error = "No device connected"
            counts_before = Counter(fake.counts)
            t0 = time.monotonic()
            rig.restart_node()
            time.sleep(fault_s)
            errors, state_during = rig.node.last_error, [p["state"] for p in rig.probes_between(t0, time.monotonic())]
            manager_state = dict(rig.manager.states) if rig.manager else None
            t1 = time.monotonic()
            fake.start_error = None
            first = rig.wait_frames(3, t1, 60.0)
            results["scenarios"]["start() fails at configure (node restarted while the camera is away)"] = {
                "fault_s": t1 - t0, "last_error_during": errors[:400], "manager_state_during": manager_state,
                "states_during": sorted({s for s in state_during if s}),
                "configure_attempts": fake.counts["start"] - counts_before["start"],
                "recovered": first is not None, "frames_again_after_s": None if first is None else first - t1,
                "after": _window(rig, t1, time.monotonic())}
            print(f"  camera start fails at configure: recovered {first is not None}; {errors[:160]}", flush=True)
        finally:
            results["fake_sdk_calls"] = dict(fake.counts)
            rig.close()
    return results


def replay_end(loop: bool, workdir: Path, node_class=None, frames: int = 3, watch_s: float = 4.0) -> dict:
    """depth_capture replaying a ``frames``-frame recording at 10 Hz for ``watch_s``: what it publishes and
    says when the recording ends (``loop``), and whether it stays alive."""
    bag = write_recording(workdir / f"recording_{'loop' if loop else 'once'}", frames)
    rig = CaptureRig({"source": "replay", "rate_hz": 10.0, "replay.path": str(bag), "replay.loop": loop},
                     node_class=node_class)
    try:
        first = rig.wait_frames(1, 0.0, 60.0)
        t0 = first if first is not None else time.monotonic()
        time.sleep(watch_s)
        window = _window(rig, t0, time.monotonic())
        return {"loop": loop, "recording_frames": frames, "frames_published": len(rig.frames),
                "watched_s": watch_s, "last_error": rig.node.last_error[:300], "after_the_end": window,
                "alive": rig.probes[-1]["state"] if rig.probes else None}
    finally:
        rig.close()


def camera_faults_main(spec: dict) -> dict:
    """``camera_faults`` in this process (the child ``--camera-faults`` process)."""
    use_private_domain()
    node_class = None
    if spec.get("node_file"):  # another version of the node (e.g. before a fix), for comparison
        import importlib.util

        module_spec = importlib.util.spec_from_file_location("depth_capture_under_test", spec["node_file"])
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        node_class = module.DepthCaptureNode
    workdir = Path(spec["workdir"])
    result = {"realsense": realsense_faults(spec["quick"], node_class)}
    result["replay_once"] = replay_end(False, workdir, node_class)
    result["replay_loop"] = replay_end(True, workdir, node_class)
    return result


def camera_faults(quick: bool = False, *, workdir: Path | None = None, node_file: str | None = None,
                  timeout_s: float | None = None) -> dict:
    """depth_capture under injected RealSense faults and at the end of a replayed recording (loop false and
    true), with the lifecycle manager, in a process of its own (its log is read for what the node said).
    Quick: 1 s frame timeouts, 3 s faults, faster reopening; else the node's defaults (5 s timeouts, reopen
    after 1 s doubling to 10 s) and 12 s faults. ``node_file``: another depth_capture.py to run instead."""
    workdir = workdir_for("camera", workdir)
    spec = {"quick": quick, "workdir": str(workdir), "node_file": node_file}
    timeout_s = timeout_s or (150.0 if quick else 480.0)
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "OMP_NUM_THREADS": "1"}
    out_path = workdir / "camera_faults.json"
    start = time.monotonic()
    with open(workdir / "camera_faults.log", "w") as log:
        process = subprocess.Popen([sys.executable, __file__, "--camera-faults", json.dumps(spec), str(out_path)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            code = None
    output = (workdir / "camera_faults.log").read_text(errors="replace")
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    lines = [line for line in output.splitlines() if re.match(r"\[(INFO|WARN|ERROR)\] \[[\d.]+\] \[(depth_capture|"
                                                                r"lifecycle_manager)\]", line)]
    result.update(exit_code=code, wall_s=time.monotonic() - start, log=str(workdir / "camera_faults.log"),
                  tracebacks=output.count("Traceback"), log_lines=len(lines),
                  log_sample=first_of_each_kind(re.sub(r"^\[(\w+)\] \[[\d.]+\] ", r"[\1] ", line)[:300]
                                                for line in lines)[:40])
    if code != 0:
        result["error"] = f"the camera-fault process exited with {code}: {output[-2000:]}"
    return result


# ---------------------------------------------------------------------------------------------------------
# 4. Corrupt weights at configure
# ---------------------------------------------------------------------------------------------------------
def corrupt_model_copy(source: Path, folder: Path, how: str) -> Path:
    """A copy of the model folder ``source`` whose weights.pt is ``how``: truncated (its first 10 %) or random
    (random bytes of its size)."""
    shutil.copytree(source, folder)
    weights = folder / "weights.pt"
    size = weights.stat().st_size
    if how == "truncated":
        with open(weights, "r+b") as f:
            f.truncate(size // 10)
    elif how == "random":
        weights.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    else:
        raise ValueError(how)
    return folder


def grasp_server_corrupt(how: str, workdir: Path, watch_s: float, repair: bool = True,
                         max_retry_period_s: float | None = None) -> dict:
    """The graph with the grasp server's ``weights`` pointing at a corrupt copy of models/igd (and the lifecycle
    manager's ``max_retry_period_s`` when given)."""
    from diffgrasp_ros.model_files import shipped_model_folder

    folder = corrupt_model_copy(shipped_model_folder("igd"), workdir / f"igd_{how}", how)
    params = workdir / f"grasp_server_{how}.yaml"
    params.write_text(f"/**/grasp_server:\n  ros__parameters:\n    weights: {folder}\n"
                      + (f"/**/lifecycle_manager:\n  ros__parameters:\n    max_retry_period_s: {max_retry_period_s}\n"
                         if max_retry_period_s else ""))
    row: dict = {"weights": str(folder / "weights.pt"), "how": how}
    with running_graph(f"weights_{how}", workdir, ["--ros-args", "--params-file", str(params)],
                       served_timeout_s=None) as (graph, observer, env, info):
        row["graph"] = info
        t_start = time.monotonic()
        deadline = time.monotonic() + 240.0
        state = ""
        while time.monotonic() < deadline:  # the other nodes active, the grasp server failing to configure
            ok, state = observer.all_active(5.0)
            others = all(f"{n}: active" in state for n in NODES if n != "grasp_server")
            if others and "grasp_server: configure failed" in state:
                break
            time.sleep(0.5)
        row["graph_state"] = state
        row["others_active"] = all(f"{n}: active" in state for n in NODES if n != "grasp_server")
        output = graph.output()
        reasons = re.findall(r"\[grasp_server\]: (configure failed: .*)", output)
        row["configure_error"] = reasons[0][:600] if reasons else None
        # Named as every node names a host path it sends (nodes.base.sanitise): <path>/ and the name.
        row["names_the_file"] = bool(reasons) and "<path>/weights.pt" in reasons[0]
        row["names_the_folder"] = bool(reasons) and f"<path>/{folder.name}" in reasons[0]
        row["hides_the_host_path"] = bool(reasons) and str(folder) not in reasons[0]
        # The rest of the graph meanwhile: scene clouds arriving, /plan_grasp answered with an error code.
        pid = node_pids(graph.process.pid).get("grasp_server")
        clouds = []
        t0 = time.monotonic()
        last = None
        client = RateClient(workdir, env, f"weights_{how}", max(int(watch_s), 3), 1.0, 10.0)
        try:
            client.wait_ready()
            client.go()
            while time.monotonic() - t0 < watch_s + 5.0 and "done" not in client.events():
                if observer.surface is not None and observer.surface is not last:
                    last = observer.surface
                    clouds.append(time.monotonic())
                time.sleep(0.05)
        finally:
            client.close()
        records = client.records()
        row["scene_clouds_received"] = len(clouds)
        row["scene_cloud_period_s"] = (float(np.median(np.diff(clouds))) if len(clouds) > 1 else None)
        row["plan_grasp"] = latency_figures(records)
        row["plan_grasp_messages"] = dict(Counter(f"{outcome(r)}: {r.get('message', r.get('why', ''))[:200]}"
                                                  for r in records))
        row["plan_grasp_answered_within_1_s"] = sum(r["answered"] and r["latency_ms"] <= 1000.0 for r in records)
        row["plan_grasp_answered_within_1_5_s"] = sum(r["answered"] and r["latency_ms"] <= 1500.0 for r in records)
        output = graph.output()
        row["configure_failures_logged_by_manager"] = len(re.findall(r"\[lifecycle_manager\]: grasp_server: configure "
                                                                     r"failed", output))
        row["watched_s"] = time.monotonic() - t_start
        row["manager_lines"] = list(dict.fromkeys(
            re.sub(r"\d+(\.\d+)? s\b", "N s", m) for m in re.findall(r"\[lifecycle_manager\]: (grasp_server.*)",
                                                                       output)))[:6]
        if repair:  # the right file put back: the manager's next retry brings the server up, no restart
            shutil.copy(shipped_model_folder("igd") / "weights.pt", folder / "weights.pt")
            t_repair = time.monotonic()
            up = None
            while time.monotonic() - t_repair < 120.0:
                if observer.state("grasp_server", 5.0) == "active":
                    up = time.monotonic() - t_repair
                    break
                time.sleep(0.25)
            row["active_after_repair_s"] = up
            if up is not None:
                from ros_idle_and_stop import wait_until_served

                try:
                    wait_until_served(os.environ["ROS_DOMAIN_ID"], 120.0)
                    row["plan_grasp_succeeds_after_repair_s"] = time.monotonic() - t_repair
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    row["plan_grasp_after_repair"] = str(error)[:300]
            row["same_grasp_server_process"] = node_pids(graph.process.pid).get("grasp_server") == pid
        row["grasp_server_restarts"] = [r for r in re.findall(r"diffgrasp up: (\w+) exited with code (-?\d+)",
                                                              graph.output()) if r[0] == "grasp_server"]
    return row


def depth_processor_corrupt(how: str, workdir: Path) -> dict:
    """depth_processor in restore mode whose restoration model (the shipped folder's place, patched: the
    node has no weights parameter) is a corrupt copy: configure's answer and reason (in a child process)."""
    from diffgrasp_ros.model_files import shipped_model_folder

    folder = corrupt_model_copy(shipped_model_folder("depth_restore"), workdir / f"depth_restore_{how}", how)
    code = (
        "import json, sys, time\n"
        "import rclpy\n"
        "from rclpy.parameter import Parameter\n"
        "from rclpy.lifecycle import TransitionCallbackReturn\n"
        "from diffgrasp_ros.depth import restoration\n"
        f"restoration.DEFAULT_WEIGHTS = __import__('pathlib').Path({str(folder)!r})\n"
        "from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode\n"
        "rclpy.init()\n"
        "node = DepthProcessorNode(parameter_overrides=[Parameter('mode', value='restore'),"
        " Parameter('device', value='cpu')])\n"
        "t = time.monotonic()\n"
        "answer = node.trigger_configure()\n"
        "print('RESULT ' + json.dumps({'configure_ok': answer == TransitionCallbackReturn.SUCCESS,"
        " 'configure_s': time.monotonic() - t, 'last_error': node.last_error,"
        " 'state': node._state_machine.current_state[1] if hasattr(node, '_state_machine') else None}))\n"
        "node.destroy_node(); rclpy.try_shutdown()\n")
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"how": how, "error": "no answer within 120 s"}
    found = re.findall(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if not found:
        return {"how": how, "error": f"exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"}
    row = {"how": how, "weights": str(folder / "weights.pt"), **json.loads(found[0])}
    row.pop("state", None)
    row["names_the_file"] = "<path>/weights.pt" in row["last_error"]
    row["names_the_folder"] = f"<path>/{folder.name}" in row["last_error"]
    row["hides_the_host_path"] = str(folder) not in row["last_error"]
    return row


def corrupt_weights_at_configure(quick: bool = False, *, workdir: Path | None = None, watch_s: float | None = None,
                                 kinds: tuple[str, ...] | None = None) -> dict:
    """The grasp server with a truncated and a random weights.pt (quick: truncated only), each in a graph of
    its own: configure's reason, the rest of the graph meanwhile, the repair; and the depth processor's
    restore model corrupt (both kinds)."""
    workdir = workdir_for("weights", workdir)
    kinds = kinds or (("truncated",) if quick else ("truncated", "random"))
    watch_s = watch_s or (6.0 if quick else 20.0)
    use_private_domain()
    result: dict = {"grasp_server": {}, "depth_processor": {}, "errors": []}
    for how in kinds:
        try:
            result["grasp_server"][how] = grasp_server_corrupt(how, workdir, watch_s, repair=True,
                                                               max_retry_period_s=2.0 if quick else None)
        except Exception as error:
            result["errors"].append(f"grasp_server {how}: {type(error).__name__}: {error}")
    for how in ("truncated", "random"):
        result["depth_processor"][how] = depth_processor_corrupt(how, workdir)
    return result


# ---------------------------------------------------------------------------------------------------------
def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--camera-faults":
        result = camera_faults_main(json.loads(sys.argv[2]))
        Path(sys.argv[3]).write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the CI path of every part (about 3 minutes)")
    parser.add_argument("--only", default="soak,kill,camera,weights", help="parts to run, comma-separated")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate-hz", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--nodes", default=",".join(NODES), help="kill_each_node's nodes")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "reliability_ros")
    args = parser.parse_args()
    if not str(args.out.resolve()).startswith(tempfile.gettempdir()):
        parser.error("--out must be under /tmp (benchmarks/results/reliability.md is assembled elsewhere)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="reliability_ros_", dir=args.out.parent))
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    try:
        from diffgrasp_ros.evaluation.report import run_context

        context = run_context("python benchmarks/reliability_ros.py " + " ".join(sys.argv[1:]))
    except Exception as error:  # provenance is welcome, not required
        context = {"error": str(error)}
    results: dict = {"context": context, "workdir": str(workdir)}
    started = time.monotonic()
    out_json = args.out.with_suffix(".json")

    def run(name, fn):
        if name not in parts:
            return
        print(f"{name}...", flush=True)
        t = time.monotonic()
        try:
            results[name] = fn()
        except Exception as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["part_s"] = time.monotonic() - t
        print(f"  {name}: {time.monotonic() - t:.0f} s", flush=True)
        out_json.write_text(json.dumps(results, indent=1, default=str) + "\n")

    with contextlib.ExitStack() as stack:
        session = None
        if args.quick and {"soak", "kill"} <= parts:  # one graph for both: its start is a third of the time
            try:
                session = stack.enter_context(running_graph("quick", workdir))
                results["shared_graph"] = session[3]
            except Exception as error:  # each part then tries a graph of its own
                results["shared_graph"] = {"error": f"{type(error).__name__}: {error}"}
        run("soak", lambda: soak(args.calls, args.rate_hz, args.warmup, args.quick, workdir=workdir, session=session))
        run("kill", lambda: kill_each_node(tuple(args.nodes.split(",")), args.quick, workdir=workdir,
                                           session=session))
    run("camera", lambda: camera_faults(args.quick, workdir=workdir))
    run("weights", lambda: corrupt_weights_at_configure(args.quick, workdir=workdir))
    results["total_s"] = time.monotonic() - started
    out_json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(summary_text(results))
    print(f"results: {out_json}")
    return 0


def summary_text(results: dict) -> str:
    lines = []
    s = results.get("soak")
    if s and "calls" in s:
        c = s["calls"]
        lines.append(f"soak: {c['calls']} calls, {outcomes_text(c['outcomes'])}; p50 {fmt(c['p50_ms'])} / p95 "
                     f"{fmt(c['p95_ms'])} / p99 {fmt(c['p99_ms'])} ms; max RSS growth {s.get('max_rss_growth_pct')} % "
                     f"(quarter medians: {s.get('max_rss_growth_pct_median')} %); "
                     f"fd growth {s.get('fd_growth')}; thread growth {s.get('thread_growth')}")
        for name, g in (s.get("growth") or {}).items():
            w, e = s["warmup"]["stats"].get(name), s["end"]["stats"].get(name)
            if g:
                lines.append(f"  {name}: RSS {w['rss_kb'] / 1024:.1f} -> {e['rss_kb'] / 1024:.1f} MiB "
                             f"({g['rss_pct']:+.2f} %), fds {w['fds']} -> {e['fds']}, threads {w['threads']} -> "
                             f"{e['threads']}")
    k = results.get("kill")
    if k and "kills" in k:
        for name, row in k["kills"].items():
            lines.append(f"kill {name}: {json.dumps({x: row.get(x) for x in ('survived', 'restarted_s', 'active_again_s', 'plan_grasp_succeeds_again_s', 'unanswered_calls', 'outage_codes')}, default=str)}")
    cam = results.get("camera")
    if cam and "realsense" in cam:
        for name, row in cam["realsense"]["scenarios"].items():
            lines.append(f"camera {name}: recovered {row['recovered']} after {row['frames_again_after_s']} s")
        for key in ("replay_once", "replay_loop"):
            row = cam.get(key) or {}
            lines.append(f"{key}: {row.get('frames_published')} frames, alive {row.get('alive')}, "
                         f"{row.get('last_error', '')[:120]}")
    w = results.get("weights")
    if w and "grasp_server" in w:
        for how, row in w["grasp_server"].items():
            lines.append(f"grasp_server {how}: others active {row.get('others_active')}, names the file "
                         f"{row.get('names_the_file')}, plan_grasp {row.get('plan_grasp', {}).get('outcomes')} "
                         f"p50 {row.get('plan_grasp', {}).get('p50_ms')} ms; repaired -> active after "
                         f"{row.get('active_after_repair_s')} s")
        for how, row in w["depth_processor"].items():
            lines.append(f"depth_processor {how}: configure ok {row.get('configure_ok')}, names the file "
                         f"{row.get('names_the_file')}: {row.get('last_error', row.get('error', ''))[:200]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
