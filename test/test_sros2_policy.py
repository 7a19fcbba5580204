"""The SROS2 policy (config/security/diffgrasp_policy.xml): valid in the SROS2 policy format, and granting
each node of the running graph exactly the topics and services it creates, nothing missing, nothing extra;
the launch file's security:=true / keystore:= arguments, run on stand-ins for launch and launch_ros.

The Fast DDS of the PyPI wheels has no DDS-Security, so the secured graph itself cannot run here:
docs/security.md has the steps for a ROS machine.
"""
import os
import sys
import time
import types
from pathlib import Path

import pytest

etree = pytest.importorskip("lxml.etree", reason="lxml validates the policy (as sros2 itself does)")

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "config" / "security" / "diffgrasp_policy.xml"
SCHEMA = ROOT / "config" / "security" / "schema" / "policy.xsd"
LAUNCH = ROOT / "launch" / "bringup.launch.py"
ENCLAVE_ROOT = "/diffgrasp"
GRAPH_NODES = ("depth_capture", "depth_processor", "scene_builder", "grasp_server", "grasp_executor",
               "lifecycle_manager")
KINDS = ("publish", "subscribe", "reply", "request")


# -- the policy ------------------------------------------------------------------------------------------
def resolve(name: str, ns: str, node: str) -> str:
    """A policy name as sros2's permissions template expands it: absolute as written, ``~/x`` in the
    node's private namespace, anything else in the profile's namespace."""
    prefix = ns if ns.endswith("/") else ns + "/"
    if name.startswith("/"):
        return name
    if name.startswith("~"):
        return prefix + node + name[1:]
    return prefix + name


def policy_grants(path: Path = POLICY) -> dict[str, dict[str, set[str]]]:
    """Enclave path -> {publish, subscribe, reply, request} -> fully qualified names ALLOWed."""
    grants = {}
    for enclave in etree.parse(str(path)).getroot().iter("enclave"):
        kinds = grants.setdefault(enclave.get("path"), {kind: set() for kind in KINDS})
        for profile in enclave.iter("profile"):
            for group in profile:
                if not isinstance(group.tag, str):
                    continue  # a comment
                for kind in KINDS:
                    if group.get(kind) == "ALLOW":
                        kinds[kind] |= {resolve(item.text.strip(), profile.get("ns"), profile.get("node"))
                                        for item in group if isinstance(item.tag, str)}
    return grants


def test_policy_is_valid_in_the_sros2_policy_format():
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    policy = etree.parse(str(POLICY))
    policy.xinclude()  # as sros2's load_policy does
    assert schema.validate(policy), schema.error_log
    try:  # a ROS machine: sros2's own schema, and sros2's own loader
        from sros2.policy import get_policy_schema, load_policy
    except ImportError:
        pass
    else:
        assert etree.XMLSchema(etree.parse(str(get_policy_schema("policy.xsd")))).validate(policy)
        load_policy(POLICY)
    # The schema is strict where sros2's is: these are refused.
    text = POLICY.read_text()
    broken = {"version": text.replace('version="0.2.0"', 'version="0.1.0"'),
              "qualifier": text.replace('publish="ALLOW"', 'publish="YES"', 1),
              "element": text.replace('<profile ns="/" node="depth_capture">',
                                      '<profile ns="/" node="depth_capture"><parameters/>'),
              "ns": text.replace('<profile ns="/" node="depth_capture">', '<profile node="depth_capture">'),
              "enclave path": text.replace("<enclaves>", "<enclaves><enclave><profiles/></enclave>")}
    for what, document in broken.items():
        assert document != text, what
        assert not schema.validate(etree.fromstring(document.encode())), what


def test_one_enclave_per_node_each_with_its_own_profile():
    root = etree.parse(str(POLICY)).getroot()
    enclaves = {enclave.get("path"): [(p.get("ns"), p.get("node")) for p in enclave.iter("profile")]
                for enclave in root.iter("enclave")}
    assert enclaves == {f"{ENCLAVE_ROOT}/{name}": [("/", name)] for name in GRAPH_NODES}
    for enclave in root.iter("enclave"):  # grants only: nothing to DENY, default is deny
        assert not any(value == "DENY" for element in enclave.iter() for value in element.attrib.values())


