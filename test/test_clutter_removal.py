import json
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import top_down_grasp, write_box_urdf
from diffgrasp_ros.cli.main import main
from diffgrasp_ros.evaluation import BenchmarkSettings, MethodSummary, RoundResult, clear_table, run_benchmark
from diffgrasp_ros.evaluation.clutter_removal import END_CLEAR, END_FAILURES, END_NO_GRASP, attempt_outcome
from diffgrasp_ros.grasping import Grasp, GraspPlanner, PlanResult, make_planner
from diffgrasp_ros.robots import get_robot
from diffgrasp_ros.sim.object_set import default_objects
from diffgrasp_ros.sim.world import ClutterWorld


class ScriptedPlanner(GraspPlanner):
    """Plays a script: "pick" grasps the first object from the ground truth, "air" grasps nothing,
    "none" finds no grasp."""

    name = "scripted"

    def __init__(self, world: ClutterWorld, script: list[str]):
        super().__init__(get_robot("franka"))
        self.world, self.script = world, list(script)

    def _plan(self, scene) -> PlanResult:
        action = self.script.pop(0)
        if action == "none":
            return PlanResult([], self.name, message="no grasp found: scripted")
        if action == "pick":
            x, y, _ = self.world.p.getBasePositionAndOrientation(self.world.object_ids[0])[0]
            T = top_down_grasp(x, y, 0.11 + 0.015)  # 6 cm boxes: fingertips 3.5 cm below the top
        else:
            T = top_down_grasp(0.05, 0.26, 0.15)
        return PlanResult([Grasp(T, 0.08, SCRIPTED_SCORES[action], self.name)], self.name)


SCRIPTED_SCORES = {"pick": 0.9, "air": 0.3}


@pytest.fixture()
def three_boxes(box_objects):
    world = ClutterWorld(box_objects, seed=0)
    for x, y in ((0.08, 0.08), (0.15, 0.22), (0.22, 0.10)):
        world.add_object(box_objects[0], (x, y, 0.05 + 0.031), Rotation.identity(), 1.0)
    world.wait_for_objects_to_rest()
    yield world
    world.close()


@pytest.mark.parametrize("script, attempts, successes, end", [
    (["pick", "pick", "pick"], 3, 3, END_CLEAR),
    (["pick", "air", "pick", "air", "air"], 5, 2, END_FAILURES),
    (["air", "pick", "none"], 2, 1, END_NO_GRASP),
])
def test_a_round_ends_as_the_protocol_says(three_boxes, script, attempts, successes, end):
    settings = BenchmarkSettings("packed", rounds=1)
    planner = ScriptedPlanner(three_boxes, script)
    result = clear_table(three_boxes, planner, settings, np.random.default_rng(0))
    assert (result.attempts, result.successes, result.end) == (attempts, successes, end)
    assert len(result.planning_s) == len(script)  # one planning call per perception
    assert three_boxes.num_objects == 3 - successes
    executed = [action for action in script if action != "none"]
    assert result.attempt_scores == [SCRIPTED_SCORES[a] for a in executed]
    assert result.attempt_successes == [a == "pick" for a in executed]
    assert [o == "held" for o in result.attempt_outcomes] == result.attempt_successes


def test_attempt_outcomes_count_together_without_their_figures():
    from types import SimpleNamespace as Report

    def failed(reason):
        return Report(outcome=Report(reason=reason))

    assert attempt_outcome(failed("object rose 0.034 m, less than half the 0.1 m lift")) == \
        attempt_outcome(failed("object rose 0.002 m, less than half the 0.1 m lift")) == \
        "object rose, less than half the lift"
    assert attempt_outcome(failed("held by index, middle only, not thumb against a finger")) == \
        "held without the thumb against a finger"
    assert attempt_outcome(failed("nothing held after lift")) == "nothing held after lift"
    assert attempt_outcome(Report(outcome=None, reachable=0)) == "no grasp reachable"
    assert attempt_outcome(Report(outcome=None, reachable=3)) == "no pick planned"


