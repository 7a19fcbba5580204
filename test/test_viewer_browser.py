"""`diffgrasp view` in a real headless browser: Debian's Chromium, software WebGL (SwiftShader), Playwright."""
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from diffgrasp_ros.cli.main import main
from diffgrasp_ros.sim.camera import side_view
from diffgrasp_ros.visualisation.record import load_viewer_scene
from diffgrasp_ros.visualisation.viewer import score_colour_rgb

from test_cli import CALIBRATION, save_mm_png

CHROMIUM = Path("/usr/bin/chromium")
# As root in a closed network: no sandbox, nothing fetched in the background; WebGL in software.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader"]
VIEWPORT = {"width": 1000, "height": 700}
# Only the 3D scene: left of the panel, below the software-WebGL notice, above the axes gizmo (bottom left).
CANVAS_REGION = (slice(170, 630), slice(0, 640))


def _plan(world, tmp_path: Path, name: str) -> Path:
    depth = save_mm_png(tmp_path / f"{name}.png", world.camera.render(side_view()).depth.depth_m)
    out = tmp_path / f"{name}.json"
    main(["plan", "--depth", str(depth), "--calibration", str(CALIBRATION), "--method", "baseline", "--out", str(out)])
    return out


def _screenshot(page, grasps: Path, out: Path) -> np.ndarray:
    """The page of ``diffgrasp view grasps`` (a process of its own), once the scene has been drawn."""
    import cv2

    viewer = subprocess.Popen([sys.executable, "-m", "diffgrasp_ros.cli.main", "view", str(grasps), "--port", "0",
                               "--duration", "120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = viewer.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, f"diffgrasp view printed no address: {line!r}"
        page.goto(url.group(0))
        empty = re.search(r"\((\d+) grasps\)", line).group(1) == "0"
        page.get_by_text("no grasps" if empty else "grasps, colour = score").wait_for(timeout=60_000)
        time.sleep(4.0)  # the scene's messages follow the panel's; SwiftShader draws a few frames a second
        page.screenshot(path=str(out))
    finally:
        viewer.terminate()
        assert viewer.wait(timeout=20) == 0
    return cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)


def _score_coloured(rgb: np.ndarray) -> np.ndarray:
    """Pixels in the red → yellow → green of the scores: strong red or green, little blue (the surface is
    blue-grey, the frame grey, the background white)."""
    rgb = rgb.astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (np.maximum(r, g) > 120) & (np.maximum(r, g) - b > 80)


def _hue_deg(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return 2.0 * cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_RGB2HSV)[:, 0, 0]


def test_the_viewer_draws_the_grasps_in_their_score_colours(box_world, empty_world, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver; scripts/setup.sh --test)")
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (requirements-test.txt)")
    grasps, empty = _plan(box_world, tmp_path, "grasps"), _plan(empty_world, tmp_path, "empty")
    scene = load_viewer_scene(grasps)
    assert scene.grasps and not load_viewer_scene(empty).grasps

    with playwright.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
                                                       headless=True, viewport=VIEWPORT)
        try:
            page = browser.new_page()
            with_grasps = _screenshot(page, grasps, tmp_path / "grasps_view.png")
            without = _screenshot(page, empty, tmp_path / "empty_view.png")
        finally:
            browser.close()

    canvas, canvas_empty = with_grasps[CANVAS_REGION], without[CANVAS_REGION]
    assert np.abs(canvas.astype(int) - canvas_empty.astype(int)).max(axis=-1).astype(bool).mean() > 0.01
    coloured = _score_coloured(canvas)
    assert coloured.sum() > 300, f"{coloured.sum()} score-coloured pixels"
    assert _score_coloured(canvas_empty).sum() < 20, f"{_score_coloured(canvas_empty).sum()} in the empty scene"
    # Shading changes the brightness of a mesh, not its hue: the pixels have the hues of the grasps' scores.
    hues = _hue_deg(canvas[coloured])
    expected = _hue_deg(np.array([score_colour_rgb(g.score) for g in scene.grasps]))
    near = np.abs(hues[:, None] - expected[None, :]).min(axis=1) < 12
    assert near.mean() > 0.8, (np.percentile(hues, [5, 50, 95]), expected)