# -- the policy against the running graph ------------------------------------------------------------------
def graph_interfaces(probe, names) -> dict[str, dict[str, set[str]]]:
    """What each node has on the graph, seen from ``probe``: its publishers, subscriptions, services and
    clients, in the policy's terms (a service it serves is a reply grant, a client a request grant)."""
    lookups = {"publish": probe.get_publisher_names_and_types_by_node,
               "subscribe": probe.get_subscriber_names_and_types_by_node,
               "reply": probe.get_service_names_and_types_by_node,
               "request": probe.get_client_names_and_types_by_node}
    seen = {}
    for name in names:
        try:
            seen[f"{ENCLAVE_ROOT}/{name}"] = {kind: {topic for topic, _ in lookup(name, "/")}
                                              for kind, lookup in lookups.items()}
        except Exception:  # not discovered yet (rclpy raises NodeNameNonExistentError)
            seen[f"{ENCLAVE_ROOT}/{name}"] = None
    return seen


def differences(expected: dict, seen: dict) -> list[str]:
    lines = []
    for enclave in sorted(set(expected) | set(seen)):
        if seen.get(enclave) is None or enclave not in expected:
            lines.append(f"{enclave}: in the policy {enclave in expected}, on the graph {seen.get(enclave) is not None}")
            continue
        for kind in KINDS:
            missing = sorted(seen[enclave][kind] - expected[enclave][kind])
            extra = sorted(expected[enclave][kind] - seen[enclave][kind])
            lines += [f"{enclave} {kind}: not granted but used: {name}" for name in missing]
            lines += [f"{enclave} {kind}: granted but not used: {name}" for name in extra]
    return lines


def settled(read, timeout_s: float, discovered) -> dict:
    """``read()`` once ``discovered(read())`` holds and two reads 0.3 s apart agree (discovery is done),
    or the last reading at the timeout. The policy cannot be the exact expectation: it grants every
    robot's command topics, and one graph runs one robot."""
    from ros_helpers import wait_for

    last = read()

    def done() -> bool:
        nonlocal last
        now = read()
        stable, last = now == last and discovered(now), now
        return stable

    wait_for(done, timeout_s, period_s=0.3)
    return last


def executor_found(expected: dict):
    """grasp_executor's robot-independent interfaces all discovered (its endpoints arrive after its name, and
    in bursts under load): everything the policy grants it but the robots' command topics and /clock."""
    grants = expected[f"{ENCLAVE_ROOT}/grasp_executor"]
    commands = {t for t in grants["publish"] if t.endswith("/joint_trajectory") or t == "/cmd_leap"}
    core = {kind: grants[kind] - commands - {"/clock"} for kind in KINDS}

    def check(interfaces) -> bool:
        return interfaces is not None and all(core[kind] <= interfaces[kind] for kind in KINDS)
    return check


def graph_found(expected: dict):
    """Every node discovered, each but grasp_executor with exactly its grants, and the executor's
    robot-independent interfaces (its command topics are its robot's subset, compared after every robot)."""
    executor = f"{ENCLAVE_ROOT}/grasp_executor"
    executor_ready = executor_found(expected)

    def check(seen: dict) -> bool:
        return executor_ready(seen.get(executor)) and all(
            seen.get(enclave) == grants for enclave, grants in expected.items() if enclave != executor)
    return check


@pytest.fixture(scope="module")
def ros():
    rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
    pytest.importorskip("moveit_msgs", reason="built by scripts/setup.sh --test")
    import ros_helpers  # noqa: F401  (domain id and localhost discovery before rclpy.init)

    from diffgrasp_ros.nodes.base import init_rclpy

    # A domain of its own: the graphs of earlier test modules in this process (same node names) linger in
    # discovery, and a lookup by node name then finds one without endpoints.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_DOMAIN_ID", str((int(os.environ.get("ROS_DOMAIN_ID", "0")) + 50) % 101 + 100))
        init_rclpy()
    yield rclpy
    rclpy.try_shutdown()


def motion_enabled_args() -> list[str]:
    """The ROS arguments that enable motion on grasp_executor, where it has the switch (without it, the
    command publishers exist anyway): the policy grants the motion-enabled graph."""
    return ["-p", "motion_enabled:=true"]


