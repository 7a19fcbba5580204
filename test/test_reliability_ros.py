"""Faults the nodes must live through, with real rclpy: a RealSense that stops delivering, is unplugged or
fails to start (a fake pyrealsense2, ``benchmarks/reliability_ros.FakeRealSense``), a recording that ends,
and corrupt model weights at configure (issue 20, item 1; the soak and the graph-level runs are
``benchmarks/reliability_ros.py``)."""
import shutil
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from moveit_msgs.msg import MoveItErrorCodes  # noqa: E402
from moveit_msgs.srv import GraspPlanning  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import Spinner, call, wait_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reliability_ros import CaptureRig, FakeRealSense, corrupt_model_copy, write_recording  # noqa: E402

OK, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
# Short timeouts and reopen delays, so that a fault and its recovery take seconds.
FAST = {"source": "realsense", "rate_hz": 20.0, "realsense.width": 64, "realsense.height": 48,
        "realsense.timeout_ms": 300, "reopen_initial_s": 0.2, "reopen_max_s": 0.8}


@pytest.fixture()
def fake():
    camera = FakeRealSense()
    with camera.installed():
        yield camera


@pytest.fixture()
def rig(fake):
    capture = CaptureRig(FAST, probe_period_s=0.1, check_period_s=0.2)
    yield capture
    capture.close()


def frames_again(rig, since: float, timeout_s: float = 10.0) -> float | None:
    first = rig.wait_frames(3, since, timeout_s)
    return None if first is None else first - since


def slowest_get_state_ms(rig, t0: float, at_least: int = 3) -> float:
    """The slowest get_state answer among the probes started since ``t0``, after at least ``at_least`` of
    them (a loaded machine may take longer than the test's own sleeps to make them)."""
    wait_for(lambda: len(rig.probes_between(t0, time.monotonic())) >= at_least, 15.0)
    probes = rig.probes_between(t0, time.monotonic())
    assert len(probes) >= at_least and all(p["state_ms"] is not None for p in probes), probes[-3:]
    return max(p["state_ms"] for p in probes)


def test_a_realsense_that_stops_delivering_is_reported_reopened_and_recovers(rig, fake):
    assert rig.wait_frames(3, 0.0, 60.0) is not None, rig.node.last_error
    for stall, said in (("raise", "Frame didn't arrive within 300"), ("timeout", "no depth frame from the RealSense")):
        t0 = time.monotonic()
        rig.node.last_error = ""
        fake.stall = stall
        assert wait_for(lambda: said in rig.node.last_error, 5.0), rig.node.last_error
        assert "camera lost" in rig.node.last_error
        time.sleep(1.5)
        success, status = rig.node.status()
        assert not success and "camera lost" in status and "reopen" in status
        # Reads that block for their timeout never hold the executor: lifecycle services stay answered.
        assert slowest_get_state_ms(rig, t0) < 1000.0
        assert rig.node.active and fake.counts["start"] >= 2  # closed and opened again meanwhile
        t1 = time.monotonic()
        fake.stall = None
        assert frames_again(rig, t1) is not None, rig.node.last_error
        assert rig.node.status()[0] and "recovered" in rig.node.status()[1]


def test_an_unplugged_realsense_is_retried_with_a_bounded_backoff_until_it_is_back(rig, fake):
    assert rig.wait_frames(3, 0.0, 60.0) is not None, rig.node.last_error
    t0 = time.monotonic()
    fake.unplug()
    assert wait_for(lambda: "no RealSense device is connected" in rig.node.last_error, 10.0), rig.node.last_error
    assert "camera still lost" in rig.node.last_error
    time.sleep(3.0)
    assert rig.node._reopen_delay_s == pytest.approx(FAST["reopen_max_s"])  # doubled up to its bound
    assert rig.node._reopen_attempts <= 8  # 0.2 + 0.4 + 0.8 + 0.8 ... s apart, not every tick
    assert rig.frames_between(t0 + 0.5, time.monotonic()) == 0 and rig.node.active
    assert slowest_get_state_ms(rig, t0) < 1000.0
    # Plugged in but busy: start() fails with the SDK's reason, then works.
    fake.start_error = "xioctl(VIDIOC_S_FMT) failed, errno=16 Last Error: Device or resource busy"
    fake.plug()
    assert wait_for(lambda: "Device or resource busy" in rig.node.last_error, 5.0), rig.node.last_error
    t1 = time.monotonic()
    fake.start_error = None
    recovered = frames_again(rig, t1)
    assert recovered is not None and recovered < FAST["reopen_max_s"] + 2.0, rig.node.last_error


