"""The simulated active-stereo D435: its errors must emerge where a real one's do."""
import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffgrasp_ros.camera.frame import DepthFrame
from diffgrasp_ros.geometry import camera_on_sphere, make_transform
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.sim.object_set import find_objects
from diffgrasp_ros.sim.pick_scene import write_box_urdf
from diffgrasp_ros.sim.stereo import D435Config, D435Simulator, SGBMParams
from diffgrasp_ros.sim.world import ClutterWorld

TABLE_Z_M = 0.05


@pytest.fixture(scope="module")
def box_scene(tmp_path_factory):
    """A 6 x 6 x 10 cm box standing at the workspace centre, seen from the side view."""
    folder = tmp_path_factory.mktemp("stereo_box")
    write_box_urdf(folder, "tall_box", (0.06, 0.06, 0.10))
    world = ClutterWorld(find_objects(folder), seed=0)
    box = world.add_object(world.objects[0], (0.15, 0.15, TABLE_Z_M + 0.05), Rotation.from_euler("z", 0.5), 1.0)
    yield world, box
    world.close()


def table_depth_m(T_workspace_camera: np.ndarray, intrinsics) -> np.ndarray:
    """Depth of the table plane along every pixel's ray, as if nothing stood on it."""
    v, u = np.mgrid[0:intrinsics.height, 0:intrinsics.width]
    rays = np.dstack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, np.ones(u.shape)])
    ray_z_workspace = rays @ T_workspace_camera[2, :3]
    return (TABLE_Z_M - T_workspace_camera[2, 3]) / ray_z_workspace


def box_stats(frame, box: int) -> tuple[float, np.ndarray]:
    """Invalid ratio over the box's pixels and the valid ones' depth errors (m) against the truth."""
    on_box = frame.body_ids == box
    valid = on_box & frame.valid_mask
    return 1.0 - valid.sum() / on_box.sum(), (frame.depth_m - frame.clean_depth_m)[valid]


def test_frame_layout_matches_the_simulated_camera(box_scene):
    world, box = box_scene
    frame = D435Simulator(world.p).render(side_view())
    assert frame.depth_m.shape == frame.ir_left.shape == frame.ir_right.shape == (480, 640)
    assert frame.depth_m.dtype == np.float32 and frame.ir_left.dtype == np.uint8
    # The left IR imager is the simulated depth camera: the clean depth is its render, pixel for pixel.
    np.testing.assert_array_equal(frame.clean_depth_m, world.camera.render(side_view()).depth.depth_m)
    assert box in frame.body_ids and frame.valid_mask.mean() > 0.6


def test_depth_error_on_a_diffuse_plane_is_millimetres_and_grows_with_distance(empty_world):
    simulator = D435Simulator(empty_world.p)
    rmse_m = {}
    for distance_m in (0.6, 1.2):
        frame = simulator.render(camera_on_sphere((0.15, 0.15, TABLE_Z_M), distance_m, np.deg2rad(40.0), 0.3))
        centre = np.s_[80:400, 160:560]  # clear of the left band the right imager cannot see
        valid = frame.valid_mask[centre]
        error_m = (frame.depth_m - frame.clean_depth_m)[centre][valid]
        rmse_m[distance_m] = float(np.sqrt(np.mean(error_m**2)))
        print(f"table at {distance_m} m: {valid.mean():.1%} valid, RMSE {1000 * rmse_m[distance_m]:.2f} mm")
        assert valid.mean() > 0.97
    assert rmse_m[0.6] < 0.004
    assert rmse_m[1.2] > 2.0 * rmse_m[0.6]  # stereo error grows as z²