def test_policy_grants_exactly_what_the_running_graph_creates(ros):
    """The whole graph (five lifecycle nodes, motion enabled, and the lifecycle manager) brought up as
    `diffgrasp up` does, then under use_sim_time (which adds /clock), compared with the policy; then
    grasp_executor alone for each other robot (the command topics are the robot's)."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from ros_helpers import Spinner

    from diffgrasp_ros.cli.up import bring_up, node_arguments, tear_down
    from diffgrasp_ros.nodes.grasp_executor import GraspExecutorNode
    from diffgrasp_ros.nodes.graph import GRAPH, ROBOTS, default_config_dir, overrides
    from diffgrasp_ros.nodes.lifecycle_manager import LifecycleManagerNode
    from rclpy.lifecycle import TransitionCallbackReturn

    expected = policy_grants()
    started = time.monotonic()
    probe = Node("sros2_policy_probe")
    executor, nodes = bring_up(None, motion_enabled_args(), robot="franka")
    manager = LifecycleManagerNode()
    executor.add_node(manager)
    nodes.append(manager)
    seen_per_robot = {}
    try:
        with Spinner(executor):
            grasp_executor = next(node for node in nodes if node.get_name() == "grasp_executor")
            if grasp_executor.has_parameter("motion_enabled"):
                assert grasp_executor.get_parameter("motion_enabled").value is True
            # use_sim_time: every node subscribes to /clock (the launch file's use_sim_time:=true)
            for node in nodes:
                assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
            seen = settled(lambda: graph_interfaces(probe, GRAPH_NODES), 60.0,  # discovery under CI load
                           graph_found(expected))
            seen_per_robot["franka"] = seen[f"{ENCLAVE_ROOT}/grasp_executor"]
    finally:
        tear_down(executor, nodes)
    up_s = time.monotonic() - started

    # grasp_executor alone for the other robots: its grants are every robot's command topics.
    spec = next(spec for spec in GRAPH if spec.name == "grasp_executor")
    for robot in ROBOTS:
        if robot in seen_per_robot:
            continue
        args = node_arguments(spec, default_config_dir(), robot, overrides(robot=robot)[spec.name],
                              motion_enabled_args())
        node = GraspExecutorNode(cli_args=args)
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        try:
            with Spinner(executor):
                assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.last_error
                executor_ready = executor_found(expected)
                for_robot = settled(lambda: graph_interfaces(probe, ["grasp_executor"]), 30.0,
                                    lambda seen: executor_ready(seen[f"{ENCLAVE_ROOT}/grasp_executor"]))
                seen_per_robot[robot] = for_robot[f"{ENCLAVE_ROOT}/grasp_executor"]
        finally:
            tear_down(executor, [node])
    probe.destroy_node()

    assert all(interfaces is not None for interfaces in seen_per_robot.values()), seen_per_robot
    executor_enclave = f"{ENCLAVE_ROOT}/grasp_executor"
    if seen.get(executor_enclave) is not None:
        seen[executor_enclave] = {kind: set().union(*(interfaces[kind] for interfaces in seen_per_robot.values()))
                                  for kind in KINDS}
    problems = differences(expected, seen)
    assert not problems, "\n".join(problems)
    # Each robot's own command topics are granted, and they differ: the union is not one robot's set.
    commands = {robot: interfaces["publish"] - seen_per_robot["franka"]["publish"]
                for robot, interfaces in seen_per_robot.items()}
    assert commands["xarm_leap"] and commands["ur5_leap"] and "/cmd_leap" in commands["ur5_leap"]
    print(f"graph up and compared in {up_s:.1f} s, with the other robots' executors "
          f"{time.monotonic() - started:.1f} s")


# -- the launch file on stand-ins for launch and launch_ros -------------------------------------------------
class Recorded:
    """A launch or launch_ros class: it keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def value(substitution, arguments: dict) -> str:
    """A substitution as launch would perform it, for launch arguments ``arguments``."""
    if isinstance(substitution, str):
        return substitution
    if isinstance(substitution, (list, tuple)):
        return "".join(value(part, arguments) for part in substitution)
    kind = type(substitution).__name__
    if kind == "LaunchConfiguration":
        return arguments[substitution.args[0]]
    if kind == "EnvironmentVariable":
        return os.environ.get(substitution.args[0], substitution.kwargs.get("default_value", ""))
    if kind == "PythonExpression":
        return str(eval(value(substitution.args[0], arguments), {}))  # noqa: S307 (the launch file's own text)
    return f"<{kind}>"


def runs(action, arguments: dict) -> bool:
    condition = action.kwargs.get("condition")
    if condition is None:
        return True
    result = value(condition.args[0], arguments).lower() == "true"
    return result if type(condition).__name__ == "IfCondition" else not result