def test_a_realsense_that_cannot_start_fails_configure_and_the_manager_retries_it(rig, fake):
    assert rig.wait_frames(3, 0.0, 60.0) is not None, rig.node.last_error
    fake.start_error = "No device connected"
    starts = fake.counts["start"]
    node = rig.restart_node()  # as the supervisor does after a crash: a new, unconfigured node
    assert wait_for(lambda: "configure failed" in node.last_error, 10.0)
    assert "cannot start the RealSense depth stream" in node.last_error and "No device connected" in node.last_error
    assert wait_for(lambda: "configure failed, retry in" in rig.manager.states["depth_capture"], 5.0), \
        rig.manager.states
    time.sleep(2.0)
    # The manager's retries back off (0.2, 0.4, 0.8 s ...): fewer than one per check period.
    assert 2 <= fake.counts["start"] - starts <= 7
    t1 = time.monotonic()
    fake.start_error = None
    assert frames_again(rig, t1, 20.0) is not None, (node.last_error, rig.manager.states)
    assert rig.manager.states["depth_capture"] == "active"


@pytest.mark.parametrize("loop", [False, True], ids=["once", "loop"])
def test_the_end_of_a_recording_is_said_and_the_node_stays_alive(tmp_path, loop):
    bag = write_recording(tmp_path / "recording", frames=3)
    rig = CaptureRig({"source": "replay", "rate_hz": 20.0, "replay.path": str(bag), "replay.loop": loop},
                     probe_period_s=0.1, check_period_s=0.2)
    try:
        assert rig.wait_frames(1, 0.0, 60.0) is not None, rig.node.last_error
        time.sleep(1.5)
        t0 = time.monotonic()
        time.sleep(0.5)
        assert rig.node.active and slowest_get_state_ms(rig, t0) < 1000.0
        success, status = rig.node.status()
        if loop:
            assert len(rig.frames) >= 9 and rig.frames_between(t0, time.monotonic()) > 0  # still publishing
            assert rig.node._loops >= 2 and success and "played" in status
        else:
            assert len(rig.frames) == 3 and not success
            assert "end of recording" in rig.node.last_error and "replay.loop is false" in status
    finally:
        rig.close()


