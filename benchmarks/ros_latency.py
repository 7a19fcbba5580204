"""ROS layer cost: /plan_grasp through the node graph vs. the library, and message conversion per frame.

    .venv/bin/python benchmarks/ros_latency.py [--runs 15]

Brings the graph up in-process on the simulated camera (as `diffgrasp up` does), waits for a scene,
then times in the same run:
- a /plan_grasp round trip from a separate client node (executor -> grasp server -> planner -> back);
- the library alone on the very scene the grasp server holds (`planner.plan(scene)`), and the library
  from the depth frame (`plan_from_depth`: fusion + planning), which the graph does continuously;
- conversions of one 640x480 frame: DepthFrame <-> Image + CameraInfo (32FC1, 16UC1), CDR
  serialization, and a Scene <-> its two PointCloud2 messages.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def median_ms(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(samples)


def main() -> int:
    import threading

    import rclpy
    from moveit_msgs.msg import MoveItErrorCodes
    from moveit_msgs.srv import GraspPlanning
    from rclpy.serialization import serialize_message

    from diffgrasp_ros.cli.up import bring_up, tear_down
    from diffgrasp_ros.nodes import conversions as conv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    runs = max(5, parser.parse_args().runs)

    executor, nodes = bring_up(robot="franka", camera="sim", depth_mode="passthrough")
    by_name = {n.get_name(): n for n in nodes}
    client_node = rclpy.create_node("benchmark_client")
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        server, capture = by_name["grasp_server"], by_name["depth_capture"]
        deadline = time.monotonic() + 30
        while server._scene is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Freeze the scene: stop the camera so every call plans on the same scene.
        capture.trigger_deactivate()
        time.sleep(0.5)
        server.set_parameters([rclpy.parameter.Parameter("max_scene_age_s", value=1e6)])
        client = client_node.create_client(GraspPlanning, "/plan_grasp")
        client.wait_for_service(timeout_sec=10)

        def round_trip():
            future = client.call_async(GraspPlanning.Request())
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            done.wait(30)
            assert future.result().error_code.val == MoveItErrorCodes.SUCCESS

        round_trip()  # warm-up
        graph_ms = median_ms(round_trip, runs)
        scene = server._scene
        planner = server.planner
        library_ms = median_ms(lambda: planner.plan(scene), runs)
        frame = capture.source.read()
        T = capture.source.T_workspace_camera
        from_depth_ms = median_ms(lambda: planner.plan_from_depth(frame, T), runs)

        image32, info = conv.depth_frame_to_msgs(frame, "32FC1")
        image16, _ = conv.depth_frame_to_msgs(frame, "16UC1")
        surface, tsdf = conv.scene_to_clouds(scene, 0.0)
        conversions = {
            "DepthFrame -> Image+CameraInfo (32FC1)": lambda: conv.depth_frame_to_msgs(frame, "32FC1"),
            "DepthFrame -> Image+CameraInfo (16UC1)": lambda: conv.depth_frame_to_msgs(frame, "16UC1"),
            "Image+CameraInfo -> DepthFrame (32FC1)": lambda: conv.msgs_to_depth_frame(image32, info),
            "Image+CameraInfo -> DepthFrame (16UC1)": lambda: conv.msgs_to_depth_frame(image16, info),
            "CDR serialize Image (32FC1, 1.2 MB)": lambda: serialize_message(image32),
            f"Scene -> 2 PointCloud2 ({len(scene.points_m)} pts)": lambda: conv.scene_to_clouds(scene, 0.0),
            "2 PointCloud2 -> Scene": lambda: conv.clouds_to_scene(surface, tsdf, planner.workspace),
        }
        conversion_ms = {name: median_ms(fn, max(runs, 20)) for name, fn in conversions.items()}
    finally:
        tear_down(executor, nodes)
        client_node.destroy_node()
        spinner.join(timeout=10)
        rclpy.try_shutdown()

    print(f"/plan_grasp through the node graph vs. the library — medians of {runs} runs, same scene")
    print(f"  /plan_grasp round trip (client -> executor -> grasp server -> back) {graph_ms:8.1f} ms")
    print(f"  library planner.plan(scene) on the same scene                    {library_ms:8.1f} ms")
    print(f"  ratio graph / library                                            {graph_ms / library_ms:8.2f}x")
    print(f"  library plan_from_depth(frame) (fusion + planning)               {from_depth_ms:8.1f} ms")
    print("message conversion per 640x480 frame (medians)")
    for name, ms in conversion_ms.items():
        print(f"  {name:<62} {ms:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
