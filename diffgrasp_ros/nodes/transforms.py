"""Calibrated transforms on ``/tf_static``, and grasp poses re-expressed in the frame a user plans in.

On a ROS machine the transforms go out through tf2_ros's ``StaticTransformBroadcaster``. Without
tf2_ros (the PyPI set-up), the same ``tf2_msgs/TFMessage`` goes out with the broadcaster's QoS, so a
``tf2_ros`` listener elsewhere sees no difference.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..geometry import quaternion_xyzw
from .conversions import header, pose_msg, pose_to_matrix

# tf2_ros.StaticTransformBroadcaster's default: late joiners get the latched message.
STATIC_TF_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def transform_stamped(T_parent_child: np.ndarray, parent: str, child: str, stamp_s: float) -> TransformStamped:
    x, y, z, w = quaternion_xyzw(T_parent_child)
    tx, ty, tz = (float(v) for v in T_parent_child[:3, 3])
    return TransformStamped(header=header(parent, stamp_s), child_frame_id=child,
                            transform=Transform(translation=Vector3(x=tx, y=ty, z=tz),
                                                rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))))


class StaticTransforms:
    """A node's static transforms, each child frame once (a newer transform replaces the child's older one).
    Every ``send`` publishes them all in one message: ``/tf_static`` keeps one message per publisher for
    late joiners, and older tf2_ros Python broadcasters do not gather earlier transforms themselves."""

    def __init__(self, node):
        self._node = node
        self._transforms: dict[str, TransformStamped] = {}
        try:
            from tf2_ros import StaticTransformBroadcaster
        except ImportError:
            from tf2_msgs.msg import TFMessage

            publisher = node.create_publisher(TFMessage, "/tf_static", STATIC_TF_QOS)
            self._publisher, self._publish = publisher, lambda transforms: publisher.publish(
                TFMessage(transforms=transforms))
        else:
            broadcaster = StaticTransformBroadcaster(node, qos=STATIC_TF_QOS)
            self._publisher, self._publish = broadcaster.pub_tf, broadcaster.sendTransform

    def send(self, T_parent_child: np.ndarray, parent: str, child: str, stamp_s: float) -> None:
        self._transforms[child] = transform_stamped(T_parent_child, parent, child, stamp_s)
        self._publish(list(self._transforms.values()))

    def destroy(self) -> None:
        self._node.destroy_publisher(self._publisher)


def express_grasp(grasp, T_output_frame: np.ndarray, output_frame: str, T_tcp_link: np.ndarray):
    """A ``moveit_msgs/Grasp`` in the workspace frame re-expressed in ``output_frame`` (``T_output_frame``
    maps workspace points into it), its pose the link ``T_tcp_link`` places relative to the TCP (the
    identity: the TCP itself). The approach and retreat directions are rotated with it."""
    T = T_output_frame @ pose_to_matrix(grasp.grasp_pose.pose) @ T_tcp_link
    grasp.grasp_pose.header.frame_id = output_frame
    grasp.grasp_pose.pose = pose_msg(T)
    for translation in (grasp.pre_grasp_approach, grasp.post_grasp_retreat):
        v = translation.direction.vector
        x, y, z = T_output_frame[:3, :3] @ np.array([v.x, v.y, v.z])
        translation.direction.header.frame_id = output_frame
        translation.direction.vector = Vector3(x=float(x), y=float(y), z=float(z))
    return grasp
