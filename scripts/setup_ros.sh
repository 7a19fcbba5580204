#!/usr/bin/env bash
# Installs ROS 2 (Kilted, from PyPI wheels: rclpy + message packages, requirements-ros.txt) into .venv/
# and builds the interface packages the project needs but PyPI lacks (ros/interfaces/: the GraspPlanning
# subset of moveit_msgs, object_recognition_msgs/ObjectType, tf2_msgs/TFMessage) into it with cmake. For
# machines WITHOUT a ROS installation; on a ROS machine use the distribution's rclpy, moveit_msgs and
# tf2_msgs instead.
# Run by `scripts/setup.sh --test` and `scripts/setup.sh --ros`; safe to re-run: each stage is skipped
# when a stamp in .venv/ says it is done for the same inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=$PWD/.venv
PY=$VENV/bin/python
start=$SECONDS

# A guard inherited from another venv's Python would stop this venv's bootstrap (see ros/interfaces/README.md).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
hash_of() { sha256sum | cut -c1-16; }

[ -x "$PY" ] || python3 -m venv "$VENV"

# --- System tools for the interface build -------------------------------------------------------------
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$PYINC/Python.h" ] || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup_ros: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -f "$PYINC/Python.h" ]; then
  echo "setup_ros: no Python headers at $PYINC (needed to build the message packages)" >&2
  exit 1
fi

# --- ROS wheels --------------------------------------------------------------------------------------
# The exact pins of requirements.txt (numpy 1.26.4, torch 2.13.0, ...) are constraints: nothing here may
# move them. Lines with extras or markers are left out (pip rejects them in a constraints file).
constraints=$(mktemp)
build_root=$(mktemp -d)
trap 'rm -rf "$constraints" "$build_root"' EXIT
grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*==[^[:space:];#]+[[:space:]]*$' requirements.txt > "$constraints" || true

pip_stamp=.venv/.diffgrasp-ros-pip-$(cat requirements-ros.txt "$constraints" | hash_of)
if [ ! -f "$pip_stamp" ]; then
  echo "setup_ros: installing the ROS 2 wheels into .venv (requirements-ros.txt)"
  "$PY" -m pip install -q -r requirements-ros.txt -c "$constraints"
  "$PY" -c 'import rclpy' || { echo "setup_ros: rclpy does not import after the install" >&2; exit 1; }
  rm -f .venv/.diffgrasp-ros-pip-*
  touch "$pip_stamp"
fi

# --- Fix the wheels' CMake files ---------------------------------------------------------------------
# The message wheels were built in a manylinux image and their exported CMake targets name that image's
# Python and numpy include directories (/opt/python/cp311-cp311/...); point them at this venv's. Also
# re-points a numpy include directory written by an earlier run (numpy 1 has numpy/core/include, numpy 2
# numpy/_core/include). Rewrites only files that change; re-done after any reinstall of a wheel.
"$PY" - "$VENV/share" <<'PYEOF'
import re, sys, sysconfig
from pathlib import Path
import numpy
py_include, np_include = sysconfig.get_paths()["include"], numpy.get_include()
changed = 0
for path in Path(sys.argv[1]).rglob("*.cmake"):
    text = path.read_text()
    if "/opt/python/" not in text and "/numpy/" not in text:
        continue
    new = text.replace("/opt/python/cp311-cp311/include/python3.11", py_include)
    new = re.sub(r'[^;" \n]*/site-packages/numpy/_?core/include', np_include.replace("\\", "/"), new)
    if new != text:
        path.write_text(new)
        changed += 1
left = sorted({m for p in Path(sys.argv[1]).rglob("*.cmake") for m in re.findall(r'/opt/python/[^;" \n]*', p.read_text())})
if changed:
    print(f"setup_ros: pointed {changed} CMake files of the wheels at this venv's Python/numpy headers")
if left:
    print("setup_ros: warning: CMake files in .venv/share still name /opt/python/ paths:", *left, sep="\n  ",
          file=sys.stderr)
PYEOF

# --- Interface packages (ros/interfaces) -------------------------------------------------------------
# Rebuilt when their sources, the ROS pins, this script, Python or numpy change (the Python bindings are
# compiled against numpy's headers).
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
packages=(object_recognition_msgs moveit_msgs tf2_msgs)  # in dependency order
inputs_hash=$({ for pkg in "${packages[@]}"; do find "ros/interfaces/$pkg" -type f; done | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done
                cat requirements-ros.txt scripts/setup_ros.sh; "$PY" -V
                "$PY" -c 'import numpy; print("numpy", numpy.__version__)'; } | hash_of)
build_stamp=.venv/.diffgrasp-ros-interfaces-$inputs_hash
manifests=.venv/.diffgrasp-ros-interfaces
installed=true
for pkg in "${packages[@]}"; do
  [ -f "$VENV/share/$pkg/package.xml" ] && [ -f "$SITE/$pkg/__init__.py" ] || installed=false
done
if [ -f "$build_stamp" ] && [ "$installed" = true ]; then
  echo "setup_ros: ROS 2 wheels and interface packages are up to date ($((SECONDS - start)) s)"
  exit 0
fi

echo "setup_ros: building ${packages[*]} into .venv (about a minute)"
rm -f .venv/.diffgrasp-ros-interfaces-*
# Remove what an earlier build installed, so a message dropped from the sources does not linger.
if [ -d "$manifests" ]; then
  for m in "$manifests"/*.txt; do
    [ -f "$m" ] || continue
    while IFS= read -r f; do case "$f" in "$VENV"/*) rm -f "$f" ;; esac; done < "$m"
  done
  rm -rf "$manifests"
fi
mkdir -p "$manifests"
jobs=$(nproc 2>/dev/null || echo 2)
for pkg in "${packages[@]}"; do
  t0=$SECONDS
  log=$build_root/$pkg.log
  if ! env AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" \
       sh -c 'cmake -S "$1" -B "$2" -DCMAKE_INSTALL_PREFIX="$3" -DCMAKE_BUILD_TYPE=Release \
                -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$4" &&
              cmake --build "$2" -j "$5" && cmake --install "$2"' _ \
       "ros/interfaces/$pkg" "$build_root/$pkg" "$VENV" "$PY" "$jobs" > "$log" 2>&1; then
    echo "setup_ros: building $pkg failed; the end of its log:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  cp "$build_root/$pkg/install_manifest.txt" "$manifests/$pkg.txt"
  echo "setup_ros:   $pkg built and installed in $((SECONDS - t0)) s"
done

"$PY" -c 'from moveit_msgs.srv import GraspPlanning; from moveit_msgs.msg import Grasp, MoveItErrorCodes
from object_recognition_msgs.msg import ObjectType; from tf2_msgs.msg import TFMessage
GraspPlanning.Request(); Grasp(); ObjectType(); TFMessage()' || {
  echo "setup_ros: the built interface packages do not import" >&2; exit 1; }
touch "$build_stamp"
echo "setup_ros: done in $((SECONDS - start)) s"
