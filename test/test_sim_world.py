import numpy as np
import pytest

from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.sim.hand import SimulatedHand
from diffgrasp_ros.sim.world import ClutterWorld

from conftest import top_down_grasp


@pytest.mark.parametrize("roll_deg", [0.0, 90.0])
def test_rendered_depth_of_the_table_matches_the_pinhole_model(empty_world, roll_deg):
    from scipy.spatial.transform import Rotation

    T = side_view()  # rolled about the optical axis too, so depth varies along image columns
    T[:3, :3] = T[:3, :3] @ Rotation.from_euler("z", roll_deg, degrees=True).as_matrix()
    view = empty_world.camera.render(T)
    depth = view.depth.depth_m
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    # Back-project the valid pixels into the workspace: they lie on the table plane z = 0.05.
    points = view.depth.to_points(stride=7)
    world = points @ view.T_workspace_camera[:3, :3].T + view.T_workspace_camera[:3, 3]
    np.testing.assert_allclose(world[:, 2], 0.05, atol=5e-5)
    # The centre pixel sees the look-at target's ray hit the table.
    centre = depth[240, 320]
    eye = view.T_workspace_camera[:3, 3]
    ray = view.T_workspace_camera[:3, 2]
    assert centre == pytest.approx((0.05 - eye[2]) / ray[2], abs=1e-3)


def test_depth_beyond_the_far_plane_is_invalid(empty_world):
    from diffgrasp_ros.geometry import look_at

    view = empty_world.camera.render(look_at((0.15, 0.15, 0.3), (0.15, 5.0, 0.6)))  # towards the sky
    assert view.depth.valid_fraction < 0.5


@pytest.mark.parametrize("kind", ["pile", "packed"])
def test_scenes_are_deterministic_per_seed_and_stay_in_the_workspace(box_objects, kind):
    def poses(seed):
        with ClutterWorld(box_objects, seed=seed) as world:
            count = world.generate(kind)
            positions = [world.p.getBasePositionAndOrientation(b)[0] for b in world.object_ids]
            assert all(world.workspace.inside(np.asarray(p))[0] for p in positions)
            return count, np.asarray(positions)

    count_a, pos_a = poses(7)
    count_b, pos_b = poses(7)
    assert count_a == count_b and count_a >= 1
    np.testing.assert_allclose(pos_a, pos_b, atol=1e-9)
    if kind == "packed":
        assert count_a <= 5


def test_pile_object_count_follows_poisson_plus_one(box_objects):
    with ClutterWorld(box_objects, seed=3) as world:
        expected = np.random.default_rng(3).poisson(4) + 1
        placed = world.generate("pile")
        assert 1 <= placed <= expected


def test_unknown_scene_kind_is_rejected(empty_world):
    with pytest.raises(ValueError, match="pile"):
        empty_world.generate("heap")


def test_world_needs_objects():
    with pytest.raises(ValueError, match="at least one object"):
        ClutterWorld([])


def test_top_down_grasp_on_a_box_lifts_and_removes_it(box_world):
    body = box_world.object_ids[0]
    # The box is 4 cm along x: close along x, fingertips 3.5 cm below the 11 cm top.
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.15, 0.15, 0.11 + 0.015))
    assert outcome.success, outcome.reason
    assert outcome.object_id == body
    assert 0.03 < outcome.width_m < 0.05
    assert box_world.num_objects == 0


def test_grasp_in_empty_air_fails_and_keeps_the_object(box_world):
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.05, 0.05, 0.12))
    assert not outcome.success
    assert box_world.num_objects == 1


def test_grasp_through_the_object_collides_at_pre_grasp(box_world):
    # Pre-grasp inside the box: the hand spawns in contact.
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.15, 0.15, 0.03))
    assert not outcome.success and outcome.reason == "collision at pre-grasp"
    assert box_world.num_objects == 1


def test_grasp_across_the_wide_side_fails(box_world):
    # VGN's fingertips reach 50 mm past the TCP: at 0.17 m they stay ~1 cm above the box top.
    outcome = SimulatedHand(box_world).execute(top_down_grasp(0.15, 0.15, 0.17))
    assert not outcome.success  # nothing between the fingers
