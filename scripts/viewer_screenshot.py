"""The README's viewer picture: `diffgrasp view GRASPS` in headless Chromium (software WebGL), one screenshot.

    .venv/bin/diffgrasp demo --picks 1 --out /tmp/demo
    .venv/bin/python scripts/viewer_screenshot.py /tmp/demo/grasps.json docs/images/viewer.png

Needs Debian's Chromium (/usr/bin/chromium) and playwright (requirements-test.txt), as the browser test.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, nothing fetched in the background; WebGL in software.
FLAGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grasps", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, nargs=2, default=(900, 560), metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    viewer = subprocess.Popen([sys.executable, "-m", "diffgrasp_ros.cli.main", "view", str(args.grasps), "--port", "0",
                               "--duration", "120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", viewer.stdout.readline()).group(0)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                           viewport={"width": args.size[0], "height": args.size[1]})
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("colour = score").wait_for(timeout=60_000)
            time.sleep(5.0)  # the scene's messages follow the panel's; SwiftShader draws a few frames a second
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        viewer.terminate()
        viewer.wait(timeout=20)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
