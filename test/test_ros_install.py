"""The installed layout: `colcon build` without symlinks into a fresh workspace, then every installed node
executable, from that workspace alone, through configure and activate with real rclpy, and its clean exit
on SIGINT and SIGTERM."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
if shutil.which("colcon", path=str(Path(sys.executable).parent)) is None:
    pytest.skip("colcon is installed by scripts/setup.sh --test", allow_module_level=True)

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from lifecycle_msgs.msg import State  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from diffgrasp_ros.nodes.graph import GRAPH, parameter_files  # noqa: E402
from ros_helpers import Spinner, call, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).parent / "colcon"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace with this checkout built and installed the way `colcon build` does by default."""
    ws = tmp_path_factory.mktemp("ws")
    (ws / "src").mkdir()
    (ws / "src" / "diffgrasp").symlink_to(ROOT)
    result = subprocess.run([str(COLCON), "build", "--base-paths", "src", "--build-base", "build", "--install-base",
                             "install"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return ws


def installed(ws: Path, command: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """``command`` in a shell that sourced the workspace's setup script, as a ROS user's shell does (in
    the workspace: the checkout in the working directory would shadow the installed package)."""
    return subprocess.run(["bash", "-c", f"source {ws}/install/setup.bash && {command}"], capture_output=True,
                          text=True, timeout=timeout_s, env=_environment(), cwd=ws)


def _environment() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # only what the workspace's setup script puts there
    return env


def test_the_installed_package_finds_its_own_files(workspace):
    found = installed(workspace, f"{sys.executable} -c 'import diffgrasp_ros, diffgrasp_ros.share as s; "
                                 "print(diffgrasp_ros.__file__); print(s.config_dir()); print(s.models_dir())'")
    assert found.returncode == 0, found.stderr
    module, config, models = (Path(line) for line in found.stdout.split())
    install = workspace / "install"
    assert install in module.parents, "the checkout, not the installed copy, was imported"
    assert config == install / "diffgrasp" / "share" / "diffgrasp" / "config" and (config / "franka.yaml").is_file()
    assert (models / "igd" / "weights.pt").is_file() and (models / "depth_restore" / "weights.pt").is_file()


def test_every_installed_node_is_brought_up_by_the_installed_lifecycle_manager(workspace):
    """Each executable of lib/diffgrasp in its own process with the installed parameter files, as the
    launch file starts it (the simulated camera, the Franka), and the lifecycle manager bringing them up."""
    config = workspace / "install" / "diffgrasp" / "share" / "diffgrasp" / "config"
    rclpy.init()
    client_node = rclpy.create_node("install_test_client")
    executor = SingleThreadedExecutor()
    executor.add_node(client_node)
    processes = {}
    try:
        with Spinner(executor):
            for name, params in [(spec.name, " ".join(f"--params-file {path}"
                                                       for path in parameter_files(spec, config, "franka")))
                                 for spec in GRAPH] + [("lifecycle_manager", "")]:
                log = open(workspace / f"{name}.log", "w")
                processes[name] = (subprocess.Popen(
                    ["bash", "-c", f"source {workspace}/install/setup.bash && "
                                   f"exec {workspace}/install/diffgrasp/lib/diffgrasp/{name} --ros-args {params}"],
                    stdout=log, stderr=subprocess.STDOUT, env=_environment(), cwd=workspace), log)
            # The installed lifecycle manager configures and activates every installed node.
            graph_state = client_node.create_client(Trigger, "/lifecycle_manager/get_graph_state")
            answer = None

            def all_active() -> bool:
                nonlocal answer
                exited = [name for name, (process, _) in processes.items() if process.poll() is not None]
                assert not exited, "\n".join(f"{name} exited:\n" + (workspace / f"{name}.log").read_text()
                                             for name in exited)
                answer = call(graph_state, Trigger.Request(), 30.0) if graph_state.service_is_ready() else None
                return answer is not None and answer.success

            assert wait_for(all_active, 180.0, period_s=1.0), (answer.message if answer else "no manager") + "\n" + \
                "\n".join((workspace / f"{spec.name}.log").read_text() for spec in GRAPH)
            for spec in GRAPH:
                state = client_node.create_client(GetState, f"/{spec.name}/get_state")
                assert call(state, GetState.Request(), 10.0).current_state.id == State.PRIMARY_STATE_ACTIVE
        # Shutdown: half the processes get SIGTERM (systemd, docker stop), half SIGINT (Ctrl-C); each exits
        # cleanly within 5 s.
        for number, (process, _) in enumerate(processes.values()):
            process.send_signal(signal.SIGTERM if number % 2 == 0 else signal.SIGINT)
        deadline = time.monotonic() + 5.0
        for name, (process, log) in processes.items():
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                code = None
            log.flush()
            output = (workspace / f"{name}.log").read_text()
            assert code == 0, f"{name}: {'no exit within 5 s' if code is None else f'exit {code}'}\n{output}"
            assert "Traceback" not in output, output
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
        client_node.destroy_node()
        rclpy.try_shutdown()
