"""The simulated world and hand against VGN / GIGA's simulation (``docs/simulator_comparison.md``): each
test fails if a difference that makes the project's world easier than theirs comes back."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import top_down_grasp, write_box_urdf
from diffgrasp_ros.sim.hand import SimulatedHand
from diffgrasp_ros.sim.object_set import find_objects
from diffgrasp_ros.sim.pick_scene import stand_object, top_z_m
from diffgrasp_ros.sim.world import ClutterWorld

TABLE_M = 0.05

_OFFSET_BOX_URDF = """<?xml version="1.0"?>
<robot name="{name}">
  <link name="base_link">
    <contact><lateral_friction value="1.0"/></contact>
    <inertial><origin xyz="0 0 0"/><mass value="0.1"/>
      <inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
    <collision><origin xyz="0 0 {dz}"/><geometry><box size="0.04 0.04 0.08"/></geometry></collision>
  </link>
</robot>
"""

_SPHERE_URDF = """<?xml version="1.0"?>
<robot name="ball">
  <link name="base_link">
    <inertial><mass value="0.1"/><inertia ixx="2.5e-5" ixy="0" ixz="0" iyy="2.5e-5" iyz="0" izz="2.5e-5"/></inertial>
    <collision><geometry><sphere radius="0.025"/></geometry></collision>
  </link>
</robot>
"""


def side_grasp(x, y, z):
    """TCP pose approaching along +x, closing along y."""
    T = np.eye(4)
    T[:3, :3] = np.column_stack([(0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)])
    T[:3, 3] = (x, y, z)
    return T


class LiftRecordingHand(SimulatedHand):
    """Records where the objects are at the end of the lift, before the hand lets go."""

    def _remove(self):
        if self.body is not None:
            self.object_positions = {b: self.world.object_pose(b)[0] for b in self.world.object_ids}
        super()._remove()


@pytest.fixture()
def spawned_hand(empty_world):
    """The open hand at TCP (0.15, 0.15, 0.6) with the TCP frame aligned to the world's."""
    hand = SimulatedHand(empty_world)
    T = np.eye(4)
    T[:3, 3] = (0.15, 0.15, 0.6)
    hand._spawn(T)
    yield hand, T[:3, 3]
    hand._remove()


def test_physics_engine_and_table_are_vgn_s(empty_world):
    params = empty_world.p.getPhysicsEngineParameters()
    assert params["fixedTimeStep"] == pytest.approx(1.0 / 240.0)
    assert params["numSolverIterations"] == 150
    assert params["gravityAccelerationZ"] == pytest.approx(-9.81)
    assert empty_world.p.getDynamicsInfo(empty_world.table_id, -1)[1] == pytest.approx(0.5)  # plane.urdf


def test_hand_masses_and_contacts_are_vgn_s(spawned_hand):
    hand, _ = spawned_hand
    p = hand.p
    palm = p.getDynamicsInfo(hand.body, -1)
    assert palm[0] == pytest.approx(0.81) and palm[1] == pytest.approx(0.5)
    for finger in (0, 1):
        info = p.getDynamicsInfo(hand.body, finger)
        # mass, lateral friction, spinning friction, contact stiffness and damping of hand.urdf's fingers
        assert (info[0], info[1], info[7], info[9], info[8]) == pytest.approx((0.1, 1.0, 0.1, 30000.0, 1000.0))
    assert SimulatedHand.finger_force_n == 20.0


def surface_distance(p, body, link, point_tcp, tcp):
    """How far ``point_tcp`` (in the TCP frame of a hand at ``tcp``, axis-aligned) is from a link's surface."""
    probe = p.createMultiBody(0, p.createCollisionShape(p.GEOM_SPHERE, radius=0.0005),
                              basePosition=list(np.add(tcp, point_tcp)))
    distance = min((c[8] for c in p.getClosestPoints(body, probe, 0.1, linkIndexA=link)), default=0.1) + 0.0005
    p.removeBody(probe)
    return distance


# Distances as PyBullet measures them from VGN's hand.urdf (its hull shapes carry a 1 mm collision margin).
@pytest.mark.parametrize("link, point, vgn_distance_m", [
    (-1, (0.0, 0.0, 0.010), 0.0051),  # the palm's front face is 4 mm ahead of the TCP
    (-1, (0.040, 0.0, -0.050), 0.0086),  # the palm is 60 mm wide there
    (0, (0.0, 0.070, -0.002), 0.0027),  # the open finger's root reaches 66.5 mm out
    (0, (0.0, 0.045, 0.060), 0.0089),  # the fingertip is 50.2 mm ahead of the TCP
    (0, (0.0, 0.030, 0.045), 0.0089),  # the open fingers' inner faces are 80 mm apart
    (0, (0.0, 0.070, 0.045), 0.0124),  # the fingertip is 14.5 mm thick
])
def test_hand_collision_geometry_is_vgn_s(spawned_hand, link, point, vgn_distance_m):
    hand, tcp = spawned_hand
    assert vgn_distance_m - 0.001 <= surface_distance(hand.p, hand.body, link, point, tcp) <= vgn_distance_m + 1e-4


