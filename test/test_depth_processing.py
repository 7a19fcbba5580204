import numpy as np
import pytest

from diffgrasp_ros.camera import SIM_CAMERA, DepthError, DepthFrame
from diffgrasp_ros.depth import DepthProcessor


def test_passthrough_clips_to_the_working_range():
    depth = np.full((480, 640), 0.6, np.float32)
    depth[0, :10] = 0.05  # too near
    depth[1, :10] = 3.0  # too far
    out = DepthProcessor(min_depth_m=0.1, max_depth_m=2.0).process(DepthFrame(depth, SIM_CAMERA))
    assert out.valid_mask.sum() == 480 * 640 - 20
    np.testing.assert_array_equal(out.depth_m[out.valid_mask], 0.6)


def test_all_invalid_and_out_of_range_frames_are_rejected_with_a_reason():
    processor = DepthProcessor()
    with pytest.raises(DepthError, match="no valid pixels"):
        processor.process(DepthFrame(np.zeros((480, 640), np.float32), SIM_CAMERA))
    with pytest.raises(DepthError, match="depth scale"):  # millimetres passed as metres
        processor.process(DepthFrame(np.full((480, 640), 600.0, np.float32), SIM_CAMERA))


def test_modes(tmp_path):
    with pytest.raises(FileNotFoundError, match="noise model weights not found"):
        DepthProcessor("graft", weights=tmp_path)
    with pytest.raises(FileNotFoundError, match="restoration weights not found"):
        DepthProcessor("restore", weights=tmp_path)
    with pytest.raises(ValueError, match="weights are for the 'restore' and 'graft' modes"):
        DepthProcessor("passthrough", weights=tmp_path)
    with pytest.raises(ValueError, match="passthrough"):
        DepthProcessor("denoise")
    with pytest.raises(ValueError, match="min < max"):
        DepthProcessor(min_depth_m=2.0, max_depth_m=1.0)


def test_graft_keeps_metric_depth_where_it_stays_valid():
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.object_set import default_objects
    from diffgrasp_ros.sim.world import ClutterWorld

    with ClutterWorld(default_objects("val"), seed=3) as world:
        world.generate("packed", 4)
        clean = world.camera.render(side_view()).depth
    processor = DepthProcessor("graft", seed=1)
    grafted = processor.process(clean)
    again = DepthProcessor("graft", seed=1).process(clean)
    np.testing.assert_array_equal(grafted.depth_m, again.depth_m)  # seeded
    both = grafted.valid_mask & clean.valid_mask
    invalid_ratio = 1.0 - grafted.valid_mask.sum() / clean.valid_mask.sum()
    assert 0.0 < invalid_ratio < 0.2  # holes appear, most of the frame survives
    error = np.abs(grafted.depth_m[both] - clean.depth_m[both])
    assert error.max() > 0.0 and np.median(error) < 0.005  # noise, not a different geometry