def test_a_threshold_sweep_stops_each_round_at_its_first_attempt_below_it():
    from dataclasses import asdict

    from diffgrasp_ros.evaluation.thresholds import calibration, rates_at

    rounds = [asdict(RoundResult(0, 0, 5, 4, 3, END_NO_GRASP, (0.1,) * 5, 1.0, attempt_scores=(0.9, 0.2, 0.8, 0.7),
                                 attempt_successes=(True, False, True, True))),
              asdict(RoundResult(1, 1, 4, 2, 1, END_FAILURES, (0.1,) * 2, 1.0, attempt_scores=(0.6, 0.1),
                                 attempt_successes=(True, False)))]
    unchanged = rates_at(rounds, 0.0)
    assert (unchanged.attempts, unchanged.successes, unchanged.objects_placed) == (6, 4, 9)
    assert unchanged.rounds_ended_by_threshold == 0
    stricter = rates_at(rounds, 0.5)  # round 0 stops before its 0.2, round 1 before its 0.1
    assert (stricter.attempts, stricter.successes, stricter.rounds_ended_by_threshold) == (2, 2, 2)
    assert stricter.gsr == 1.0 and stricter.dr == pytest.approx(2 / 9)
    assert rates_at(rounds, 0.95).attempts == 0 and rates_at(rounds, 0.95).gsr is None
    assert calibration(rounds, [0.0, 0.5, 1.0]) == [(0.0, 0.5, 2, 0.0), (0.5, 1.0, 4, 1.0)]
    rounds[0]["attempt_scores"] = []  # a run from before scores were recorded
    with pytest.raises(ValueError, match="before scores were recorded"):
        rates_at(rounds, 0.5)


def round_result(index, placed, attempts, successes, planning_s, end=END_FAILURES) -> RoundResult:
    return RoundResult(index, index, placed, attempts, successes, end, tuple(planning_s), 1.0 + index)


def test_metrics_are_pooled_over_rounds():
    rounds = [round_result(0, 3, 3, 3, [0.1, 0.2, 0.3], END_CLEAR),
              round_result(1, 4, 5, 2, [0.4, 0.5, 0.6, 0.7, 0.8]),
              round_result(2, 2, 0, 0, [0.9], END_NO_GRASP)]
    s = MethodSummary.from_rounds("m", rounds)
    assert (s.attempts, s.successes, s.objects_placed, s.objects_removed) == (8, 5, 9, 5)
    assert s.gsr == pytest.approx(5 / 8)  # not the mean of per-round rates (1, 0.4, n/a)
    assert s.dr == pytest.approx(5 / 9)
    assert s.latency_p50_s == pytest.approx(0.5)
    assert s.latency_p95_s == pytest.approx(0.86)  # linear between the 8th (0.8) and 9th (0.9) of 9
    assert s.seconds_per_round == pytest.approx(2.0)
    empty = MethodSummary.from_rounds("m", [round_result(0, 0, 0, 0, [])])
    assert empty.gsr is None and empty.dr is None and empty.latency_p50_s is None


def outcomes(result):
    return {m: [(r.scene_seed, r.objects_placed, r.attempts, r.successes, r.end) for r in rs]
            for m, rs in result.rounds.items()}


def test_benchmark_is_deterministic_and_methods_see_identical_scenes():
    planners = {"baseline": make_planner("baseline"), "sparse": make_planner("baseline", num_seeds=32)}
    settings = BenchmarkSettings("pile", rounds=2, seed=3)
    objects = default_objects("val")
    first = run_benchmark(planners, objects, settings)
    second = run_benchmark(planners, objects, settings)
    assert outcomes(first) == outcomes(second)
    a, b = (outcomes(first)[m] for m in planners)
    assert [r[:2] for r in a] == [r[:2] for r in b]  # same scene seeds, same objects placed
    assert sum(r.attempts for r in first.rounds["baseline"]) >= 2
    assert first.summaries["baseline"].gsr == second.summaries["baseline"].gsr


def test_parallel_rounds_give_the_sequential_outcomes(box_folder):
    from diffgrasp_ros.evaluation.clutter_removal import run_benchmark_parallel
    from diffgrasp_ros.sim.object_splits import folder_objects

    objects = folder_objects(box_folder).objects
    settings = BenchmarkSettings("packed", rounds=3, seed=4)
    seen = []
    parallel = run_benchmark_parallel(["baseline"], "franka", objects, settings, workers=2,
                                      on_round=lambda i, _: seen.append(i))
    sequential = run_benchmark({"baseline": make_planner("baseline")}, objects, settings)
    assert sorted(seen) == [0, 1, 2]
    assert outcomes(parallel) == outcomes(sequential)
    assert [r.index for r in parallel.rounds["baseline"]] == [0, 1, 2]