def test_the_hand_is_nowhere_smaller_than_vgn_s(spawned_hand):
    from diffgrasp_ros.sim.object_splits import shared_objects_dir

    shared = shared_objects_dir()
    if shared is None or not (shared / "panda" / "hand.urdf").is_file():
        pytest.skip("needs VGN's hand in ../shared/objects/panda")
    hand, tcp = spawned_hand
    p = hand.p
    # VGN's body at the same TCP pose: its base (inertial) frame is 22 mm behind the TCP.
    vgn = p.loadURDF(str(shared / "panda" / "hand.urdf"), list(np.add(tcp, (0.0, 0.0, -0.022))))
    p.resetBasePositionAndOrientation(vgn, list(np.add(tcp, (0.0, 0.0, -0.022))), (0, 0, 0, 1))
    for joint in (0, 1):
        p.resetJointState(vgn, joint, 0.04)
    points = np.random.default_rng(0).uniform((-0.05, -0.12, -0.10), (0.05, 0.12, 0.07), (400, 3))
    for point in points:
        for link in (-1, 0, 1):
            ours = surface_distance(p, hand.body, link, point, tcp)
            theirs = surface_distance(p, vgn, link, point, tcp)
            if ours > 0 or theirs > 0:  # depths inside both say nothing about the outlines
                assert ours <= theirs + 5e-5, (link, point)


def test_the_palm_ahead_of_the_tcp_touches_what_the_fingertips_straddle(box_world):
    # TCP 2 mm above the box top: VGN's palm front (4 mm ahead) is already in it.
    top = top_z_m(box_world, box_world.object_ids[0])
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.15, 0.15, top + 0.002), allow_contact=False)
    assert not outcome.success and outcome.reason == "collision on approach"


def test_closing_on_nothing_fails(box_world):
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.05, 0.26, 0.12))
    assert not outcome.success and outcome.width_m == pytest.approx(0.08)
    assert box_world.num_objects == 1


@pytest.mark.parametrize("thickness_m, held", [(0.004, False), (0.012, True)])
def test_a_hold_counts_only_with_more_than_a_tenth_of_the_opening(tmp_path, thickness_m, held):
    # VGN's check_success: contact after the lift and width > 0.1 × 0.08 m.
    write_box_urdf(tmp_path, "plate", (thickness_m, 0.05, 0.06))
    with ClutterWorld(find_objects(tmp_path), seed=0) as world:
        body = stand_object(world, world.objects[0])
        start = world.object_pose(body)[0]
        hand = LiftRecordingHand(world)
        outcome = hand.execute(top_down_grasp(0.15, 0.15, top_z_m(world, body) + 0.015), remove_held=False)
        assert hand.object_positions[body][2] - start[2] > 0.09  # lifted either way: the opening decides
        assert outcome.success == held
        assert outcome.reason == ("held" if held else "fingers closed on nothing")


def test_a_grasp_that_cannot_lift_the_object_fails(tmp_path):
    # 20 kg: 2 fingers × 20 N × friction 1 hold 40 N, not 196 N; the fingers slide up and off the box.
    write_box_urdf(tmp_path, "anvil", (0.04, 0.05, 0.06), mass_kg=20.0)
    with ClutterWorld(find_objects(tmp_path), seed=0) as world:
        body = stand_object(world, world.objects[0])
        start = world.object_pose(body)[0]
        hand = LiftRecordingHand(world)
        outcome = hand.execute(top_down_grasp(0.15, 0.15, top_z_m(world, body) + 0.015))
        assert hand.object_positions[body][2] - start[2] < 0.01
        assert not outcome.success and world.num_objects == 1


@pytest.mark.parametrize("grasp", ["top", "side"])
def test_the_lift_is_0_1_m_up(box_world, grasp):
    body = box_world.object_ids[0]
    start = box_world.object_pose(body)[0]
    top = top_z_m(box_world, body)
    # Side grasps (approach more than 60° from vertical) lift straight up, not back along the approach.
    T = top_down_grasp(0.15, 0.15, top + 0.015) if grasp == "top" else side_grasp(0.15 - 0.03, 0.15, 0.09)
    hand = LiftRecordingHand(box_world)
    outcome = hand.execute(T, remove_held=False)
    assert outcome.success, outcome.reason
    np.testing.assert_allclose(hand.object_positions[body] - start, (0.0, 0.0, SimulatedHand.lift_distance_m),
                               atol=0.006)
    assert SimulatedHand.lift_distance_m == 0.1 and SimulatedHand.pregrasp_distance_m == 0.05


def test_the_pile_box_is_vgn_s(empty_world):
    walls = empty_world._add_pile_box()
    lower = np.min([empty_world.p.getAABB(w)[0] for w in walls], axis=0)
    upper = np.max([empty_world.p.getAABB(w)[1] for w in walls], axis=0)
    np.testing.assert_allclose(lower[:2], (0.02, 0.02), atol=0.0015)  # box.urdf × 1.3 at (0.02, 0.02)
    np.testing.assert_allclose(upper, (0.28, 0.28, TABLE_M + 0.13), atol=0.0015)


def test_objects_rest_only_when_they_stop_turning_too(tmp_path):
    (tmp_path / "ball.urdf").write_text(_SPHERE_URDF)
    with ClutterWorld(find_objects(tmp_path), seed=0) as world:
        ball = world.add_object(world.objects[0], (0.15, 0.15, TABLE_M + 0.025), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        world.p.resetBaseVelocity(ball, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))  # spinning in place
        start = world.sim_time
        world.wait_for_objects_to_rest(timeout_s=1.0)
        assert world.sim_time - start >= 1.0  # VGN's test: |(linear, angular)| <= 0.01


@pytest.mark.parametrize("base_above_centre_m, placed", [(0.0, True), (0.01, False)])
def test_packed_objects_stand_by_their_base_as_in_vgn(tmp_path, base_above_centre_m, placed):
    # VGN puts the base half the object's height + 2 mm above the table: a base 1 cm above the bounding
    # box's centre starts the object 8 mm in the table, and the object is rejected.
    (tmp_path / "post.urdf").write_text(_OFFSET_BOX_URDF.format(name="post", dz=-base_above_centre_m))
    with ClutterWorld(find_objects(tmp_path), seed=0) as world:
        assert (world.generate("packed") > 0) == placed
