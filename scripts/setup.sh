#!/usr/bin/env bash
# Sets up .venv/ at the repository root from nothing; safe to re-run (skips what is already done).
#   scripts/setup.sh          runtime dependencies + the diffgrasp package (editable)
#   scripts/setup.sh --test   the same plus the test tools and ROS 2 (below)
#   scripts/setup.sh --ros    runtime dependencies plus ROS 2 from PyPI wheels and the interface packages
#                             built from ros/interfaces (scripts/setup_ros.sh; for machines without ROS)
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements.txt
[ "${1:-}" = "--test" ] && requirements=requirements-test.txt
with_ros=false
case "${1:-}" in --test|--ros) with_ros=true ;; esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# System libraries: libusb for pyrealsense2, OpenMP and GL for open3d, venv for Debian's Python.
missing=()
for pkg in libusb-1.0-0 libgomp1 libgl1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# Tests only: Debian's Chromium, the browser test/test_viewer_browser.py drives headless (through Playwright).
[ "${1:-}" = "--test" ] && { dpkg -s chromium >/dev/null 2>&1 || missing+=(chromium); }
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv

# Reinstall only when the pinned requirements or the package metadata changed.
stamp=.venv/.diffgrasp-setup-$(cat requirements*.txt setup.py setup.cfg | sha256sum | cut -c1-16)-$(basename "$requirements" .txt)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$requirements"
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi

if [ "$with_ros" = true ]; then bash scripts/setup_ros.sh; fi