def test_stereo_depth_rounds_are_repeatable(box_folder):
    from diffgrasp_ros.sim.object_splits import folder_objects

    objects = folder_objects(box_folder).objects
    settings = BenchmarkSettings("packed", rounds=1, seed=2, noise="stereo")
    first = run_benchmark({"baseline": make_planner("baseline")}, objects, settings)
    again = run_benchmark({"baseline": make_planner("baseline")}, objects, settings)
    assert outcomes(first) == outcomes(again)
    assert first.rounds["baseline"][0].attempts >= 1


def test_mixed_materials_and_restoration_change_what_the_planner_sees(box_folder):
    from diffgrasp_ros.evaluation.clutter_removal import draw_materials, make_depth_processor
    from diffgrasp_ros.sim.object_splits import folder_objects

    objects = folder_objects(box_folder).objects
    with ClutterWorld(objects, seed=3) as world:
        world.generate("packed", 4)
        drawn = [draw_materials(world, "mixed", np.random.default_rng(i)) for i in range(20)]
        assert all(set(d) == set(world.object_ids) for d in drawn)
        names = {name for d in drawn for name in d.values()}
        assert names == {"diffuse", "dark", "specular", "transparent"}
        assert draw_materials(world, "mixed", np.random.default_rng(5)) == drawn[5]
        assert set(draw_materials(world, "diffuse", np.random.default_rng(0)).values()) == {"diffuse"}

    restore = BenchmarkSettings("packed", rounds=1, seed=2, noise="stereo", materials="mixed", depth_mode="restore")
    assert make_depth_processor(BenchmarkSettings("packed", rounds=1)) is None
    assert make_depth_processor(restore).mode == "restore"
    on_cpu = BenchmarkSettings("packed", rounds=1, depth_mode="restore", device="cpu")
    assert make_depth_processor(on_cpu).device.type == "cpu"
    result = run_benchmark({"baseline": make_planner("baseline")}, objects, restore)
    round_ = result.rounds["baseline"][0]
    assert round_.stage_s and all(t["depth"] > 0 for t in round_.stage_s)  # restoration ran on every frame
    assert all(total >= t["depth"] for total, t in zip(round_.planning_s, round_.stage_s))


def test_settings_are_validated():
    with pytest.raises(ValueError, match="need stereo noise"):
        BenchmarkSettings("pile", rounds=1, noise="dex", materials="mixed")
    with pytest.raises(ValueError, match="material mix"):
        BenchmarkSettings("pile", rounds=1, noise="stereo", materials="velvet")
    with pytest.raises(ValueError, match="depth mode"):
        BenchmarkSettings("pile", rounds=1, depth_mode="graft")
    with pytest.raises(ValueError, match="at least one round"):
        BenchmarkSettings("pile", rounds=0)
    with pytest.raises(ValueError, match="noise"):
        BenchmarkSettings("pile", rounds=1, noise="kinect")
    with pytest.raises(ValueError, match="scene kind"):
        BenchmarkSettings("heap", rounds=1)
    with pytest.raises(ValueError, match="view mode"):
        BenchmarkSettings("pile", rounds=1, views="top")


@pytest.fixture(scope="module")
def box_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_boxes")
    write_box_urdf(folder, "box_a", (0.04, 0.05, 0.06))
    write_box_urdf(folder, "box_b", (0.03, 0.06, 0.05))
    return folder


