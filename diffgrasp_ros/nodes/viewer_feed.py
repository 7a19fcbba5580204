"""``diffgrasp view --live``: the latest answers of the running graph, handed to the browser viewer.

A plain (not lifecycle) node that only listens: the surface on ``scene/surface`` and the ranked grasps on
``grasps/markers`` (the grasp server's outlines carry pose, opening and score; ``grasps/poses`` has no scores).
It never calls a service, so it never makes the graph plan.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from ..grasping.grasp import Grasp
from ..scene.workspace import TableArea
from ..visualisation.viewer import GraspViewer
from .conversions import cloud_to_array, pose_to_matrix

MAX_POINTS = 500_000  # a scene_builder cloud is ~20k points; this only refuses garbage


def markers_to_grasps(markers: MarkerArray) -> list[Grasp]:
    """The grasps of ``conversions.grasps_to_markers`` in rank order: each outline (LINE_LIST, id 2·rank) gives
    the TCP pose and the opening (its palm bar spans ±width/2 along y), its label (id 2·rank + 1, "rank: score")
    the score."""
    added = [m for m in markers.markers if m.action == Marker.ADD]
    outlines = {m.id // 2: m for m in added if m.type == Marker.LINE_LIST}
    labels = {m.id // 2: m.text for m in added if m.type == Marker.TEXT_VIEW_FACING}
    grasps = []
    for rank in sorted(outlines):
        outline, label = outlines[rank], labels.get(rank, "")
        if len(outline.points) < 4 or ":" not in label:
            raise ValueError(f"grasp marker {outline.id} is not a diffgrasp grasp outline with its score label")
        grasps.append(Grasp(pose_to_matrix(outline.pose), 2.0 * abs(outline.points[3].y),
                            float(label.split(":", 1)[1]), "grasp_server", outline.header.frame_id))
    return grasps


class ViewerFeed(Node):
    def __init__(self, viewer: GraspViewer, robot: str, area: TableArea = TableArea()):
        super().__init__("diffgrasp_viewer")
        self.viewer, self.robot, self.area = viewer, robot, area
        self.viewer.show_frame(area, [])
        self.viewer.show_grasps(robot, [], "live: waiting for grasps/markers")
        self.create_subscription(PointCloud2, "scene/surface", self._on_surface, 1)
        self.create_subscription(MarkerArray, "grasps/markers", self._on_markers, 1)
        self._shown: list[tuple] = []

    def _on_surface(self, cloud: PointCloud2) -> None:
        try:
            points = cloud_to_array(cloud, ("x", "y", "z"), "scene/surface", MAX_POINTS)
        except ValueError as error:
            self.get_logger().warning(f"scene/surface dropped: {error}")
            return
        self.viewer.show_surface(points[np.isfinite(points).all(axis=1)], self.area)

    def _on_markers(self, markers: MarkerArray) -> None:
        try:
            grasps = markers_to_grasps(markers)
        except ValueError as error:
            self.get_logger().warning(f"grasps/markers dropped: {error}")
            return
        # The server republishes its latest answer every second: redraw (and reset the slider) only on a new one.
        key = [(g.score, g.width_m, *g.T_frame_grasp.ravel()) for g in grasps]
        if key != self._shown:
            self._shown = key
            self.viewer.show_grasps(self.robot, grasps, "live")


def serve(viewer: GraspViewer, robot: str, duration_s: float | None) -> None:
    """Feed ``viewer`` from the running graph until stopped (a signal) or ``duration_s``."""
    from rclpy.executors import SingleThreadedExecutor

    from .base import init_rclpy, spin_until_stopped

    init_rclpy()
    feed = ViewerFeed(viewer, robot)
    executor = SingleThreadedExecutor()
    executor.add_node(feed)
    spin_until_stopped(executor, [feed], duration_s)
