"""The whole simulated pipeline: clutter scene -> depth -> TSDF -> baseline grasps -> simulated pick."""
import numpy as np

from diffgrasp_ros import make_planner
from diffgrasp_ros.execution import SimHandExecutor
from diffgrasp_ros.sim.camera import view_poses
from diffgrasp_ros.sim.object_set import default_objects
from diffgrasp_ros.sim.world import ClutterWorld


def clear_table(world, planner, views="side", max_failures=2):
    """One clutter-removal round; returns (attempts, successes, objects placed, objects left)."""
    executor = SimHandExecutor(world, planner.robot)
    placed = world.num_objects
    attempts = successes = failures = 0
    while world.num_objects and failures < max_failures:
        rendered = [world.camera.render(T) for T in view_poses(views)]
        plan = planner.plan_from_depth([v.depth for v in rendered], [v.T_workspace_camera for v in rendered])
        if not plan.found:
            break
        report = executor.execute(plan)
        attempts += 1
        successes += report.success
        failures = 0 if report.success else failures + 1
    return attempts, successes, placed, world.num_objects


def test_baseline_clears_simulated_clutter():
    planner = make_planner("baseline")
    totals = np.zeros(4, dtype=int)
    with ClutterWorld(default_objects("train"), seed=11) as world:
        for kind in ("pile", "packed", "pile", "packed"):
            world.generate(kind)
            totals += clear_table(world, planner)
    attempts, successes, placed, left = totals
    assert attempts >= 4
    # A working pipeline removes most objects; a broken frame convention or planner removes none.
    assert successes / attempts >= 0.5, totals
    assert (placed - left) / placed >= 0.5, totals


def test_multi_view_pipeline_picks_objects():
    planner = make_planner("baseline")
    totals = np.zeros(4, dtype=int)
    with ClutterWorld(default_objects("train"), seed=5) as world:
        for _ in range(2):
            world.generate("packed")
            totals += clear_table(world, planner, views="multi")
    attempts, successes, placed, left = totals
    assert attempts >= 2 and successes >= 1, totals
