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
    with pytest.raises(NotImplementedError, match="not available yet"):
        DepthProcessor("graft")
    with pytest.raises(FileNotFoundError, match="restoration weights not found"):
        DepthProcessor("restore", weights=tmp_path)
    with pytest.raises(ValueError, match="weights are for the 'restore' mode"):
        DepthProcessor("passthrough", weights=tmp_path)
    with pytest.raises(ValueError, match="passthrough"):
        DepthProcessor("denoise")
    with pytest.raises(ValueError, match="min < max"):
        DepthProcessor(min_depth_m=2.0, max_depth_m=1.0)
