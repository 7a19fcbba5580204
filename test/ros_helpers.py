"""Shared set-up for the tests that run real rclpy nodes."""
import os
import threading
import time

# Keep DDS on this machine and away from other test runs.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def wait_for(predicate, timeout_s: float = 10.0, period_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return predicate()


class Spinner:
    """A multi-threaded executor spinning in a background thread; joined before shutdown."""

    def __init__(self, executor):
        self.executor = executor
        self.thread = threading.Thread(target=executor.spin, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.executor.shutdown()
        self.thread.join(timeout=10.0)


def call(client, request, timeout_s: float = 15.0):
    """Call a service from a thread that is not spinning; returns the response (or raises)."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError(f"service {client.srv_name} not available")
    future = client.call_async(request)
    if not wait_for(future.done, timeout_s):
        raise TimeoutError(f"no answer from {client.srv_name}")
    return future.result()


def terminate(process, timeout_s: float):
    """SIGTERM (what systemd and `docker stop` send) to a subprocess: its exit code, or None (then killed)
    when it has not exited within ``timeout_s``."""
    import signal
    import subprocess

    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def make_node(node_class, **parameters):
    """A node of ``node_class`` with these parameter overrides."""
    from rclpy.parameter import Parameter

    return node_class(parameter_overrides=[Parameter(name, value=value) for name, value in parameters.items()])


def box_object(object_id, frame, lo, hi):
    """A moveit_msgs/CollisionObject box from ``lo`` to ``hi`` in ``frame``."""
    import numpy as np
    from geometry_msgs.msg import Pose
    from moveit_msgs.msg import CollisionObject
    from shape_msgs.msg import SolidPrimitive

    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    obj = CollisionObject(id=object_id)
    obj.header.frame_id = frame
    obj.pose.orientation.w = 1.0
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in (lo + hi) / 2)
    pose.orientation.w = 1.0
    obj.primitives = [SolidPrimitive(type=SolidPrimitive.BOX, dimensions=[float(v) for v in hi - lo])]
    obj.primitive_poses = [pose]
    return obj
