"""/tf_static without tf2_ros: a tf2_msgs/TFMessage published with tf2_ros's static-broadcaster QoS
reaches a subscriber that joins later (as robot_state_publisher's transforms reach an RViz started after
it), over DDS between two rclpy contexts (two DDS participants, as two processes).

With the PyPI ROS set-up tf2_msgs is the ros/interfaces shadow (scripts/setup_ros.sh), and there is no
tf2_ros; on a ROS machine these run against the distribution's tf2_msgs (and tf2_ros, if installed).
"""
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="the ROS 2 wheels are installed by scripts/setup.sh --test")
pytest.importorskip("tf2_msgs", reason="built by scripts/setup.sh --test (ros/interfaces/tf2_msgs)")

import ros_helpers  # noqa: E402,F401  (domain id and localhost discovery before rclpy.init)
from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from ros_helpers import Spinner, wait_for  # noqa: E402

# lark (rosidl's parser, loaded by rclpy's type description service) imports deprecated sre_* modules.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

TF_STATIC = "/tf_static"

# tf2_ros.StaticTransformBroadcaster's default publisher QoS (ros2/geometry2,
# tf2_ros_py/tf2_ros/static_transform_broadcaster.py: QoSProfile(depth=1,
# durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST); reliability is left at
# QoSProfile's default, RELIABLE. The C++ tf2_ros::StaticBroadcasterQoS is the same).
STATIC_BROADCASTER_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                                    reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
# tf2_ros.TransformListener's default /tf_static subscription QoS (transform_listener.py: depth=100,
# TRANSIENT_LOCAL, KEEP_LAST; RELIABLE by default): what a real tf2 listener joins with.
STATIC_LISTENER_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture()
def participant():
    """Makes (node, executor) pairs, each on an rclpy context of its own (its own DDS participant),
    spun in a thread; executors joined, nodes destroyed and contexts shut down at the end."""
    made = []

    def make(name):
        context = rclpy.Context()
        rclpy.init(context=context)  # ROS_DOMAIN_ID / localhost discovery from ros_helpers
        node = rclpy.create_node(f"{name}_{uuid.uuid4().hex[:8]}", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = Spinner(executor).__enter__()
        made.append((context, node, spinner))
        return node

    try:
        yield make
    finally:
        for context, node, spinner in reversed(made):
            spinner.__exit__(None, None, None)
            assert not spinner.thread.is_alive(), "executor thread did not stop"
            node.destroy_node()
            rclpy.shutdown(context=context)


def static_transform(parent: str, child: str, x: float) -> TransformStamped:
    return TransformStamped(header=Header(stamp=Time(sec=1_700_000_000, nanosec=5), frame_id=parent),
                            child_frame_id=child,
                            transform=Transform(translation=Vector3(x=x, y=0.25, z=-0.5),
                                                rotation=Quaternion(x=0.0, y=0.0, z=0.6, w=0.8)))


def fields(transform: TransformStamped):
    t, r = transform.transform.translation, transform.transform.rotation
    return (transform.header.frame_id, transform.child_frame_id, transform.header.stamp.sec,
            transform.header.stamp.nanosec, t.x, t.y, t.z, r.x, r.y, r.z, r.w)


def late_subscriber(make, qos, frames):
    """A node on a new participant subscribing to /tf_static now, and the list of the received messages
    that carry one of ``frames`` (a /tf_static on the same domain may carry other tests' transforms too)."""
    received = []

    def on_message(message):
        if any(t.child_frame_id in frames for t in message.transforms):
            received.append(message)

    node = make("tf_static_listener")
    node.create_subscription(TFMessage, TF_STATIC, on_message, qos)
    return node, received


@pytest.mark.parametrize("subscriber_qos", [STATIC_BROADCASTER_QOS, STATIC_LISTENER_QOS],
                         ids=["broadcaster_qos", "tf2_listener_qos"])
def test_late_joiner_receives_the_static_transforms(participant, subscriber_qos):
    tag = uuid.uuid4().hex[:8]
    sent = TFMessage(transforms=[static_transform("workspace", f"camera_{tag}", 0.125),
                                 static_transform("workspace", f"panda_link0_{tag}", -0.375)])
    publisher_node = participant("tf_static_broadcaster")
    publisher = publisher_node.create_publisher(TFMessage, TF_STATIC, STATIC_BROADCASTER_QOS)
    publisher.publish(sent)  # before anyone listens: only the durability can deliver it

    frames = {t.child_frame_id for t in sent.transforms}
    listener, received = late_subscriber(participant, subscriber_qos, frames)
    assert wait_for(lambda: received, timeout_s=15.0), "the late joiner got no /tf_static message"
    assert [fields(t) for t in received[0].transforms] == [fields(t) for t in sent.transforms]

    # What the late joiner's participant discovered of the publisher: tf2_ros's QoS, the tf2_msgs type.
    infos = [i for i in listener.get_publishers_info_by_topic(TF_STATIC)
             if i.node_name == publisher_node.get_name()]
    assert len(infos) == 1
    assert infos[0].topic_type == "tf2_msgs/msg/TFMessage"
    assert infos[0].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert infos[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
    wait_for(lambda: len(received) > 1, timeout_s=0.5)
    assert len(received) == 1, "the latched message arrived more than once"


def test_a_late_joiner_gets_only_the_last_message(participant):
    """Depth 1: a publisher's earlier /tf_static messages are gone for late joiners, so every message
    must carry all of the publisher's static transforms (as tf2_ros's broadcasters and
    diffgrasp_ros.nodes.transforms.StaticTransforms do)."""
    tag = uuid.uuid4().hex[:8]
    first = static_transform("workspace", f"camera_{tag}", 0.125)
    second = static_transform("workspace", f"panda_link0_{tag}", -0.375)
    publisher = participant("tf_static_broadcaster").create_publisher(TFMessage, TF_STATIC,
                                                                      STATIC_BROADCASTER_QOS)
    publisher.publish(TFMessage(transforms=[first]))
    publisher.publish(TFMessage(transforms=[second]))

    _, received = late_subscriber(participant, STATIC_LISTENER_QOS, {first.child_frame_id, second.child_frame_id})
    assert wait_for(lambda: received, timeout_s=15.0), "the late joiner got no /tf_static message"
    wait_for(lambda: len(received) > 1, timeout_s=0.5)
    assert [[t.child_frame_id for t in m.transforms] for m in received] == [[second.child_frame_id]]


def test_tf2_ros_broadcaster_uses_the_same_qos(participant):
    """On a machine with tf2_ros: its StaticTransformBroadcaster's default QoS is the one above."""
    tf2_ros = pytest.importorskip("tf2_ros", reason="tf2_ros is not on PyPI; a ROS machine has it")
    broadcaster = tf2_ros.StaticTransformBroadcaster(participant("tf2_ros_broadcaster"))
    qos = broadcaster.pub_tf.qos_profile
    assert (qos.depth, qos.history, qos.reliability, qos.durability) == (
        STATIC_BROADCASTER_QOS.depth, STATIC_BROADCASTER_QOS.history, STATIC_BROADCASTER_QOS.reliability,
        STATIC_BROADCASTER_QOS.durability)