@pytest.fixture(scope="module")
def launch_description():
    """generate_launch_description() of launch/bringup.launch.py with stand-in launch / launch_ros modules."""
    class Substitution:
        def __init__(self):
            pass

    names = {"launch": ["LaunchDescription"], "launch.actions": ["DeclareLaunchArgument", "SetEnvironmentVariable"],
             "launch.conditions": ["IfCondition", "UnlessCondition"],
             "launch.substitutions": ["EnvironmentVariable", "LaunchConfiguration", "PathJoinSubstitution",
                                      "PythonExpression"],
             "launch_ros": [], "launch_ros.actions": ["LifecycleNode", "Node"], "ament_index_python": [],
             "ament_index_python.packages": []}
    modules = {}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for class_name in classes:
            setattr(module, class_name, type(class_name, (Recorded,), {}))
        modules[module_name] = module
    modules["launch"].Substitution = Substitution
    modules["launch.utilities"] = types.ModuleType("launch.utilities")
    modules["launch.utilities"].normalize_to_list_of_substitutions = lambda s: [s]
    modules["launch.utilities"].perform_substitutions = lambda context, subs: "".join(map(str, subs))
    modules["ament_index_python.packages"].get_package_share_directory = lambda package: str(ROOT)
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        namespace = {"__name__": "bringup_launch", "__file__": str(LAUNCH)}
        exec(compile(LAUNCH.read_text(), str(LAUNCH), "exec"), namespace)
        description = namespace["generate_launch_description"]()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return description.args[0]


def launched(actions, **given) -> tuple[dict, dict]:
    """(environment set, node name -> its Node action) for launch arguments ``given`` over the defaults."""
    arguments = {}
    for action in actions:
        if type(action).__name__ == "DeclareLaunchArgument":
            name = action.args[0] if action.args else action.kwargs["name"]
            arguments[name] = value(action.kwargs.get("default_value", ""), {})
    assert set(given) <= set(arguments), set(given) - set(arguments)
    arguments.update(given)
    environment, started = {}, {}
    for action in actions:
        if not runs(action, arguments):
            continue
        kind = type(action).__name__
        if kind == "SetEnvironmentVariable":
            assert not started, "the environment must be set before the nodes start"
            environment[value(action.args[0], arguments)] = value(action.args[1], arguments)
        elif kind in ("Node", "LifecycleNode"):
            started[action.kwargs["name"]] = action
    return environment, started


def test_launch_security_argument_sets_the_sros2_environment(launch_description, monkeypatch):
    monkeypatch.delenv("ROS_SECURITY_KEYSTORE", raising=False)
    declared = {action.args[0] if action.args else action.kwargs["name"]: action for action in launch_description
                if type(action).__name__ == "DeclareLaunchArgument"}
    assert declared["security"].kwargs["default_value"] == "false"
    assert declared["security"].kwargs["choices"] == ["true", "false"]

    environment, started = launched(launch_description)
    assert environment == {}  # off by default, and the environment is left as it is
    assert "rviz2" in started and set(GRAPH_NODES) <= set(started)

    environment, started = launched(launch_description, security="true", keystore="/opt/diffgrasp/keystore")
    assert environment == {"ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce",
                           "ROS_SECURITY_KEYSTORE": "/opt/diffgrasp/keystore"}
    assert set(started) == set(GRAPH_NODES)  # RViz is not started: the policy has no enclave for it


def test_launch_keystore_defaults_to_the_environment(launch_description, monkeypatch):
    monkeypatch.setenv("ROS_SECURITY_KEYSTORE", "/home/robot/keystore")
    environment, _ = launched(launch_description, security="true")
    assert environment["ROS_SECURITY_KEYSTORE"] == "/home/robot/keystore"


@pytest.mark.parametrize("capture", ["true", "false"])
def test_launch_runs_every_node_in_its_policy_enclave(launch_description, capture):
    grants = policy_grants()
    _, started = launched(launch_description, security="true", capture=capture)
    assert set(started) == set(GRAPH_NODES) - ({"depth_capture"} if capture == "false" else set())
    for name, action in started.items():
        enclave = action.kwargs["ros_arguments"]
        assert enclave == ["--enclave", f"{ENCLAVE_ROOT}/{name}"] and enclave[1] in grants, name