def test_bench_command_writes_json_and_markdown(box_folder, tmp_path, capsys):
    code = main(["bench", "--scene", "packed", "--rounds", "2", "--objects", str(box_folder), "--noise", "dex",
                 "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["command"].startswith("diffgrasp bench --scene packed --rounds 2")
    assert report["date"] and report["machine"]
    (result,) = report["results"]
    assert result["settings"]["noise"] == "dex" and len(result["rounds"]["baseline"]) == 2
    assert result["settings"]["device"] == "auto" and "--device auto" in report["command"]
    summary = result["summary"]["baseline"]
    assert summary["objects_placed"] == sum(r["objects_placed"] for r in result["rounds"]["baseline"])
    assert all(len(r["attempt_scores"]) == len(r["attempt_successes"]) == r["attempts"]
               for r in result["rounds"]["baseline"])
    calls = [t for r in result["rounds"]["baseline"] for t in r["stage_s"]]
    assert len(calls) == sum(len(r["planning_s"]) for r in result["rounds"]["baseline"])
    assert summary["stage_p50_s"]["fusion"] == pytest.approx(float(np.median([t["fusion"] for t in calls])))
    assert sum(summary["outcomes"].values()) == summary["attempts"]
    assert summary["outcomes"].get("held", 0) == summary["successes"]
    markdown = (tmp_path / "r.md").read_text()
    assert "| baseline |" in markdown and report["command"] in markdown
    assert "Attempts by outcome" in markdown
    assert "| fusion |" in markdown.split("Median time per planner stage")[1]
    out = capsys.readouterr().out
    assert "round 1/2" in out and "round 2/2" in out


def test_bench_with_the_arm_reports_planning_times_and_reachability(box_folder, tmp_path, capsys):
    code = main(["bench", "--scene", "packed", "--rounds", "1", "--objects", str(box_folder), "--executor", "arm",
                 "--robot", "franka", "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert "--executor arm" in report["command"]
    (result,) = report["results"]
    assert result["settings"]["executor"] == "arm"
    (round_,) = result["rounds"]["baseline"]
    executions = round_["attempts"]
    assert len(round_["ik_s"]) == len(round_["motion_planning_s"]) == len(round_["grasps_ranked"]) == executions > 0
    assert all(0 <= n <= ranked for n, ranked in zip(round_["grasps_reachable"], round_["grasps_ranked"]))
    summary = result["summary"]["baseline"]
    reachable = sum(round_["grasps_reachable"]) / sum(round_["grasps_ranked"])
    assert summary["reachable_fraction"] == pytest.approx(reachable)
    assert summary["ik_p50_s"] == pytest.approx(float(np.median(round_["ik_s"])))
    assert summary["arm_planning_p50_s"] > 0.0
    markdown = (tmp_path / "r.md").read_text()
    assert "executed by the arm" in markdown and "| ranked grasps reachable |" in markdown
    assert "ranked grasps reachable" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown executor 'gripper'"):
        BenchmarkSettings("packed", rounds=1, executor="gripper")


@pytest.mark.parametrize("case, message", [
    ("missing_dir", "does not exist"),
    ("empty_dir", "no objects in"),
    ("unknown_method", "unknown grasp planning method 'vgn'"),
    ("zero_rounds", "at least one round"),
    ("leap_friction_for_franka", "--leap-friction is for the LEAP robots"),
    ("zero_leap_friction", "friction must be positive"),
])
def test_bench_rejects_bad_input_with_one_line(case, message, box_folder, tmp_path, capsys):
    argv = ["bench", "--rounds", "1", "--objects", str(box_folder)]
    if case == "missing_dir":
        argv[-1] = str(tmp_path / "nope")
    elif case == "empty_dir":
        (tmp_path / "empty").mkdir()
        argv[-1] = str(tmp_path / "empty")
    elif case == "unknown_method":
        argv += ["--method", "baseline", "vgn"]
    elif case == "leap_friction_for_franka":
        argv += ["--leap-friction", "0.2"]
    elif case == "zero_leap_friction":
        argv += ["--robot", "xarm_leap", "--leap-friction", "0"]
    else:
        argv[2] = "0"
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("diffgrasp bench: error:") and message in err, err


def test_bench_runs_even_one_worker_under_a_time_limit(box_folder, tmp_path, capsys):
    """``diffgrasp bench --workers 1`` runs its rounds in a worker process too: a round past
    ``--round-timeout`` is reported, run once more, then marked, and the command still writes its results."""
    import json

    from diffgrasp_ros.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--scene", "packed", "--rounds", "1", "--objects", str(box_folder), "--workers", "1",
                 "--round-timeout", "0.05", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["results"][0]
    assert [r["end"] for r in run["rounds"]["baseline"]] == ["worker failed"]
    assert "--round-timeout 0.05" in json.loads(out.read_text())["command"]
    assert "timed out" in capsys.readouterr().err