# -- corrupt weights at configure -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_corrupt_grasp_weights_fail_configure_and_the_executor_answers_at_once(ros, tmp_path, how):
    from std_srvs.srv import Trigger

    from diffgrasp_ros.model_files import shipped_model_folder
    from diffgrasp_ros.nodes.grasp_executor import GraspExecutorNode
    from diffgrasp_ros.nodes.grasp_server import GraspServerNode
    from diffgrasp_ros.nodes.lifecycle_manager import LifecycleManagerNode

    folder = corrupt_model_copy(shipped_model_folder("igd"), tmp_path / "igd", how)
    server = GraspServerNode(parameter_overrides=[Parameter("weights", value=str(folder)),
                                                  Parameter("device", value="cpu")])
    configures = []
    original = server.configure
    server.configure = lambda: (configures.append(time.monotonic()), original())[1]
    executor_node = GraspExecutorNode(parameter_overrides=[Parameter("motion_backend", value="none")])
    manager = LifecycleManagerNode(parameter_overrides=[
        Parameter("node_names", value=["grasp_server", "grasp_executor"]), Parameter("check_period_s", value=0.2),
        Parameter("max_retry_period_s", value=0.8)])
    client_node = rclpy.create_node("corrupt_weights_client")
    executor = MultiThreadedExecutor(num_threads=8)
    for node in (server, executor_node, manager, client_node):
        executor.add_node(node)
    plan_grasp = client_node.create_client(GraspPlanning, "/plan_grasp")
    graph_state = client_node.create_client(Trigger, "/lifecycle_manager/get_graph_state")
    try:
        with Spinner(executor):
            assert wait_for(lambda: executor_node.active, 60.0), manager.states
            assert wait_for(lambda: "configure failed" in server.last_error, 30.0), server.last_error
            # The folder named, without the host's path (sent on /rosout and in answers: nodes.base.sanitise).
            assert f"<path>/{folder.name}" in server.last_error and str(folder) not in server.last_error
            assert "unreadable" in server.last_error
            # The manager's view follows its own checks: wait until it has seen the executor up.
            assert wait_for(lambda: "grasp_executor: active" in call(graph_state, Trigger.Request()).message, 30.0)
            state = call(graph_state, Trigger.Request()).message
            assert "grasp_server: configure failed, retry in" in state and "grasp_executor: active" in state
            # The executor, up without its grasp server, answers at once with a code naming it.
            start = time.monotonic()
            answer = call(plan_grasp, GraspPlanning.Request(), 10.0)
            assert time.monotonic() - start < 1.5  # server_wait_s = 1 s
            assert answer.error_code.val == MoveItErrorCodes.COMMUNICATION_FAILURE
            assert "grasp server" in answer.error_code.message and "not available" in answer.error_code.message
            # Retried with a backoff up to max_retry_period_s, not at every check.
            configures.clear()
            time.sleep(2.5)
            assert 2 <= len(configures) <= 6, len(configures)
            # The file repaired: the next retry brings the server up, no restart needed.
            shutil.copy(shipped_model_folder("igd") / "weights.pt", folder / "weights.pt")
            assert wait_for(lambda: server.active, 30.0), (server.last_error, manager.states)
            assert wait_for(lambda: call(graph_state, Trigger.Request()).success, 10.0)
    finally:
        for node in (server, executor_node, manager, client_node):
            node.destroy_node()


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_a_corrupt_restoration_model_fails_the_depth_processors_configure(ros, tmp_path, monkeypatch, how):
    """The model loads at configure (not lazily on the first frame), so an unreadable one fails configure
    with the file named; the node stays unconfigured, not dead."""
    from diffgrasp_ros.depth import restoration
    from diffgrasp_ros.model_files import shipped_model_folder
    from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode

    folder = corrupt_model_copy(shipped_model_folder("depth_restore"), tmp_path / "depth_restore", how)
    monkeypatch.setattr(restoration, "DEFAULT_WEIGHTS", folder)  # the node has no weights parameter
    node = DepthProcessorNode(parameter_overrides=[Parameter("mode", value="restore"),
                                                   Parameter("device", value="cpu")])
    try:
        assert node.trigger_configure() == FAILURE
        assert node.last_error.startswith("configure failed: ")
        assert "<path>/weights.pt" in node.last_error and str(folder) not in node.last_error
        assert "unreadable" in node.last_error
        monkeypatch.setattr(restoration, "DEFAULT_WEIGHTS", shipped_model_folder("depth_restore"))
        assert node.trigger_configure() == OK, node.last_error
        assert node.processor._model is not None  # loaded at configure
    finally:
        node.destroy_node()


def test_the_supervisor_restarts_at_once_but_backs_off_a_crash_loop():
    from diffgrasp_ros.cli.up import MAX_RESTART_DELAY_S, restart_delay

    assert restart_delay(1) == 0.0  # a crash or a kill: started again at once
    assert [restart_delay(n) for n in (2, 3, 4)] == [0.5, 1.0, 2.0]  # dying right after every start
    assert restart_delay(50) == MAX_RESTART_DELAY_S
