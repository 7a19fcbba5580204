import numpy as np
import pytest

from diffgrasp_ros.camera.frame import DepthFrame
from diffgrasp_ros.camera.intrinsics import SIM_CAMERA
from diffgrasp_ros.sim.noise import DexNoise, apply_depth_noise, dex_noise


def flat_frame(depth_m: float = 0.6, holes: bool = False) -> DepthFrame:
    depth = np.full((SIM_CAMERA.height, SIM_CAMERA.width), depth_m, np.float32)
    if holes:
        depth[100:140, 200:260] = 0.0
    return DepthFrame(depth, SIM_CAMERA, stamp=0.0)


def lag_correlation(field: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(field[:, :-lag].ravel(), field[:, lag:].ravel())[0, 1])


def test_dex_gamma_factor_has_mean_one_and_the_published_spread():
    rng = np.random.default_rng(0)
    depth = np.ones((4, 4))
    factors = [dex_noise(depth, rng, DexNoise(field_probability=0.0))[0, 0] for _ in range(4000)]
    # Gamma(k = 1000, theta = 0.001): mean k theta = 1, std sqrt(k) theta = 0.0316.
    assert np.mean(factors) == pytest.approx(1.0, abs=0.002)
    assert np.std(factors) == pytest.approx(np.sqrt(1000) * 0.001, rel=0.05)


def test_dex_additive_field_is_5mm_gaussian_drawn_at_quarter_resolution():
    rng = np.random.default_rng(1)
    depth = np.full((480, 640), 0.6)
    exact_gain = DexNoise(gamma_shape=1e12, gamma_scale=1e-12, field_probability=1.0)  # factor 1 (+-1e-6)
    fields = [dex_noise(depth, rng, exact_gain) - depth for _ in range(10)]
    # Bilinear x4 upsampling of white noise keeps 0.65625^2 of its variance (mean over the four
    # sub-pixel phases of the squared interpolation weights, per axis): 5 mm -> 3.28 mm.
    assert np.std(fields) == pytest.approx(0.005 * 0.65625, rel=0.05)
    field = fields[0]
    assert lag_correlation(field, 1) > 0.85  # smooth between neighbouring pixels ...
    assert abs(lag_correlation(field, 8)) < 0.05  # ... independent two coarse cells apart
    assert abs(lag_correlation(field.T, 8)) < 0.05


def test_dex_field_is_added_about_half_of_the_time():
    rng = np.random.default_rng(2)
    depth = np.full((48, 64), 0.6)
    with_field = [np.ptp(dex_noise(depth, rng)) > 0 for _ in range(600)]
    assert np.mean(with_field) == pytest.approx(0.5, abs=0.07)


@pytest.mark.parametrize("model", ["dex", "trans", "norm", "dropout"])
def test_noise_is_reproducible_per_seed_and_keeps_holes(model):
    frame = flat_frame(holes=True)
    a = apply_depth_noise(frame, model, np.random.default_rng(7)).depth_m
    b = apply_depth_noise(frame, model, np.random.default_rng(7)).depth_m
    c = apply_depth_noise(frame, model, np.random.default_rng(8)).depth_m
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == frame.depth_m.shape
    assert np.all(a[110:130, 215:245] == 0.0)  # well inside the hole: stays invalid


def test_gaussian_and_dropout_statistics():
    frame = flat_frame(0.6)
    norm = apply_depth_noise(frame, "norm", np.random.default_rng(3)).depth_m - 0.6
    assert np.std(norm) == pytest.approx(0.005, rel=0.02) and abs(np.mean(norm)) < 1e-4
    dropped = apply_depth_noise(frame, "dropout", np.random.default_rng(3)).depth_m == 0.0
    assert dropped.mean() == pytest.approx(0.05, abs=0.005)


def test_translational_noise_only_moves_depth_values():
    depth = np.tile(np.linspace(0.5, 0.9, 640, dtype=np.float32), (480, 1))
    noisy = apply_depth_noise(DepthFrame(depth, SIM_CAMERA, stamp=0.0), "trans", np.random.default_rng(4)).depth_m
    assert np.isin(noisy, depth).all()  # every value comes from some pixel
    moved = noisy != depth
    assert 0.3 < moved.mean() < 0.9  # std 1 px: most pixels round to a neighbour, many stay


def test_no_noise_is_the_identity_and_unknown_models_are_rejected():
    frame = flat_frame()
    assert apply_depth_noise(frame, "none", np.random.default_rng(0)) is frame
    with pytest.raises(ValueError, match="dex"):
        apply_depth_noise(frame, "kinect", np.random.default_rng(0))
