"""Batched reachability IK throughput per robot, medians over repeated runs on this machine.

    .venv/bin/python benchmarks/ik_throughput.py [--grasps 200] [--runs 5] [--threads 1]

For each embodiment: random grasps in the workspace (centres uniform in the grasp bounds, approach
within 60 deg of straight down, any rotation about it), checked for grasp + pre-grasp (0.10 m back)
reachability with ``ReachabilityChecker.check``. Prints grasps/s (grasp and pre-grasp IK both count
as one grasp) and the fraction reachable. A warm-up run is excluded.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from diffgrasp_ros.execution.reachability import ReachabilityChecker
from diffgrasp_ros.robots import load_arm, robot_names
from diffgrasp_ros.scene import STANDARD_WORKSPACE


def random_workspace_grasps(n: int, rng: np.random.Generator, max_tilt_rad: float = np.radians(60)) -> np.ndarray:
    ws = STANDARD_WORKSPACE
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 3] = rng.uniform(ws.grasp_lower_m, ws.grasp_upper_m, (n, 3))
    # Approach (+z) tilted up to max_tilt from straight down, uniform on that spherical cap.
    cos_tilt = rng.uniform(np.cos(max_tilt_rad), 1.0, n)
    azimuth = rng.uniform(0, 2 * np.pi, n)
    down = Rotation.from_euler("x", np.pi)
    tilt = Rotation.from_rotvec(np.stack([np.cos(azimuth), np.sin(azimuth), np.zeros(n)], 1)
                                * np.arccos(cos_tilt)[:, None])
    spin = Rotation.from_euler("z", rng.uniform(0, 2 * np.pi, n))
    T[:, :3, :3] = (tilt * down * spin).as_matrix()
    return T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grasps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.grasps} random workspace grasps per run, {args.runs} runs, {args.threads} thread(s)")
    print(f"{'robot':<10} {'grasps/s':>9} {'ms/grasp':>9} {'reachable':>10}")
    for name in robot_names():
        arm = load_arm(name)
        checker = ReachabilityChecker(arm)
        checker.check(arm.T_base_workspace @ random_workspace_grasps(8, np.random.default_rng(99)))  # warm-up
        rates, fractions = [], []
        for run in range(args.runs):
            goals = arm.T_base_workspace @ random_workspace_grasps(args.grasps, np.random.default_rng(run))
            start = time.perf_counter()
            result = checker.check(goals)
            rates.append(args.grasps / (time.perf_counter() - start))
            fractions.append(result.fraction)
        rate = statistics.median(rates)
        print(f"{name:<10} {rate:>9.0f} {1e3 / rate:>9.2f} {statistics.median(fractions):>10.1%}")


if __name__ == "__main__":
    main()
