"""The ROS scenarios of issue 19 against the graph as a user runs it: `diffgrasp up --camera sim --processes`.

    .venv/bin/python benchmarks/ros_graph.py [--calls 50] [--clients 4] [--client-calls 10] [--runs 3]
        [--kill-runs 3] [--kill-all] [--cycles 20] [--cleanup-every 5] [--cycle-pause-s 1]
        [--call-timeout 30] [--skip corners,sequential,concurrent,kill,cycling] [--quick]
        [--out benchmarks/results/ros_graph] [--log up.log] [--up-args "--ros-args -p ..."]

One graph (one process per node, the lifecycle manager, the supervisor) on a private ROS_DOMAIN_ID with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; every /plan_grasp client is a process of its own (this file with
``--client``); lifecycle transitions, node states, the graph state, the service listing and the scene cloud
are asked from this process (its own rclpy context). In order:

1. **targets in opposite corners**: the object points of the simulated scene (its ``/scene/surface`` cloud
   above the table) grouped into clusters; one call without a target, then one per cluster whose ``target``
   is a BOX CollisionObject around it in the workspace frame: the best grasp of each answer, whether it
   (and every grasp) lies within 0.02 m of its box, and whether the best grasps of the two clusters farthest
   apart (the opposite corners) differ;
2. **sequential latency**: ``--calls`` calls one after another (``--runs`` times): successes, error codes,
   p50 / p95 / max;
3. **concurrent clients**: ``--clients`` processes x ``--client-calls`` calls, started together (``--runs``
   times): the same figures per client and pooled;
4. **kill and restart**: SIGKILL of the grasp server's process (found under the supervisor's children in
   /proc; ``--kill-runs`` times) and with ``--kill-all`` of every other node's and the manager's once, 0.15 s
   after a client sent a call, while two clients keep calling: time until the supervisor has started it
   again, until it is active again, until /plan_grasp succeeds again (a third client that gives up after
   5 s); the codes, messages and answer times of the calls in flight at the kill and of those sent during
   the outage (error answers within ~1 s are wanted, not hangs); how long DDS still lists the dead server;
5. **lifecycle cycling** (last: it can leave nodes broken): ``--cycles`` rounds of deactivate/activate of
   every node through ``<node>/change_state`` (every ``--cleanup-every``-th round deactivate/cleanup/
   configure/activate) while a client keeps calling: failed transitions (with the node's state before and
   after), time per transition, the calls' codes; a node that stops answering altogether while its process
   runs (a deaf node) is recorded and SIGKILLed so that the supervisor and the manager bring it back; then
   whether /plan_grasp works;
6. **stop**: SIGTERM to the supervisor: time to exit, exit code, when and how each node process ended,
   tracebacks in the graph's output.

Medians over the runs for the timed parts; every figure printed; results in ``--out``.md and .json with
the commit (``-dirty`` when the tree is), the command, the date and the machine. Every subprocess and wait
has a timeout; the graph is stopped (SIGTERM, then SIGKILL of its session) even on failure. A full run
takes about 15 minutes on 2 cores, 20 with ``--kill-all`` (``--quick``: about 4, 7 with ``--kill-all``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODES = ("depth_capture", "depth_processor", "scene_builder", "grasp_server", "grasp_executor")  # graph.GRAPH order
TARGET_REACH_M = 0.02  # grasping.planner.TARGET_REACH_M: a grasp this far outside its target box still closes on it
WORKSPACE_SIZE_M, TABLE_HEIGHT_M, WORKSPACE_FRAME = 0.30, 0.05, "workspace"  # config/grasp_server.yaml


# ---------------------------------------------------------------------------------------------------------
# The client process: calls /plan_grasp and writes one JSON line per call (times: CLOCK_MONOTONIC, which
# every process on the machine shares).
# ---------------------------------------------------------------------------------------------------------
def target_object(box, name: str):
    """A moveit_msgs/CollisionObject: one BOX primitive spanning ``box`` = (lo, hi) in the workspace frame."""
    from geometry_msgs.msg import Pose
    from moveit_msgs.msg import CollisionObject
    from shape_msgs.msg import SolidPrimitive

    lo, hi = box
    obj = CollisionObject(id=name, operation=CollisionObject.ADD)
    obj.header.frame_id = WORKSPACE_FRAME
    obj.pose.orientation.w = 1.0
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = ((a + b) / 2 for a, b in zip(lo, hi))
    pose.orientation.w = 1.0
    obj.primitives.append(SolidPrimitive(type=SolidPrimitive.BOX, dimensions=[b - a for a, b in zip(lo, hi)]))
    obj.primitive_poses.append(pose)
    return obj


def client_main(spec: dict) -> int:
    import rclpy
    from moveit_msgs.srv import GraspPlanning

    rclpy.init()
    node = rclpy.create_node(f"ros_graph_client_{spec['name']}")
    client = node.create_client(GraspPlanning, "/plan_grasp")
    out = open(spec["out"], "a", buffering=1)
    end = time.monotonic() + spec["max_s"]

    def write(record: dict) -> None:
        out.write(json.dumps(record) + "\n")

    try:
        if not client.wait_for_service(timeout_sec=spec["ready_timeout_s"]):
            write({"event": "no_service"})
            return 1
        write({"event": "ready", "t": time.monotonic()})
        if spec.get("go_file"):
            while not os.path.exists(spec["go_file"]) and time.monotonic() < end:
                time.sleep(0.01)
        targets = spec.get("targets") or [None]
        # With rate_hz, call i is due at start + i / rate_hz; a call that takes longer delays the next one,
        # none is skipped, and each record says how late it was sent.
        period, start = 1.0 / spec["rate_hz"] if spec.get("rate_hz") else None, time.monotonic()
        i = 0
        while (spec["calls"] is None or i < spec["calls"]) and time.monotonic() < end:
            if period is not None:
                time.sleep(max(start + i * period - time.monotonic(), 0.0))
            if time.monotonic() > end or (spec.get("stop_file") and os.path.exists(spec["stop_file"])):
                break
            target = targets[i % len(targets)]
            record = {"client": spec["name"], "i": i, "target": target, "t_send": time.monotonic()}
            if period is not None:
                record["late_s"] = record["t_send"] - (start + i * period)
            service_wait_s = spec.get("service_wait_s", spec["timeout_s"])
            if not client.service_is_ready() and not client.wait_for_service(timeout_sec=service_wait_s):
                record.update(answered=False, why="/plan_grasp not available")
            else:
                request = GraspPlanning.Request()
                if target is not None:
                    request.target = target_object(target, f"box_{i}")
                future = client.call_async(request)
                rclpy.spin_until_future_complete(node, future, timeout_sec=spec["timeout_s"])
                if future.done() and future.result() is not None:
                    answer = future.result()
                    record.update(answered=True, code=answer.error_code.val, message=answer.error_code.message,
                                  grasps=[[g.grasp_pose.pose.position.x, g.grasp_pose.pose.position.y,
                                           g.grasp_pose.pose.position.z] for g in answer.grasps],
                                  frames=sorted({g.grasp_pose.header.frame_id for g in answer.grasps}))
                else:
                    client.remove_pending_request(future)
                    record.update(answered=False, why=f"no answer within {spec['timeout_s']:.0f} s")
            record["t_done"] = time.monotonic()
            record["latency_ms"] = 1000.0 * (record["t_done"] - record["t_send"])
            write(record)
            i += 1
            if spec.get("pause_s"):
                time.sleep(spec["pause_s"])
    finally:
        out.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


class Clients:
    """Client processes started together (``--client`` of this file), each writing its calls to a file."""

    def __init__(self, workdir: Path, env: dict, tag: str, count: int, calls: int | None, timeout_s: float,
                 targets=None, max_s: float = 900.0, synchronized: bool = False, pause_s: float = 0.0):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{tag}_", dir=workdir))
        self.go_file = self.dir / "go" if synchronized else None
        self.stop_file = self.dir / "stop"
        self.max_s = max_s
        self.outs, self.processes = [], []
        for k in range(count):
            out = self.dir / f"client{k}.jsonl"
            spec = {"name": f"{tag}{k}", "out": str(out), "calls": calls, "timeout_s": timeout_s,
                    "targets": targets, "max_s": max_s, "ready_timeout_s": 60.0, "pause_s": pause_s,
                    "go_file": str(self.go_file) if self.go_file else None, "stop_file": str(self.stop_file)}
            log = open(self.dir / f"client{k}.log", "w")
            self.processes.append(subprocess.Popen([sys.executable, __file__, "--client", json.dumps(spec)],
                                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO))
            log.close()
            self.outs.append(out)

    def lines(self, k: int) -> list[dict]:
        try:
            text = self.outs[k].read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def records(self) -> list[dict]:
        return [r for k in range(len(self.outs)) for r in self.lines(k) if "event" not in r]

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = [{r.get("event") for r in self.lines(k)} for k in range(len(self.outs))]
            if any("no_service" in e for e in events) or any(p.poll() not in (None, 0) for p in self.processes):
                break
            if all("ready" in e for e in events):
                return
            time.sleep(0.05)
        raise RuntimeError(f"client processes not ready: {self.tail()}")

    def go(self) -> float:
        t = time.monotonic()
        if self.go_file:
            self.go_file.touch()
        return t

    def stop(self) -> None:
        self.stop_file.touch()

    def wait(self, timeout_s: float) -> None:
        """Wait for every client to exit (kill those still running after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def tail(self) -> str:
        return " | ".join((self.dir / f"client{k}.log").read_text()[-600:] for k in range(len(self.outs)))


# ---------------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------------
def code_names() -> dict[int, str]:
    from moveit_msgs.msg import MoveItErrorCodes

    return {getattr(MoveItErrorCodes, n): n for n in dir(MoveItErrorCodes)
            if n.isupper() and isinstance(getattr(MoveItErrorCodes, n), int)}


CODE_NAMES: dict[int, str] = {}


def outcome(record: dict) -> str:
    if not record["answered"]:
        return "NO ANSWER: " + record["why"]
    return CODE_NAMES.get(record["code"], str(record["code"]))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def call_figures(records: list[dict]) -> dict:
    """Successes, outcomes and latency of the answered calls (ms)."""
    latencies = [r["latency_ms"] for r in records if r["answered"]]
    return {"calls": len(records), "successes": sum(r["answered"] and r["code"] == 1 for r in records),
            "outcomes": dict(Counter(outcome(r) for r in records)),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "max_ms": max(latencies) if latencies else None}


def median_of(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(x, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def outcomes_text(outcomes: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items(), key=lambda kv: -kv[1])) or "none"


def slim(record: dict) -> dict:
    keep = ("client", "i", "t_send", "t_done", "latency_ms", "answered", "code", "why")
    out = {k: record[k] for k in keep if k in record}
    if "message" in record:
        out["message"] = record["message"][:300]
    return out


# ---------------------------------------------------------------------------------------------------------
# The graph: `diffgrasp up --camera sim --processes`, its node processes, and a node of this process that
# asks the graph's lifecycle services.
# ---------------------------------------------------------------------------------------------------------
def children(pid: int) -> dict[int, str]:
    """Child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def node_pids(supervisor: int) -> dict[str, int]:
    """The supervisor's node processes by node name (from their `from diffgrasp_ros.nodes.<name> import main`)."""
    pids = {}
    for pid, command in children(supervisor).items():
        match = re.search(r"diffgrasp_ros\.nodes\.(\w+) import main", command)
        if match:
            pids[match.group(1)] = pid
    return pids


def alive(pid: int) -> bool:
    """The process runs (exists and is not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def exit_status(pid: int) -> str:
    """How a zombie process ended (/proc/<pid>/stat exit_code, as waitpid reports it); 'unknown' once reaped."""
    try:
        code = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[49])
    except (OSError, IndexError, ValueError):
        return "unknown"
    return f"signal {code & 0x7F}" if code & 0x7F else f"exit {code >> 8}"


class Graph:
    def __init__(self, env: dict, log_path: Path, extra: list[str]):
        self.command = [sys.executable, "-m", "diffgrasp_ros.cli.main", "up", "--camera", "sim", "--processes", *extra]
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.started = time.monotonic()
        # A session of its own, so whatever is left of it can be killed at the end.
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                        start_new_session=True)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> dict:
        """SIGTERM to the supervisor, kill after 30 s; then anything left of its session is killed."""
        result = {"stop_s": None, "exit_code": None, "killed": False}
        if self.process.poll() is None:
            pids = node_pids(self.process.pid)
            start = time.monotonic()
            self.process.send_signal(signal.SIGTERM)
            exited: dict[str, float] = {}
            how: dict[str, str] = {}
            while self.process.poll() is None and time.monotonic() < start + 30:
                for name, pid in pids.items():
                    if name not in exited and not alive(pid):
                        exited[name] = round(time.monotonic() - start, 2)
                        how[name] = exit_status(pid)
                time.sleep(0.005)
            if self.process.poll() is None:
                result["killed"] = True
                self.process.kill()
            result["exit_code"] = self.process.wait(timeout=10)
            result["stop_s"] = None if result["killed"] else time.monotonic() - start
            result["node_exit_s"] = exited  # a node missing here exited with the supervisor (or was killed by it)
            result["node_exit_status"] = how  # read while a zombie, before the supervisor reaped it (else unknown)
            result["nodes_left_after_stop"] = sorted(n for n, p in pids.items() if alive(p))
        else:
            result["exit_code"] = self.process.returncode
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the session this benchmark started
        except ProcessLookupError:
            pass
        self._log.close()
        return result


class Observer:
    """A node of this process (its own rclpy context) for lifecycle services, the graph state and the scene."""

    def __init__(self):
        import rclpy
        from lifecycle_msgs.srv import ChangeState, GetState
        from rclpy.executors import MultiThreadedExecutor
        from sensor_msgs.msg import PointCloud2
        from std_srvs.srv import Trigger

        from ros_helpers import Spinner

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("ros_graph_benchmark", context=self.context)
        self.get_state = {n: self.node.create_client(GetState, f"/{n}/get_state") for n in NODES}
        self.change_state = {n: self.node.create_client(ChangeState, f"/{n}/change_state") for n in NODES}
        self.graph_state = self.node.create_client(Trigger, "/lifecycle_manager/get_graph_state")
        self.surface = None
        self.node.create_subscription(PointCloud2, "/scene/surface", self._on_surface, 1)
        self.spinner = Spinner(MultiThreadedExecutor(num_threads=2, context=self.context))
        self.spinner.executor.add_node(self.node)
        self.spinner.__enter__()

    def _on_surface(self, cloud) -> None:
        self.surface = cloud

    def call(self, client, request, timeout_s: float):
        """The answer, or None when the service is not there or does not answer within ``timeout_s`` (as
        ros_helpers.call, polled every 2 ms so that transition times are not rounded to its 50 ms)."""
        from ros_helpers import wait_for

        if not client.wait_for_service(timeout_sec=timeout_s):
            return None
        future = client.call_async(request)
        if not wait_for(future.done, timeout_s, period_s=0.002):
            client.remove_pending_request(future)
            return None
        return future.result()

    def servers(self, service: str) -> int:
        """How many servers of ``service`` the ROS graph (DDS discovery) lists now."""
        return self.node.count_services(service)

    def state(self, name: str, timeout_s: float = 5.0) -> str:
        from lifecycle_msgs.srv import GetState

        answer = self.call(self.get_state[name], GetState.Request(), timeout_s)
        return "no answer" if answer is None else answer.current_state.label

    def transition(self, name: str, transition: str, timeout_s: float) -> tuple[bool | None, float]:
        """(success — None for no answer —, seconds) of one ChangeState call."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
        start = time.monotonic()
        answer = self.call(self.change_state[name], ChangeState.Request(transition=Transition(id=ids[transition])),
                           timeout_s)
        return (None if answer is None else bool(answer.success)), time.monotonic() - start

    def all_active(self, timeout_s: float = 5.0) -> tuple[bool, str]:
        from std_srvs.srv import Trigger

        answer = self.call(self.graph_state, Trigger.Request(), timeout_s)
        return (False, "no answer from /lifecycle_manager/get_graph_state") if answer is None else (
            answer.success, answer.message)

    def wait_all_active(self, timeout_s: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout_s
        ok, message = False, ""
        while time.monotonic() < deadline:
            ok, message = self.all_active()
            if ok:
                return ok, message
            time.sleep(0.5)
        return ok, message

    def close(self) -> None:
        import rclpy

        self.spinner.__exit__(None, None, None)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# ---------------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------------
def box_distance(point, box) -> float:
    """How far ``point`` lies outside the axis-aligned ``box`` = (lo, hi) (0 inside)."""
    lo, hi = box
    return sum(max(lo[i] - point[i], 0.0, point[i] - hi[i]) ** 2 for i in range(3)) ** 0.5


def corner_boxes(observer: Observer, timeout_s: float = 60.0) -> dict:
    """Two target boxes around objects in opposite corners of the scene: the object points of the scene
    cloud (above the table) grouped into connected clusters on a 4 mm grid in x, y; the two clusters of at
    least 30 points whose centres lie farthest apart, each boxed (+5 mm, from the table up). With fewer
    than two clusters, the two diagonal quadrants holding the most object points, whole."""
    import numpy as np
    from scipy import ndimage

    from diffgrasp_ros.nodes.conversions import cloud_to_array

    deadline = time.monotonic() + timeout_s
    while observer.surface is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if observer.surface is None:
        raise RuntimeError("no /scene/surface cloud")
    points = cloud_to_array(observer.surface, ("x", "y", "z"))
    objects = points[points[:, 2] > TABLE_HEIGHT_M + 0.01]
    cell = 0.004
    ij = np.clip((objects[:, :2] / cell).astype(int), 0, int(WORKSPACE_SIZE_M / cell))
    grid = np.zeros((int(WORKSPACE_SIZE_M / cell) + 1,) * 2, bool)
    grid[ij[:, 0], ij[:, 1]] = True
    labels, _ = ndimage.label(grid, structure=np.ones((3, 3)))
    point_labels = labels[ij[:, 0], ij[:, 1]]
    clusters = []
    for label in np.unique(point_labels):
        members = objects[point_labels == label]
        if len(members) >= 30:
            clusters.append({"points": int(len(members)), "centre": members.mean(axis=0).round(4).tolist(),
                             "lo": members.min(axis=0).round(4).tolist(), "hi": members.max(axis=0).round(4).tolist()})
    boxes, pair = {}, []
    clusters = sorted(clusters, key=lambda c: -c["points"])[:6]
    if len(clusters) >= 2:
        for c in clusters:  # every cluster is asked for; the farthest two are the opposite corners
            lo = np.maximum(np.subtract(c["lo"], 0.005), 0.0)
            hi = np.minimum(np.add(c["hi"], 0.005), WORKSPACE_SIZE_M)
            lo[2] = TABLE_HEIGHT_M
            c["name"] = f"cluster at ({c['centre'][0]:.3f}, {c['centre'][1]:.3f})"
            boxes[c["name"]] = {"box": [lo.round(4).tolist(), hi.round(4).tolist()],
                                "how": f"a cluster of {c['points']} object points, boxed (+5 mm)"}
        pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
        a, b = max(pairs, key=lambda p: np.linalg.norm(np.subtract(clusters[p[0]]["centre"][:2],
                                                                   clusters[p[1]]["centre"][:2])))
        pair = [clusters[a]["name"], clusters[b]["name"]]
    else:
        half = WORKSPACE_SIZE_M / 2
        count = {(qx, qy): int((((objects[:, 0] >= half) == qx) & ((objects[:, 1] >= half) == qy)).sum())
                 for qx in (False, True) for qy in (False, True)}
        pair = max([((False, False), (True, True)), ((False, True), (True, False))],
                   key=lambda d: min(count[d[0]], count[d[1]]))
        for q in pair:
            lo = [half if q[0] else 0.0, half if q[1] else 0.0, TABLE_HEIGHT_M]
            hi = [WORKSPACE_SIZE_M if q[0] else half, WORKSPACE_SIZE_M if q[1] else half, WORKSPACE_SIZE_M]
            name = f"quadrant x{'>' if q[0] else '<'}{half:.2f}, y{'>' if q[1] else '<'}{half:.2f}"
            boxes[name] = {"box": [lo, hi], "how": f"the whole quadrant ({count[q]} object points; fewer than two "
                                                   "clusters)"}
            pair.append(name)
    return {"cloud_points": int(len(points)), "object_points": int(len(objects)), "clusters": clusters,
            "boxes": boxes, "pair": pair}


def within_reach(point, box) -> bool:
    """The planner's test (TargetBox.contains with TARGET_REACH_M): inside the box grown 0.02 m on every side."""
    lo, hi = box
    return all(lo[i] - TARGET_REACH_M - 1e-6 <= point[i] <= hi[i] + TARGET_REACH_M + 1e-6 for i in range(3))


def run_corners(observer: Observer, workdir: Path, env: dict, timeout_s: float) -> dict:
    chosen = corner_boxes(observer)
    names = list(chosen["boxes"])
    targets = [None] + [chosen["boxes"][n]["box"] for n in names]
    clients = Clients(workdir, env, "corners", 1, len(targets), timeout_s, targets=targets)
    try:
        clients.wait_ready()
        clients.go()
        clients.wait(len(targets) * (timeout_s + 5) + 30)
    finally:
        clients.stop()
        clients.wait(10)
    records = clients.records()
    answers = {}
    for record in records:
        name = "no target" if record["target"] is None else names[targets.index(record["target"]) - 1]
        entry = {"outcome": outcome(record), "message": record.get("message", record.get("why", ""))[:300],
                 "latency_ms": record["latency_ms"], "grasps": len(record.get("grasps", [])),
                 "frames": record.get("frames", [])}
        grasps = record.get("grasps") or []
        if grasps:
            entry["best"] = [round(v, 4) for v in grasps[0]]
            if record["target"] is not None:
                entry["best_outside_box_m"] = round(box_distance(grasps[0], record["target"]), 4)
                entry["best_within_reach"] = within_reach(grasps[0], record["target"])
                entry["grasps_within_reach"] = sum(within_reach(g, record["target"]) for g in grasps)
        answers[name] = entry
    pair = chosen["pair"]
    bests = [answers.get(n, {}).get("best") for n in pair]
    separation = (None if None in bests else sum((a - b) ** 2 for a, b in zip(*bests)) ** 0.5)
    untargeted = answers.get("no target", {}).get("best")
    answered = [n for n in names if answers.get(n, {}).get("best")]
    distinct = len({tuple(answers[n]["best"]) for n in answered})
    centre = {n: [(a + b) / 2 for a, b in zip(*chosen["boxes"][n]["box"])] for n in names}
    answered_pairs = [(a, b) for i, a in enumerate(answered) for b in answered[i + 1:]]
    farthest_answered = max(answered_pairs, key=lambda p: sum((x - y) ** 2 for x, y in zip(centre[p[0]][:2],
                                                                                          centre[p[1]][:2])),
                            default=None)
    answered_pair = None
    if farthest_answered and list(farthest_answered) != pair:
        a, b = (answers[n]["best"] for n in farthest_answered)
        apart = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5
        answered_pair = {"pair": list(farthest_answered), "best_grasps_apart_m": apart,
                         "both_within_reach": all(answers[n]["best_within_reach"] for n in farthest_answered)}
    return {**chosen, "answers": answers, "best_grasps_apart_m": separation,
            "best_is_untargeted_best": [b is not None and b == untargeted for b in bests],
            "best_grasps_differ": separation is not None and separation > 0.01,
            "both_within_reach": all(answers.get(n, {}).get("best_within_reach") for n in pair),
            "farthest_answered_pair": answered_pair, "targets_answered": len(answered), "targets": len(names),
            "distinct_best_grasps": distinct,
            "all_answered_within_reach": all(answers[n].get("best_within_reach") for n in answered)}


def run_sequential(workdir: Path, env: dict, calls: int, timeout_s: float) -> dict:
    clients = Clients(workdir, env, "sequential", 1, calls, timeout_s)
    try:
        clients.wait_ready()
        start = clients.go()
        clients.wait(calls * (timeout_s + 5) + 30)
    finally:
        clients.stop()
        clients.wait(10)
    records = clients.records()
    return {**call_figures(records), "wall_s": time.monotonic() - start, "records": [slim(r) for r in records]}


def run_concurrent(workdir: Path, env: dict, count: int, calls: int, timeout_s: float) -> dict:
    clients = Clients(workdir, env, "concurrent", count, calls, timeout_s, synchronized=True)
    try:
        clients.wait_ready()
        start = clients.go()
        clients.wait(calls * count * (timeout_s + 5) + 60)
        wall = time.monotonic() - start
    finally:
        clients.stop()
        clients.wait(10)
    per_client = [call_figures([r for r in clients.lines(k) if "event" not in r]) for k in range(count)]
    records = clients.records()
    pooled = call_figures(records)
    return {"pooled": pooled, "per_client": per_client, "wall_s": wall,
            "calls_per_s": len(records) / wall if wall > 0 else None, "records": [slim(r) for r in records]}


def restart_deaf(graph: Graph, observer: Observer, name: str, timeout_s: float = 120.0) -> dict:
    """A node whose process runs but answers nothing (not even get_state): SIGKILL it, so the supervisor
    starts it again and the manager brings it up; how long that took."""
    old = node_pids(graph.process.pid).get(name)
    record = {"node": name, "pid": old, "at": time.monotonic()}
    if old is None:
        return {**record, "error": "no process"}
    os.kill(old, signal.SIGKILL)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        pid = node_pids(graph.process.pid).get(name)
        if pid not in (None, old) and observer.state(name, 2.0) == "active":
            return {**record, "active_again_s": time.monotonic() - record["at"]}
        time.sleep(0.2)
    return {**record, "error": f"not active again within {timeout_s:.0f} s"}


def run_cycling(graph: Graph, observer: Observer, workdir: Path, env: dict, cycles: int, cleanup_every: int,
                timeout_s: float, pause_s: float, transition_timeout_s: float = 30.0) -> dict:
    """Rounds of lifecycle transitions of every node while a client calls /plan_grasp. A node that stops
    answering (get_state and change_state unanswered for 20 s although its process runs: a deaf node) is
    recorded, killed so that the supervisor and the manager bring it back, and the cycling goes on."""
    callers = Clients(workdir, env, "cycling", 1, None, timeout_s)
    transitions, deaf = [], []
    try:
        callers.wait_ready()
        start = callers.go()
        for cycle in range(cycles):
            full = cleanup_every > 0 and (cycle + 1) % cleanup_every == 0
            sequence = ("deactivate", "cleanup", "configure", "activate") if full else ("deactivate", "activate")
            for name in NODES:
                for transition in sequence:
                    before = observer.state(name, 10.0)
                    if before == "no answer" and observer.state(name, 10.0) == "no answer":
                        print(f"  round {cycle + 1}: {name} answers nothing (deaf); killing it", flush=True)
                        deaf.append({"round": cycle + 1, "before": transition, **restart_deaf(graph, observer, name)})
                        break
                    t = time.monotonic()
                    success, seconds = observer.transition(name, transition, transition_timeout_s)
                    row = {"cycle": cycle, "node": name, "transition": transition, "success": success,
                           "s": seconds, "t_start": t, "t_end": t + seconds, "state_before": before}
                    if not success:
                        row["state_after"] = observer.state(name, 10.0)
                    transitions.append(row)
            print(f"  cycle {cycle + 1}/{cycles} ({'with cleanup/configure' if full else 'deactivate/activate'}): "
                  f"{sum(t['success'] is not True for t in transitions)} failed transitions, {len(deaf)} deaf "
                  "node(s) so far", flush=True)
            time.sleep(pause_s)  # calls can succeed between rounds
        last = time.monotonic()
        cycling_s = last - start
    finally:
        callers.stop()
        callers.wait(timeout_s + 15)
    during = callers.records()
    states = {name: observer.state(name, 10.0) for name in NODES}
    active, message = observer.wait_all_active(30.0)
    manager_before_recovery = (active, message)
    for name in NODES:
        if not active and observer.state(name, 10.0) == "no answer":
            print(f"  after the cycling: {name} answers nothing (deaf); killing it", flush=True)
            deaf.append({"round": "after", "before": "-", **restart_deaf(graph, observer, name)})
    if not active:
        active, message = observer.wait_all_active(60.0)
    # /plan_grasp after the cycling: a fresh client, until one call succeeds.
    after = Clients(workdir, env, "after_cycling", 1, None, timeout_s, pause_s=0.5, max_s=120.0)
    try:
        after.wait_ready()
        after_start = after.go()
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not any(r["answered"] and r["code"] == 1 for r in after.records()):
            time.sleep(0.2)
    finally:
        after.stop()
        after.wait(timeout_s + 15)
    after_records = after.records()
    first_ok = next((r for r in after_records if r["answered"] and r["code"] == 1), None)
    by_kind = {}
    for kind in ("deactivate", "activate", "cleanup", "configure"):
        rows = [t for t in transitions if t["transition"] == kind]
        if rows:
            answered = [1000 * t["s"] for t in rows if t["success"] is not None]
            by_kind[kind] = {"count": len(rows), "failed": sum(t["success"] is not True for t in rows),
                             "p50_ms": percentile(answered, 50), "max_ms": max(answered) if answered else None}
    configure_by_node = {n: percentile([1000 * t["s"] for t in transitions if t["node"] == n and
                                        t["transition"] == "configure" and t["success"] is not None], 50)
                         for n in NODES}
    # Calls not answered, or answered after more than 1.5 s with an error: the transitions around them.
    troubled = []
    for r in during:
        if r["answered"] and (r["code"] == 1 or r["latency_ms"] <= 1500):
            continue
        near = [f"{t['node']} {t['transition']} ({t['t_start'] - r['t_send']:+.2f} s)" for t in transitions
                if r["t_send"] - 1.0 <= t["t_start"] <= r["t_send"] + 1.0]
        troubled.append({"outcome": outcome(r), "latency_ms": r["latency_ms"], "t_send_s": r["t_send"] - start,
                         "transitions_within_1_s": near})
    return {"cycles": cycles, "cleanup_every": cleanup_every, "pause_s": pause_s, "cycling_s": cycling_s,
            "troubled_calls": troubled, "deaf_nodes": deaf,
            "transitions": len(transitions), "failed": [t for t in transitions if t["success"] is not True],
            "by_transition": by_kind, "configure_p50_ms_by_node": configure_by_node,
            "calls_during": call_figures(during),
            "states_after": states, "graph_state_after_cycling": list(manager_before_recovery),
            "graph_all_active_after": active, "graph_state_after": message,
            "plan_grasp_after": {"works": first_ok is not None,
                                 "s_to_first_success": None if first_ok is None else first_ok["t_done"] - after_start,
                                 "s_after_last_transition": None if first_ok is None else first_ok["t_done"] - last,
                                 "calls_until_success": len(after_records) if first_ok is None else
                                 after_records.index(first_ok) + 1,
                                 "outcomes": dict(Counter(outcome(r) for r in after_records))},
            "all_transitions": transitions, "records_during": [slim(r) for r in during]}


PROBE_TIMEOUT_S = 5.0
WATCHED_SERVICES = {"grasp_server": "/grasp_server/generate_grasps", "grasp_executor": "/plan_grasp",
                    "lifecycle_manager": "/lifecycle_manager/get_graph_state"}


def run_kill(graph: Graph, observer: Observer, workdir: Path, env: dict, name: str, timeout_s: float,
             restore_timeout_s: float = 180.0) -> dict:
    """SIGKILL one node process while two clients keep calling /plan_grasp: 0.15 s after one of them has
    sent a call (so that call is in the graph), while the other samples the outage."""
    if not observer.wait_all_active(90.0)[0]:
        return {"node": name, "error": "the graph was not all active before the kill: " + observer.all_active()[1]}
    old = node_pids(graph.process.pid).get(name)
    if old is None:
        return {"node": name, "error": f"no process of {name} under the supervisor ({graph.process.pid})"}
    callers = Clients(workdir, env, f"kill_{name}", 2, None, timeout_s, max_s=restore_timeout_s + 4 * timeout_s + 120)
    # A third client that gives up on a call after PROBE_TIMEOUT_S, so that the time until /plan_grasp works
    # again is not hidden behind calls the other two wait out.
    prober = Clients(workdir, env, f"probe_{name}", 1, None, PROBE_TIMEOUT_S,
                     max_s=restore_timeout_s + 4 * timeout_s + 120)
    watched = WATCHED_SERVICES.get(name, f"/{name}/get_state")
    result = {"node": name, "old_pid": old, "watched_service": watched}
    t_kill = t_active = t_respawn = new = None
    listing: list[tuple[float, int]] = []  # (time, servers of the watched service) at each change
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            count = observer.servers(watched)
            if not listing or listing[-1][1] != count:
                listing.append((time.monotonic(), count))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        callers.wait_ready()
        prober.wait_ready()
        callers.go()
        prober.go()
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not any(r["answered"] and r["code"] == 1 for r in callers.records()):
            time.sleep(0.05)
        if not any(r["answered"] and r["code"] == 1 for r in callers.records()):
            result["warning"] = "no call succeeded before the kill"
        watcher.start()
        done = len(callers.lines(0))
        deadline = time.monotonic() + timeout_s + 5
        while len(callers.lines(0)) == done and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.15)  # client 0 has sent its next call; the executor has passed it on
        t_kill = time.monotonic()
        os.kill(old, signal.SIGKILL)
        end = t_kill + restore_timeout_s
        while time.monotonic() < end:
            if new is None:
                pid = node_pids(graph.process.pid).get(name)
                if pid is not None and pid != old:
                    new, t_respawn = pid, time.monotonic()
            if new is not None:
                up = (observer.all_active(2.0)[0] if name == "lifecycle_manager"
                      else observer.state(name, 2.0) == "active")
                if up:
                    t_active = time.monotonic()
                    break
            time.sleep(0.05)
        # Until a call sent after the kill has succeeded, and one sent after the node was active again.
        mark = t_active if t_active is not None else t_kill

        def succeeded_since(t: float) -> bool:
            return any(r["answered"] and r["code"] == 1 and r["t_send"] >= t for r in prober.records())

        while time.monotonic() < end and not (succeeded_since(t_kill) and succeeded_since(mark)):
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        watching.set()
        callers.stop()
        prober.stop()
        callers.wait(timeout_s + 15)
        prober.wait(PROBE_TIMEOUT_S + 15)
    if t_kill is None:
        return {**result, "error": "no kill: " + result.get("warning", "")}
    records = sorted(callers.records(), key=lambda r: r["t_send"])
    in_flight = [r for r in records if r["t_send"] <= t_kill <= r["t_done"]]
    outage_end = t_active if t_active is not None else t_kill + restore_timeout_s
    during = [r for r in records if t_kill < r["t_send"] <= outage_end]
    probes = sorted(prober.records(), key=lambda r: r["t_send"])
    after_kill = [r for r in probes if r["answered"] and r["code"] == 1 and r["t_send"] >= t_kill]
    after_active = [r for r in probes if r["answered"] and r["code"] == 1 and r["t_send"] >= mark]
    result["probe_outcomes_after_kill"] = dict(Counter(outcome(r) for r in probes if r["t_send"] >= t_kill
                                                       and (not after_kill or r["t_done"] <= after_kill[0]["t_done"])))
    failures = [r for r in in_flight + during if not (r["answered"] and r["code"] == 1)]
    messages = Counter("SUCCESS" if r["answered"] and r["code"] == 1 else
                       f"{outcome(r)}: " + re.sub(r"\d+(\.\d+)?", "#", r.get("message", r.get("why", "")))[:200]
                       for r in in_flight + during)
    result.update(
        new_pid=new, respawn_s=None if t_respawn is None else t_respawn - t_kill,
        active_s=None if t_active is None else t_active - t_kill,
        first_success_s=(after_kill[0]["t_done"] - t_kill) if after_kill else None,
        success_after_active_s=(after_active[0]["t_done"] - t_kill) if after_active else None,
        service_listing=[(round(t - t_kill, 2), count) for t, count in listing],
        in_flight=[{"outcome": outcome(r), "sent_s_before_kill": t_kill - r["t_send"],
                    "answer_s_after_kill": r["t_done"] - t_kill, "latency_ms": r["latency_ms"],
                    "message": r.get("message", r.get("why", ""))[:300]} for r in in_flight],
        during=call_figures(during),
        failed_answers_over_1_5_s=sum(r["answered"] and r["latency_ms"] > 1500 for r in failures),
        unanswered=sum(not r["answered"] for r in in_flight + during),
        slowest_failure_ms=max((r["latency_ms"] for r in failures), default=None),
        messages=dict(messages.most_common(12)),
        records=[{**slim(r), "t_send_after_kill_s": r["t_send"] - t_kill} for r in records])
    return result


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------
def report(results: dict, context: dict, args) -> str:
    from diffgrasp_ros.evaluation.provenance import provenance_markdown

    lines = ["# The ROS graph under load, a killed node and lifecycle cycling "
             "(`diffgrasp up --camera sim --processes`)",
             "", *provenance_markdown(context),
             f"- graph: `{' '.join(results['graph_command'][2:])}` (one process per node, the lifecycle manager, "
             f"a supervisor); ROS_DOMAIN_ID {results['domain']}, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; "
             "every /plan_grasp client a process of its own",
             f"- first /plan_grasp success {fmt(results.get('served_after_s'), 1)} s after the start; "
             f"per-call client timeout {args.call_timeout:.0f} s; {args.runs} run(s) of the latency parts, "
             "medians over runs", ""]
    corners = results.get("corners")
    if corners:
        lines += ["## Targets in opposite corners", "",
                  f"Scene cloud: {corners['cloud_points']} points, {corners['object_points']} above the table "
                  f"(+1 cm), in {len(corners['clusters'])} clusters of 30 points or more: "
                  + "; ".join(f"{c['points']} pts at ({c['centre'][0]:.3f}, {c['centre'][1]:.3f})"
                              for c in corners["clusters"]) + ".", "",
                  "| request | target box [m] (lo → hi) | outcome | grasps | best grasp [m] | best outside box [m] "
                  "| within 0.02 m | grasps within 0.02 m | ms |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, answer in corners["answers"].items():
            box = corners["boxes"].get(name, {}).get("box")
            lines.append(f"| {name} | {'none' if box is None else f'{box[0]} → {box[1]}'} | {answer['outcome']} | "
                         f"{answer['grasps']} | {answer.get('best', '-')} | {answer.get('best_outside_box_m', '-')} | "
                         f"{ {True: 'yes', False: 'NO'}.get(answer.get('best_within_reach'), '-')} | "
                         f"{answer.get('grasps_within_reach', '-')} | {answer['latency_ms']:.0f} |")
        lines += ["", "Boxes: " + "; ".join(f"{n}: {b['how']}" for n, b in corners["boxes"].items()) + ". "
                  "\"within 0.02 m\": inside the box grown by 0.02 m on every side (the planner's test, "
                  "TargetBox.contains with TARGET_REACH_M); \"outside box\": Euclidean distance to the box.",
                  f"Opposite corners (the two clusters farthest apart): {' and '.join(corners['pair'])}. Their best "
                  f"grasps are {fmt(corners['best_grasps_apart_m'], 3)} m apart (differ: "
                  f"{'yes' if corners['best_grasps_differ'] else 'NO'}); both within 0.02 m of their box: "
                  f"{'yes' if corners['both_within_reach'] else 'NO'}; equal to the untargeted best: "
                  f"{corners['best_is_untargeted_best']}. All targets: {corners['targets_answered']} of "
                  f"{corners['targets']} answered with grasps, {corners['distinct_best_grasps']} distinct best grasps, "
                  f"every answered best within 0.02 m of its box: "
                  f"{'yes' if corners['all_answered_within_reach'] else 'NO'}."]
        other = corners.get("farthest_answered_pair")
        if other:
            lines.append(f"The two answered targets farthest apart, {' and '.join(other['pair'])}: best grasps "
                         f"{other['best_grasps_apart_m']:.3f} m apart, both within 0.02 m of their box: "
                         f"{'yes' if other['both_within_reach'] else 'NO'}.")
        lines.append("")
    seq = results.get("sequential")
    if seq:
        lines += [f"## Sequential /plan_grasp ({args.calls} calls, one client)", "",
                  "| run | successes | outcomes | p50 [ms] | p95 [ms] | max [ms] |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for k, run in enumerate(seq["runs"]):
            lines.append(f"| {k + 1} | {run['successes']} / {run['calls']} | {outcomes_text(run['outcomes'])} | "
                         f"{fmt(run['p50_ms'])} | {fmt(run['p95_ms'])} | {fmt(run['max_ms'])} |")
        lines += [f"| median | | | {fmt(seq['p50_ms'])} | {fmt(seq['p95_ms'])} | {fmt(seq['max_ms'])} |", ""]
    con = results.get("concurrent")
    if con:
        lines += [f"## {args.clients} concurrent clients × {args.client_calls} calls", "",
                  "| run | client | successes | outcomes | p50 [ms] | p95 [ms] | max [ms] |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for k, run in enumerate(con["runs"]):
            for c, fig in enumerate(run["per_client"]):
                lines.append(f"| {k + 1} | {c + 1} | {fig['successes']} / {fig['calls']} | "
                             f"{outcomes_text(fig['outcomes'])} | {fmt(fig['p50_ms'])} | {fmt(fig['p95_ms'])} | "
                             f"{fmt(fig['max_ms'])} |")
            p = run["pooled"]
            lines.append(f"| {k + 1} | pooled | {p['successes']} / {p['calls']} | {outcomes_text(p['outcomes'])} | "
                         f"{fmt(p['p50_ms'])} | {fmt(p['p95_ms'])} | {fmt(p['max_ms'])} |")
        lines += [f"| median | pooled | | | {fmt(con['p50_ms'])} | {fmt(con['p95_ms'])} | {fmt(con['max_ms'])} |", "",
                  f"Throughput (median over runs): {fmt(con['calls_per_s'], 2)} calls/s with {args.clients} clients "
                  f"against {fmt(seq and seq.get('calls_per_s'), 2)} calls/s sequentially.", ""]
    kills = results.get("kills")
    if kills:
        lines += ["## SIGKILL of one node process (two clients calling throughout)", "",
                  "Seconds after the SIGKILL: the supervisor has started the node again (a new pid under it), the node "
                  "is active again (its get_state; the manager's graph state for the manager), the first success of "
                  "a call sent after the kill, of a call sent after the node was active again (both from a third "
                  f"client that gives up on a call after {PROBE_TIMEOUT_S:.0f} s). In flight, outage, unanswered, "
                  f"failed answers: the two clients that wait up to {args.call_timeout:.0f} s. Servers listed: how "
                  "many servers of the node's service (the grasp server's generate_grasps, the executor's /plan_grasp, "
                  "else get_state) DDS discovery listed, at each change (s after the kill: count). The outage: calls "
                  "sent between the kill and the node active again.", "",
                  "| node | run | restarted | active again | first success | success sent after active "
                  "| in flight at the kill: outcome (answered after [s]) | calls during the outage "
                  "| unanswered | failed answers > 1.5 s | slowest failed answer [ms] | servers listed |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for k in kills:
            if "error" in k:
                lines.append(f"| {k['node']} | {k.get('run', 1)} | {k['error']} | | | | | | | | | |")
                continue
            flight = "; ".join(f"{f['outcome']} ({f['answer_s_after_kill']:.1f})" for f in k["in_flight"]) or "none"
            d = k["during"]
            lines.append(f"| {k['node']} | {k.get('run', 1)} | {fmt(k['respawn_s'], 1)} | {fmt(k['active_s'], 1)} | "
                         f"{fmt(k['first_success_s'], 1)} | {fmt(k['success_after_active_s'], 1)} | {flight} | "
                         f"{d['calls']}: {outcomes_text(d['outcomes'])} | {k['unanswered']} | "
                         f"{k['failed_answers_over_1_5_s']} | {fmt(k['slowest_failure_ms'])} | "
                         f"{', '.join(f'{t:+.1f}: {c}' for t, c in k['service_listing'])} |")
        summary = results.get("kill_summary") or {}
        for name, row in summary.items():
            lines.append(f"\n- {name}, median over {row['runs']} kill(s): restarted {fmt(row['respawn_s'], 1)} s, "
                         f"active again {fmt(row['active_s'], 1)} s, /plan_grasp succeeds again "
                         f"{fmt(row['first_success_s'], 1)} s after the kill")
        for k in kills:
            if "error" not in k:
                slow = k["failed_answers_over_1_5_s"] + k["unanswered"]
                lines.append(f"\n- {k['node']} (run {k.get('run', 1)}): every failed call in flight or during the "
                             f"outage answered with an error within 1.5 s: " + ("yes" if not slow else
                             f"NO ({k['failed_answers_over_1_5_s']} error answer(s) after more than 1.5 s, slowest "
                             f"{fmt(k['slowest_failure_ms'])} ms; {k['unanswered']} unanswered)"))
        lines += ["", "Messages of the calls in flight and during the outage:", ""]
        for k in kills:
            for message, count in (k.get("messages") or {}).items():
                lines.append(f"- {k['node']} (run {k.get('run', 1)}), {count}×: {message}")
        lines.append("")
    cyc = results.get("cycling")
    if cyc:
        lines += [f"## Lifecycle cycling ({cyc['cycles']} rounds over the 5 nodes through their change_state; "
                  f"every round number divisible by {cyc['cleanup_every']}: deactivate → cleanup → configure → "
                  f"activate, else deactivate → activate; {cyc['pause_s']:.1f} s pause after each round; one client "
                  "calling /plan_grasp throughout)", "",
                  "| transition | count | failed | p50 [ms] | max [ms] |", "| --- | --- | --- | --- | --- |"]
        for kind, row in cyc["by_transition"].items():
            lines.append(f"| {kind} | {row['count']} | {row['failed']} | {fmt(row['p50_ms'])} | {fmt(row['max_ms'])} |")
        configure = ", ".join(f"{n} {fmt(v)}" for n, v in cyc["configure_p50_ms_by_node"].items() if v is not None)
        calls = cyc["calls_during"]
        after = cyc["plan_grasp_after"]
        lines += ["", f"- configure p50 per node [ms]: {configure or 'n/a'}",
                  f"- {cyc['transitions']} transitions in {cyc['cycling_s']:.0f} s, {len(cyc['failed'])} failed"]
        for t in cyc["failed"][:20]:
            lines.append(f"  - round {t['cycle'] + 1}, {t['node']} {t['transition']}: "
                         f"{'no answer' if t['success'] is None else 'refused'} (state before {t['state_before']}, "
                         f"after {t.get('state_after')})")
        for t in cyc["troubled_calls"]:
            lines.append(f"- a call sent {t['t_send_s']:.1f} s into the cycling: {t['outcome']} after "
                         f"{t['latency_ms']:.0f} ms; transitions started within 1 s of its sending: "
                         f"{', '.join(t['transitions_within_1_s']) or 'none'}")
        for d in cyc["deaf_nodes"]:
            lines.append(f"- **{d['node']} stopped answering** (round {d['round']}, before its {d['before']}: "
                         "get_state unanswered twice in 10 s, its process still running, not restarted by the "
                         "supervisor); killed by this benchmark: "
                         + (f"active again {d['active_again_s']:.1f} s later" if "active_again_s" in d
                            else d.get("error", "")))
        lines += [f"- calls during the cycling: {calls['successes']} / {calls['calls']} succeeded; "
                  f"{outcomes_text(calls['outcomes'])}; p50 {fmt(calls['p50_ms'])} ms, max {fmt(calls['max_ms'])} ms",
                  f"- after the cycling: node states (their get_state) {cyc['states_after']}; the manager (30 s "
                  f"later): all active {'yes' if cyc['graph_state_after_cycling'][0] else 'NO'} "
                  f"({cyc['graph_state_after_cycling'][1]})"
                  + ("" if not cyc["deaf_nodes"] else f"; after the deaf nodes were killed: all active "
                     f"{'yes' if cyc['graph_all_active_after'] else 'NO'} ({cyc['graph_state_after']})"),
                  f"- /plan_grasp after the cycling (a new client): {'works' if after['works'] else 'DOES NOT WORK'}, "
                  f"first success {fmt(after['s_to_first_success'], 1)} s after its first call "
                  f"({after['calls_until_success']} call(s); {outcomes_text(after['outcomes'])})", ""]
    stop = results.get("stop")
    if stop:
        lines += ["## Stop", "",
                  f"SIGTERM to the supervisor: exit after {fmt(stop.get('stop_s'), 2)} s, exit code "
                  f"{stop.get('exit_code')}{' (KILLED after 30 s)' if stop.get('killed') else ''}; node processes "
                  f"gone after [s]: {stop.get('node_exit_s')}, how (when seen before the supervisor reaped them): "
                  f"{stop.get('node_exit_status')} (the supervisor SIGKILLs those still running 5 s after its "
                  f"SIGTERM); node processes "
                  f"left: {stop.get('nodes_left_after_stop') or 'none'}; tracebacks in the graph's output: "
                  f"{results.get('tracebacks', 0)} ({results.get('traceback_errors') or 'none'}); supervisor "
                  f"restarts logged: {results.get('restarts_logged')}", ""]
    if results.get("errors"):
        lines += ["## Errors", ""] + [f"- {e}" for e in results["errors"]] + [""]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        return client_main(json.loads(sys.argv[2]))
    from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results, report_paths

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="sequential calls per run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--client-calls", type=int, default=10, help="calls per concurrent client")
    parser.add_argument("--runs", type=int, default=3, help="runs of the sequential and concurrent parts")
    parser.add_argument("--cycles", type=int, default=20, help="lifecycle rounds over the nodes")
    parser.add_argument("--cleanup-every", type=int, default=5, help="every N-th round also cleans up and configures")
    parser.add_argument("--cycle-pause-s", type=float, default=1.0, help="pause after each round [s]")
    parser.add_argument("--kill-runs", type=int, default=3, help="SIGKILLs of the grasp server")
    parser.add_argument("--kill-all", action="store_true", help="also kill every other node and the manager once")
    parser.add_argument("--call-timeout", type=float, default=30.0, help="a client's wait for one answer [s]")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: corners, sequential, concurrent, "
                                                   "cycling, kill")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 sequential calls, 4 x 3 concurrent, "
                                                             "3 rounds (cleanup in the 3rd), 1 kill, 1 run")
    parser.add_argument("--domain", type=int, default=200 + os.getpid() % 30, help="ROS_DOMAIN_ID")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ros_graph")
    add_provenance_arguments(parser)
    parser.add_argument("--log", type=Path, default=None, help="keep the graph's output here")
    parser.add_argument("--up-args", default="", help="more `diffgrasp up` arguments (e.g. \"--ros-args -p ...\")")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.client_calls, args.runs, args.cycles, args.cleanup_every, args.kill_runs = 8, 3, 1, 3, 3, 1
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    os.environ["ROS_DOMAIN_ID"] = str(args.domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "test"))  # ros_helpers: wait/call helpers shared with the ROS tests
    from ros_idle_and_stop import wait_until_served

    CODE_NAMES.update(code_names())
    context = prepare_results(args, *report_paths(args.out))
    env = dict(os.environ)
    workdir = Path(tempfile.mkdtemp(prefix="ros_graph_"))
    log_path = args.log or workdir / "up.log"
    started = time.monotonic()
    results: dict = {"domain": args.domain, "errors": []}
    graph = Graph(env, log_path, shlex.split(args.up_args))
    results["graph_command"] = graph.command
    observer = None
    try:
        print(f"graph: {shlex.join(graph.command[2:])} (ROS_DOMAIN_ID {args.domain}); waiting for /plan_grasp",
              flush=True)
        wait_until_served(str(args.domain), 240.0)  # a client process of its own, until a call succeeds
        results["served_after_s"] = time.monotonic() - graph.started
        print(f"  first success {results['served_after_s']:.1f} s after the start", flush=True)
        observer = Observer()
        active, message = observer.wait_all_active(60.0)
        print(f"  manager: all active {active} ({message})", flush=True)
        print("  node processes: " + json.dumps(node_pids(graph.process.pid)), flush=True)

        def part(name, fn):
            if name in skip:
                return None
            t = time.monotonic()
            try:
                value = fn()
            except Exception as error:  # a part that fails is reported; the others still run
                results["errors"].append(f"{name}: {type(error).__name__}: {error}")
                print(f"  {name} FAILED: {error}", flush=True)
                return None
            print(f"  ({name}: {time.monotonic() - t:.0f} s)", flush=True)
            return value

        if "corners" not in skip:
            print("targets in opposite corners", flush=True)
        results["corners"] = part("corners", lambda: run_corners(observer, workdir, env, args.call_timeout))
        if results["corners"]:
            c = results["corners"]
            print(f"  boxes {json.dumps({n: b['box'] for n, b in c['boxes'].items()})}", flush=True)
            for n, a in c["answers"].items():
                print(f"  {n}: {a['outcome']}, {a['grasps']} grasps, best {a.get('best')}, outside box "
                      f"{a.get('best_outside_box_m', '-')} m, grasps within 0.02 m {a.get('grasps_within_reach', '-')}"
                      f", {a['latency_ms']:.0f} ms — {a['message'][:160]}", flush=True)
            print(f"  opposite corners {c['pair']}: best grasps {fmt(c['best_grasps_apart_m'], 3)} m apart; all "
                  f"targets: {c['targets_answered']}/{c['targets']} answered, {c['distinct_best_grasps']} distinct "
                  f"bests, all within reach {c['all_answered_within_reach']}; farthest answered pair "
                  f"{c['farthest_answered_pair']}", flush=True)

        def latency_runs(name, fn):
            runs = []
            for k in range(args.runs):
                run = part(name, fn)
                if run is None:
                    break
                runs.append(run)
                fig = run.get("pooled", run)
                print(f"  run {k + 1}: {fig['successes']}/{fig['calls']} ok, {outcomes_text(fig['outcomes'])}; p50 "
                      f"{fmt(fig['p50_ms'])} / p95 {fmt(fig['p95_ms'])} / max {fmt(fig['max_ms'])} ms", flush=True)
                for c, client in enumerate(run.get("per_client", [])):
                    print(f"    client {c + 1}: {client['successes']}/{client['calls']} ok, p50 {fmt(client['p50_ms'])}"
                          f" / p95 {fmt(client['p95_ms'])} / max {fmt(client['max_ms'])} ms", flush=True)
            if not runs:
                return None
            pooled = [r.get("pooled", r) for r in runs]
            summary = {key: median_of(pooled, key) for key in ("p50_ms", "p95_ms", "max_ms")}
            summary["calls_per_s"] = statistics.median(
                r["calls_per_s"] if "calls_per_s" in r else r["calls"] / r["wall_s"] for r in runs)
            return {**summary, "runs": runs}

        if "sequential" not in skip:
            print(f"sequential: {args.calls} calls x {args.runs} run(s)", flush=True)
        results["sequential"] = latency_runs("sequential", lambda: run_sequential(workdir, env, args.calls,
                                                                                   args.call_timeout))
        if "concurrent" not in skip:
            print(f"concurrent: {args.clients} clients x {args.client_calls} calls x {args.runs} run(s)", flush=True)
        results["concurrent"] = latency_runs("concurrent", lambda: run_concurrent(
            workdir, env, args.clients, args.client_calls, args.call_timeout))

        kills = []
        if "kill" not in skip:
            order = [("grasp_server", k + 1) for k in range(args.kill_runs)]
            if args.kill_all:
                order += [(n, 1) for n in (*NODES, "lifecycle_manager") if n != "grasp_server"]
            for name, run in order:
                print(f"kill: SIGKILL {name} (run {run})", flush=True)
                row = part("kill", lambda: run_kill(graph, observer, workdir, env, name, args.call_timeout))
                if row is None:
                    continue
                row["run"] = run
                kills.append(row)
                if "error" in row:
                    print(f"  {row['error']}", flush=True)
                    continue
                print(f"  restarted {fmt(row['respawn_s'], 1)} s, active {fmt(row['active_s'], 1)} s, first success "
                      f"{fmt(row['first_success_s'], 1)} s, success of a call sent after active "
                      f"{fmt(row['success_after_active_s'], 1)} s after the kill; {row['watched_service']} servers "
                      f"listed: {row['service_listing']}", flush=True)
                for f in row["in_flight"]:
                    print(f"  in flight (sent {f['sent_s_before_kill']:.2f} s before): {f['outcome']} "
                          f"{f['answer_s_after_kill']:.1f} s after the kill — "
                          f"{f['message'][:200]}", flush=True)
                print(f"  during the outage: {row['during']['calls']} calls, "
                      f"{outcomes_text(row['during']['outcomes'])};"
                      f" unanswered {row['unanswered']}, failed answers > 1.5 s {row['failed_answers_over_1_5_s']}, "
                      f"slowest failed answer {fmt(row['slowest_failure_ms'])} ms", flush=True)
                for message, count in row["messages"].items():
                    print(f"    {count}x {message}", flush=True)
        results["kills"] = kills
        summary = {}
        for name in dict.fromkeys(k["node"] for k in kills if "error" not in k):
            rows = [k for k in kills if k["node"] == name and "error" not in k]
            summary[name] = {"runs": len(rows), **{key: median_of(rows, key) for key in
                                                   ("respawn_s", "active_s", "first_success_s")}}
        results["kill_summary"] = summary

        if "cycling" not in skip:
            print(f"lifecycle cycling: {args.cycles} rounds", flush=True)
        cyc = results["cycling"] = part("cycling", lambda: run_cycling(graph, observer, workdir, env, args.cycles,
                                                                       args.cleanup_every, args.call_timeout,
                                                                       args.cycle_pause_s))
        if cyc:
            for kind, row in cyc["by_transition"].items():
                print(f"  {kind}: {row['count']} ({row['failed']} failed), p50 {fmt(row['p50_ms'])} ms, max "
                      f"{fmt(row['max_ms'])} ms", flush=True)
            for t in cyc["troubled_calls"]:
                print(f"  call at {t['t_send_s']:.1f} s: {t['outcome']} after {t['latency_ms']:.0f} ms; transitions "
                      f"near it: {t['transitions_within_1_s']}", flush=True)
            for t in cyc["failed"]:
                print(f"  FAILED round {t['cycle'] + 1} {t['node']} {t['transition']}: success={t['success']}, "
                      f"state before {t['state_before']}, after {t.get('state_after')}", flush=True)
            print(f"  calls during: {cyc['calls_during']['successes']}/{cyc['calls_during']['calls']} ok, "
                  f"{outcomes_text(cyc['calls_during']['outcomes'])}; after: states {cyc['states_after']}, "
                  f"/plan_grasp {cyc['plan_grasp_after']}", flush=True)
            for d in cyc["deaf_nodes"]:
                print(f"  DEAF {d['node']} (round {d['round']}, before its {d['before']}): {d}", flush=True)
    except Exception as error:
        results["errors"].append(f"{type(error).__name__}: {error}")
        print(f"FAILED: {error}\n--- graph output (tail) ---\n{graph.output()[-4000:]}", flush=True)
    finally:
        if observer is not None:
            observer.close()
        results["stop"] = graph.stop()
        output = log_path.read_text(errors="replace")
        results["tracebacks"] = output.count("Traceback")
        results["traceback_errors"] = dict(Counter(re.findall(r"^(\w[\w.]*(?:Error|Exception|Handle)\b.*)$", output,
                                                              re.MULTILINE)))
        results["restarts_logged"] = len(re.findall(r"exited with code", output))
        results["total_s"] = time.monotonic() - started
    print(f"stop: {json.dumps(results['stop'])}; tracebacks in the graph's output: {results['tracebacks']}; "
          f"total {results['total_s']:.0f} s", flush=True)
    text = report(results, context, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"context": context, "settings": vars(args) | {
        "out": str(args.out), "log": str(args.log)}, "results": results}, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(text)
    print(text)
    if results["errors"]:
        print(f"client files and logs kept in {workdir}", flush=True)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)  # (the graph's output is kept with --log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
