"""What a request or frame over a limit costs, against a normal one (issue 24, part 3).

    .venv/bin/python benchmarks/request_limits.py [--runs 7] [--round-trip-sizes 2000 10000] [--out report.md]
        [--allow-dirty]

A grasp server (method igd, the shipped model) holds a scene of the simulated camera; a depth processor runs
passthrough. Medians of ``--runs``:

1. the server's GraspPlanning handler, from the message rclpy hands it to the answer: a normal request
   (plan), candidate_grasps ranked (10, and max_candidate_grasps = 200), refused ones (100,000 candidates,
   a 1,000,000-vertex target mesh, a 1 MB group name);
2. the depth processor's image callback: a 640x480 frame processed, a 4000x3000 frame refused;
3. whole service round trips through rclpy from a client node: a normal request, and requests of
   ``--round-trip-sizes`` candidates (refused). These include what no node can avoid: rclpy serialises the
   request in the client and turns it back into Python messages in the server before the handler runs,
   about 0.4 ms a grasp (that is the cost that grows with the request; the handler's refusal does not).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from diffgrasp_ros.evaluation.provenance import (add_provenance_arguments, prepare_results, provenance_markdown,
                                                 write_text)

os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))


def median_ms(fn, runs: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(samples), result


def main() -> int:
    import numpy as np
    import rclpy
    from geometry_msgs.msg import Point, Pose
    from moveit_msgs.msg import CollisionObject, Grasp, MoveItErrorCodes
    from moveit_msgs.srv import GraspPlanning
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from shape_msgs.msg import Mesh

    from diffgrasp_ros.nodes import conversions as conv
    from diffgrasp_ros.nodes.depth_processor import DepthProcessorNode
    from diffgrasp_ros.nodes.grasp_server import GraspServerNode
    from diffgrasp_ros.scene import STANDARD_WORKSPACE, SceneBuilder
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.object_set import default_objects
    from diffgrasp_ros.sim.source import SimDepthSource
    from ros_helpers import Spinner, call

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--round-trip-sizes", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--out", type=Path, help="also write the figures here, with the run's provenance")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    context = prepare_results(args, args.out)
    runs = max(3, args.runs)
    lines: list[str] = []

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    rclpy.init()
    server = GraspServerNode(parameter_overrides=[Parameter("republish_period_s", value=0.0),
                                                  Parameter("max_scene_age_s", value=1e9)])  # one frozen scene
    processor = DepthProcessorNode()
    client_node = rclpy.create_node("request_limits_client")
    for node in (server, processor):
        ok = TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == ok and node.trigger_activate() == ok, node.last_error
    source = SimDepthSource(default_objects("all"), "pile", 0).start()
    frame = source.read()
    builder = SceneBuilder(STANDARD_WORKSPACE)
    builder.integrate(frame, side_view())
    server._scene, server._scene_received_s = builder.scene(), server.now_s()
    source.stop()

    def handle(request):
        return server._on_generate(request, GraspPlanning.Response())

    for _ in range(3):  # warm up: the model's first plans are slower
        planned = handle(GraspPlanning.Request())
    assert planned.error_code.val == MoveItErrorCodes.SUCCESS, planned.error_code.message
    given = list(planned.grasps)
    rows = []

    def row(what, fn, expected):
        ms, response = median_ms(fn, runs)
        code = response.error_code.val
        assert code == expected, (what, code, response.error_code.message)
        rows.append((what, ms, code, response.error_code.message))

    row("normal request (plan on the scene)", lambda: handle(GraspPlanning.Request()), MoveItErrorCodes.SUCCESS)
    for n in (10, server.param("max_candidate_grasps")):
        candidates = (given * (n // len(given) + 1))[:n]
        row(f"{n} candidate_grasps (ranked)", lambda c=candidates: handle(GraspPlanning.Request(candidate_grasps=c)),
            MoveItErrorCodes.SUCCESS)
    over = GraspPlanning.Request(candidate_grasps=[Grasp()] * 100_000)
    row("100,000 candidate_grasps (refused)", lambda: handle(over), MoveItErrorCodes.INVALID_GOAL_CONSTRAINTS)
    scan = CollisionObject(id="scan")
    scan.header.frame_id = "workspace"
    scan.meshes, scan.mesh_poses = [Mesh(vertices=[Point(x=0.1, y=0.1, z=0.1)] * 1_000_000)], [Pose()]
    row("target mesh of 1,000,000 vertices (refused)", lambda: handle(GraspPlanning.Request(target=scan)),
        MoveItErrorCodes.INVALID_GOAL_CONSTRAINTS)
    row("group_name of 1 MB (refused)", lambda: handle(GraspPlanning.Request(group_name="x" * 1_000_000)),
        MoveItErrorCodes.INVALID_GOAL_CONSTRAINTS)

    report(f"grasp server handler, median of {runs} (after rclpy has parsed the request):")
    for what, ms, code, message in rows:
        report(f"  {what:<45} {ms:9.2f} ms  code {code:>6}  {message[:90]}")

    # Depth: the image callback on a normal frame and on the 4000x3000 frame of the issue.
    image, info = conv.depth_frame_to_msgs(frame, "16UC1")
    processor._on_info(info)
    big = type(image)(header=image.header, encoding="16UC1", width=4000, height=3000, step=8000,
                      data=np.full((3000, 4000), 600, np.uint16).tobytes())
    published = []
    processor.image_pub.publish = published.append
    normal_ms, _ = median_ms(lambda: processor._on_image(image), runs)
    assert published, processor.last_error
    big_ms, _ = median_ms(lambda: processor._on_image(big), runs)
    assert "max_image_pixels" in processor.last_error, processor.last_error
    report(f"depth processor image callback, median of {runs}:")
    report(f"  {'640x480 frame (processed)':<45} {normal_ms:9.2f} ms")
    report(f"  {'4000x3000 frame (refused)':<45} {big_ms:9.2f} ms  {processor.last_error[:90]}")

    # Round trips through rclpy: serialisation and parsing included.
    executor = MultiThreadedExecutor(num_threads=4)
    for node in (server, client_node):
        executor.add_node(node)
    with Spinner(executor):
        client = client_node.create_client(GraspPlanning, "grasp_server/generate_grasps")
        report("service round trips from a client node (rclpy serialises and parses the request):")
        ms, response = median_ms(lambda: call(client, GraspPlanning.Request(), 60.0), runs)
        report(f"  {'normal request':<45} {ms:9.2f} ms  code {response.error_code.val}")
        for n in args.round_trip_sizes:
            request = GraspPlanning.Request(candidate_grasps=[Grasp()] * n)
            ms, response = median_ms(lambda r=request: call(client, r, 600.0), 1 if n > 5000 else runs)
            report(f"  {f'{n} candidate_grasps (refused)':<45} {ms:9.2f} ms  code {response.error_code.val}")
    for node in (server, processor, client_node):
        node.destroy_node()
    rclpy.try_shutdown()
    if args.out:
        write_text(args.out, "\n".join([*provenance_markdown(context), "", "```", *lines, "```"]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