def test_invalid_pixels_concentrate_in_the_band_the_right_imager_cannot_see(box_scene):
    world, box = box_scene
    config = D435Config()
    T_workspace_left = side_view()
    frame = D435Simulator(world.p, config).render(T_workspace_left)
    T_workspace_right = T_workspace_left @ make_transform(translation=(config.baseline_m, 0.0, 0.0))
    right_depth_m = world.camera.render(T_workspace_right).depth.depth_m
    # Where each left pixel's point lands in the right image, and whether something nearer hides it there.
    z = frame.clean_depth_m.astype(np.float64)
    v, u = np.nonzero(z > 0.0)
    u_right = np.round(u - config.focal_baseline_px_m / z[v, u]).astype(int)
    inside = u_right >= 0
    hidden = np.zeros(z.shape, bool)
    hidden[v[inside], u[inside]] = right_depth_m[v[inside], u_right[inside]] < z[v[inside], u[inside]] - 0.005
    outside = np.zeros(z.shape, bool)
    outside[v[~inside], u[~inside]] = True

    invalid = (z > 0.0) & ~frame.valid_mask
    columns = np.nonzero(frame.body_ids == box)[1]
    assert np.nonzero(hidden)[1].mean() < columns.mean()  # the band is on the box's left
    # On the band's boundary columns the matcher's edge fattening decides; inside it nothing can match.
    interior = hidden & ~cv2.dilate((~hidden).astype(np.uint8), np.ones((1, 3), np.uint8)).astype(bool)
    # Far from depth edges, the band and the image's left margin, nearly every pixel is valid.
    edges = np.abs(np.gradient(z, axis=1)) + np.abs(np.gradient(z, axis=0)) > 0.01
    near = cv2.dilate((hidden | outside | edges).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    elsewhere = (z > 0.0) & ~near & (z < 1.0)
    print(f"invalid: {invalid[hidden].mean():.1%} of the occlusion band ({hidden.sum()} px), "
          f"{invalid[interior].mean():.1%} of its interior, {invalid[outside].mean():.1%} of the left margin, "
          f"{invalid[elsewhere].mean():.1%} elsewhere")
    assert invalid[hidden].mean() > 0.7 and invalid[interior].mean() > 0.8
    assert invalid[outside].mean() > 0.9
    assert invalid[elsewhere].mean() < 0.02


def test_dark_material_raises_the_invalid_ratio(box_scene):
    world, box = box_scene
    simulator = D435Simulator(world.p)
    diffuse_invalid, _ = box_stats(simulator.render(side_view()), box)
    dark_invalid, _ = box_stats(simulator.render(side_view(), {box: "dark"}), box)
    print(f"invalid on the box: diffuse {diffuse_invalid:.1%}, dark {dark_invalid:.1%}")
    assert diffuse_invalid < 0.1
    assert dark_invalid > diffuse_invalid + 0.2


def test_transparent_object_reads_the_background_behind_it(box_scene):
    world, box = box_scene
    colours = world.p.getVisualShapeData(box)
    simulator = D435Simulator(world.p)
    diffuse_invalid, _ = box_stats(simulator.render(side_view()), box)
    frame = simulator.render(side_view(), {box: "transparent"})
    on_box = frame.body_ids == box
    valid = on_box & frame.valid_mask
    background_m = table_depth_m(frame.T_workspace_camera, frame.intrinsics)
    to_background_m = np.abs(frame.depth_m - background_m)[valid]
    to_surface_m = np.abs(frame.depth_m - frame.clean_depth_m)[valid]
    print(f"transparent box: {1 - valid.sum() / on_box.sum():.1%} invalid (diffuse {diffuse_invalid:.1%}); "
          f"valid pixels {1000 * np.median(to_background_m):.1f} mm from the table behind, "
          f"{1000 * np.median(to_surface_m):.1f} mm from the box's surface")
    assert valid.sum() > 0.5 * on_box.sum()
    # Refraction shifts the background a few pixels, so its depth is a few millimetres off.
    assert np.median(to_background_m) < 0.01 and np.median(to_surface_m) > 0.03
    assert np.mean(to_background_m < to_surface_m) > 0.9
    assert 1.0 - valid.sum() / on_box.sum() > diffuse_invalid  # refraction and glints leave holes
    assert world.p.getVisualShapeData(box) == colours  # hidden for the render, then restored


def test_sdk_units_and_invalid_encoding(box_scene):
    world, _ = box_scene
    frame = D435Simulator(world.p).render(side_view())
    raw = frame.to_sdk_units()
    assert raw.dtype == np.uint16 and raw.shape == (480, 640)
    np.testing.assert_array_equal(raw == 0, frame.depth_m == 0.0)
    round_trip = DepthFrame.from_raw(raw, frame.intrinsics, frame.depth_unit_m)
    np.testing.assert_allclose(round_trip.depth_m, frame.depth_m, atol=1e-6)
    assert frame.to_depth_frame().valid_fraction == pytest.approx(frame.valid_mask.mean())


def test_sensor_noise_is_seeded(box_scene):
    world, _ = box_scene
    first, again = (D435Simulator(world.p, seed=3).render(side_view()) for _ in range(2))
    np.testing.assert_array_equal(first.depth_m, again.depth_m)
    other = D435Simulator(world.p, seed=4).render(side_view())
    assert not np.array_equal(first.ir_left, other.ir_left)


def test_bad_input_is_rejected_clearly(box_scene):
    world, box = box_scene
    simulator = D435Simulator(world.p)
    sheared = side_view()
    sheared[:3, :3] *= 1.1
    with pytest.raises(ValueError, match="rigid"):
        simulator.render(sheared)
    with pytest.raises(ValueError, match="unknown material 'glass'.*transparent"):
        simulator.render(side_view(), {box: "glass"})
    with pytest.raises(ValueError, match="no body 999"):
        simulator.render(side_view(), {999: "dark"})
    with pytest.raises(ValueError, match="multiple of 16"):
        D435Config(sgbm=SGBMParams(num_disparities=100))
    with pytest.raises(ValueError, match="min_depth_m < max_depth_m"):
        D435Config(min_depth_m=2.0, max_depth_m=1.0)


def test_specular_highlights_break_matching(box_scene):
    world, box = box_scene
    simulator = D435Simulator(world.p)
    diffuse = simulator.render(side_view())
    frame = simulator.render(side_view(), {box: "specular"})
    specular_invalid, _ = box_stats(frame, box)
    # Around saturated highlights (which differ between the views) depth is missing or wrong.
    highlights = (frame.body_ids == box) & (cv2.dilate(frame.ir_left, np.ones((7, 7), np.uint8)) == 255)
    wrong = np.abs(frame.depth_m - frame.clean_depth_m) > 0.01
    broken = (~frame.valid_mask | wrong)[highlights].mean()
    print(f"specular box: {specular_invalid:.1%} invalid (diffuse {box_stats(diffuse, box)[0]:.1%}), "
          f"{broken:.1%} of {highlights.sum()} px around highlights missing or > 1 cm off")
    assert specular_invalid > box_stats(diffuse, box)[0] + 0.2
    assert highlights.sum() > 100 and broken > 0.5


def test_transparent_links_of_several_colours_are_refused(empty_world, tmp_path):
    urdf = tmp_path / "two_tone.urdf"
    visual = '<visual><origin xyz="0 0 {z}"/><geometry><box size="0.05 0.05 0.05"/></geometry>' \
             '<material name="m{z}"><color rgba="{rgb} 1"/></material></visual>'
    inertial = '<inertial><mass value="0.1"/>' \
               '<inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>'
    urdf.write_text(f'<robot name="two_tone"><link name="base">{inertial}{visual.format(z=0.0, rgb="1 0 0")}'
                    f'{visual.format(z=0.05, rgb="0 0 1")}</link></robot>')
    body = empty_world.p.loadURDF(str(urdf), (0.15, 0.15, 0.08))
    with pytest.raises(ValueError, match="different colours"):
        D435Simulator(empty_world.p).render(side_view(), {body: "transparent"})
