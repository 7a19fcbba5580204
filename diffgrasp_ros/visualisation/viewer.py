"""The browser 3D viewer of ``diffgrasp view`` (viser): the surface, the workspace box, the cameras, the ranked
grasps as hand meshes coloured by score with a slider over rank, and the planned pick.

It takes plain library types (``record.ViewerScene``, ``Grasp``), from a grasps.json or from the running
graph (``nodes.viewer_feed``); it never plans.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ..geometry import quaternion_xyzw
from ..grasping.draw import score_colour_bgr
from ..execution.reachability import ReachabilityChecker
from ..grasping.grasp import Grasp
from ..robots.arm import load_arm
from ..scene.workspace import TableArea
from .hands import grasp_posture, hand_mesh, hand_model
from .record import ArmTrajectory, CameraView, ViewerScene

# Colours (RGB) that no score colour (red → yellow → green) is: the scene in blue-greys, the pick in cyan.
SURFACE_LOW_RGB, SURFACE_HIGH_RGB = np.array([60, 80, 120]), np.array([190, 205, 230])
FRAME_RGB = (90, 90, 90)
PICK_RGB = (0, 200, 230)
ARM_RGB = (150, 150, 170)
OTHER_GRASPS_OPACITY = 0.35


def score_colour_rgb(score: float) -> tuple[int, int, int]:
    b, g, r = score_colour_bgr(score)
    return r, g, b


def _wxyz(T: np.ndarray) -> np.ndarray:
    return np.roll(quaternion_xyzw(T), 1)


def box_edges(lower_m, upper_m) -> np.ndarray:
    """(12, 2, 3) the edges of an axis-aligned box."""
    corners = np.array([[x, y, z] for x in (lower_m[0], upper_m[0]) for y in (lower_m[1], upper_m[1])
                        for z in (lower_m[2], upper_m[2])])
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]
    return corners[np.array(pairs)]


class GraspViewer:
    """A viser server on ``host:port`` (the next free port when that one is taken: see ``port``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080):
        import viser

        with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner: `diffgrasp view` prints the address
            self.server = viser.ViserServer(host=host, port=port, label="diffgrasp", verbose=False)
        self.host, self.port = host, self.server.get_port()
        self.server.scene.set_up_direction("+z")
        self._grasp_nodes: list = []  # scene and panel handles, removed when new grasps or a new pick come
        self._gui: list = []
        self._pick_gui: list = []
        self._framed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()

    def show(self, scene: ViewerScene) -> None:
        """Everything of one scene, replacing what was shown."""
        self.show_frame(scene.area, scene.cameras)
        self.show_surface(scene.surface_points_m, scene.area)
        self.show_grasps(scene.robot, scene.grasps, scene.title)
        self.show_trajectory(scene.robot, scene.trajectory)

    def show_frame(self, area: TableArea, cameras: list[CameraView]) -> None:
        """The workspace box (the table top in it) and the cameras' frusta; the first view looks at it."""
        scene = self.server.scene
        size = np.array(area.size_m)
        scene.add_line_segments("/workspace/box", box_edges(np.zeros(3), size), FRAME_RGB, thickness=0.002)
        table = box_edges([0.0, 0.0, area.table_height_m], [size[0], size[1], area.table_height_m])
        scene.add_line_segments("/workspace/table", table, FRAME_RGB, thickness=0.001)
        for i, camera in enumerate(cameras):
            K, T = camera.intrinsics, camera.T_workspace_camera
            scene.add_camera_frustum(f"/cameras/{i}", fov=2 * np.arctan(0.5 * K.height / K.fy),
                                     aspect=K.width / K.height, scale=0.05, thickness=0.002, color=FRAME_RGB,
                                     wxyz=_wxyz(T), position=T[:3, 3])
        if not self._framed:  # a live view keeps where the user has turned it
            centre = 0.5 * size
            eye = cameras[0].T_workspace_camera[:3, 3] if cameras else centre + np.array([0.45, -0.45, 0.4])
            self.server.initial_camera.position = tuple(centre + 0.8 * (eye - centre))
            self.server.initial_camera.look_at = tuple(centre)
            self.server.initial_camera.up = (0.0, 0.0, 1.0)
            self._framed = True

    def show_surface(self, points_m: np.ndarray, area: TableArea) -> None:
        """The fused surface, shaded by height above the table."""
        height = np.clip((points_m[:, 2] - area.table_height_m) / area.height_m * 3.0, 0.0, 1.0)[:, None]
        colours = (SURFACE_LOW_RGB + height * (SURFACE_HIGH_RGB - SURFACE_LOW_RGB)).astype(np.uint8)
        self.server.scene.add_point_cloud("/surface", points_m.astype(np.float32), colours, point_size=0.003,
                                          point_shape="circle")

    def show_grasps(self, robot: str, grasps: list[Grasp], title: str = "") -> None:
        """The ranked grasps as hand meshes in their postures, coloured by score; a slider picks one rank,
        the others stay faint (or hidden)."""
        for node in self._grasp_nodes + self._gui:
            node.remove()
        hand = hand_model(robot)
        # The slider's callback keeps these very nodes: a newer answer's replace them, never mix with them.
        nodes = []
        for rank, grasp in enumerate(grasps):
            vertices, faces = hand_mesh(hand, grasp.T_frame_grasp, grasp_posture(robot, grasp))
            nodes.append(self.server.scene.add_mesh_simple(f"/grasps/{rank:03d}", vertices, faces,
                                                           color=score_colour_rgb(grasp.score), flat_shading=True))
        gui = self.server.gui
        header = f"**{robot}**" + (f" — {title}" if title else "")
        if not grasps:
            self._grasp_nodes, self._gui = [], [gui.add_markdown(f"{header}\n\nno grasps")]
            return
        summary = gui.add_markdown(f"{header}\n\n{len(grasps)} grasps, colour = score (red 0, green 1)")
        rank = None if len(grasps) == 1 else gui.add_slider("rank", min=1, max=len(grasps), step=1, initial_value=1)
        details = gui.add_markdown("")
        others = gui.add_checkbox("other grasps", initial_value=True)
        self._grasp_nodes = nodes
        self._gui = [control for control in (summary, rank, details, others) if control is not None]

        def select(_=None) -> None:
            chosen = (rank.value if rank is not None else 1) - 1
            for i, node in enumerate(nodes):
                node.visible = i == chosen or others.value
                node.opacity = None if i == chosen else OTHER_GRASPS_OPACITY
            g = grasps[chosen]
            p = g.position_m
            details.content = (f"rank {chosen + 1}: score {g.score:.2f}, width {1000 * g.width_m:.0f} mm, "
                               f"{g.method}  \nTCP ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m")

        for control in (rank, others):
            if control is not None:
                control.on_update(select)
        select()

    def show_trajectory(self, robot: str, trajectory: ArmTrajectory | None) -> None:
        """The planned pick: the TCP path, the robot base frame, and the arm and hand along the path (a time slider)."""
        for node in self._pick_gui:
            node.remove()
        self._pick_gui = []
        scene = self.server.scene
        if trajectory is None:
            scene.remove_by_name("/pick")
            return
        path = trajectory.T_workspace_tcp[:, :3, 3]
        scene.add_line_segments("/pick/tcp_path", np.stack([path[:-1], path[1:]], axis=1), PICK_RGB, thickness=0.002)
        base = trajectory.T_workspace_base
        scene.add_frame("/pick/base", axes_length=0.1, axes_radius=0.005, wxyz=_wxyz(base), position=base[:3, 3])
        hand, times = hand_model(robot), trajectory.times_s
        hand_q = trajectory.hand_positions
        arm = ReachabilityChecker(load_arm(robot))

        def place(t_s: float) -> None:
            i = max(int(np.searchsorted(times, t_s, side="right")) - 1, 0)  # the waypoint reached by t_s
            q = np.array([np.interp(t_s, times, hand_q[:, j]) for j in range(hand_q.shape[1])])
            vertices, faces = hand_mesh(hand, trajectory.T_workspace_tcp[i], q)
            scene.add_mesh_simple("/pick/hand", vertices, faces, color=PICK_RGB, opacity=0.6, flat_shading=True)
            # The arm as its links' chain of origins, base to TCP, in the posture of that waypoint.
            joints = arm.link_origins(trajectory.positions[i, : len(trajectory.arm_joint_names)])
            joints = joints @ base[:3, :3].T + base[:3, 3]
            scene.add_line_segments("/pick/arm", np.stack([joints[:-1], joints[1:]], axis=1), ARM_RGB, thickness=0.012)

        # Shown first at the grasp: where the hand starts to close (the arm holds still while it does).
        closing = np.flatnonzero(np.abs(hand_q - hand_q[0]).max(axis=1) > 1e-9)
        at_grasp_s = float(times[closing[0] - 1]) if len(closing) else 0.0
        slider = self.server.gui.add_slider("pick time [s]", min=0.0, max=max(round(float(times[-1]), 2), 0.01),
                                            step=0.01, initial_value=round(at_grasp_s, 2))
        slider.on_update(lambda _: place(slider.value))
        self._pick_gui = [self.server.gui.add_markdown(f"planned pick with grasp {trajectory.rank + 1} "
                                                       f"({times[-1]:.1f} s)"), slider]
        place(at_grasp_s)
