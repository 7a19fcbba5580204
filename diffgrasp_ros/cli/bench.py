"""``diffgrasp bench``: the simulated clutter-removal benchmark (VGN / GIGA / IGD protocol)."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..evaluation.provenance import add_provenance_arguments
from .common import add_device_argument, write_json


def add_parser(subparsers) -> None:
    from ..execution import EXECUTORS
    from ..evaluation.clutter_removal import DEPTH_MODES, DEPTH_NOISE, MATERIAL_MIXES
    from ..sim.object_splits import SPLITS

    parser = subparsers.add_parser(
        "bench", help="clutter-removal benchmark: grasp success and declutter rates over simulated rounds",
        description="Rounds of: generate a pile or packed scene, perceive, plan, execute the best grasp, "
                    "remove what was grasped, until the table is clear, 2 grasps in a row fail or no grasp "
                    "is found. Reports GSR (successes / attempts), DR (objects removed / placed) and "
                    "planning latency per method; all methods run on identical scenes. By default the "
                    "objects are the validation split of ../shared/objects (the project's own val/ set "
                    "when ../shared is absent).",
    )
    parser.add_argument("--scene", nargs="+", choices=("pile", "packed", "both"), default=["both"],
                        help="scene type(s) (default: both, pile then packed)")
    parser.add_argument("--objects", type=Path, default=None,
                        help="folder of object URDF/OBJ/STL files for every scene type (default: the "
                             "validation split)")
    parser.add_argument("--split", choices=SPLITS, default="hash",
                        help="validation split of ../shared/objects to benchmark on (without --objects): hash = "
                             "a fifth of the objects by file-name hash (default); families = whole shape families "
                             "held out (sim/object_families.json); without ../shared both are the project's val/")
    parser.add_argument("--rounds", type=int, default=100, help="rounds per scene type (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed; round i's scene derives from "
                                                             "(seed, i) (default: 0)")
    parser.add_argument("--method", nargs="+", default=["baseline"],
                        help="grasp planning method(s), evaluated side by side, each optionally with options "
                             "(e.g. igd igd:rounds=1 igd:evaluator=affordance igd:weights=FOLDER); "
                             "default: baseline")
    parser.add_argument("--robot", default="franka", help="embodiment to plan for (default: franka)")
    parser.add_argument("--views", choices=("side", "multi"), default="side",
                        help="single side view or 6 views around the table (default: side)")
    parser.add_argument("--noise", choices=DEPTH_NOISE, default="none",
                        help="simulated depth noise (default: none; dex = the published benchmark's; stereo = "
                             "depth from the simulated D435's IR stereo matching)")
    parser.add_argument("--materials", choices=list(MATERIAL_MIXES), default="diffuse",
                        help="object materials the stereo sensor sees (--noise stereo only): all diffuse "
                             "(default), or each object drawn from " + ", ".join(
                                 f"{100 * share:.0f}%% {name}" for name, share in MATERIAL_MIXES["mixed"].items()))
    parser.add_argument("--depth-mode", choices=DEPTH_MODES, default="passthrough",
                        help="depth processing before planning, for every method: none (default) or the "
                             "learned restoration of models/depth_restore (its time counts as planning time)")
    parser.add_argument("--objects-per-round", type=int, default=5,
                        help="objects per generated scene (default: 5, as published)")
    parser.add_argument("--executor", choices=EXECUTORS, default="hand",
                        help="what executes the grasps: the free-floating hand of the published protocol "
                             "(default) or the robot's whole arm (reachability IK, motion planning, the arm "
                             "in the simulation; a plan with no reachable, plannable grasp is a failed "
                             "attempt)")
    parser.add_argument("--leap-friction", type=float, default=1.0,
                        help="hand-object friction of the LEAP hand, LEAP robots only (default: 1.0, the objects' "
                             "own; 0.2 is DexGraspNet's strict value, at which the LEAP training grasps are tested)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running rounds in parallel, one core each (default: 1; the outcomes do "
                             "not depend on it, latencies are then single-core figures)")
    parser.add_argument("--round-timeout", type=float, default=None, metavar="SECONDS",
                        help="a round's time limit in its worker process: a round past it (or whose process "
                             "dies) is reported and run once more, then marked failed and left out of the "
                             "metrics (default: from the work, 20-60 times a normal round)")
    add_device_argument(parser)
    parser.add_argument("--json", type=Path, help="write settings, summaries and every round here")
    parser.add_argument("--markdown", type=Path, help="write the summary tables here")
    add_provenance_arguments(parser)
    parser.set_defaults(run=run)


def _command(args: argparse.Namespace, scenes: list[str]) -> str:
    """The run as a command with every option explicit, to reproduce it from the report."""
    argv = ["diffgrasp", "bench", "--scene", *scenes, "--rounds", str(args.rounds), "--seed", str(args.seed),
            "--method", *args.method, "--robot", args.robot, "--views", args.views, "--noise", args.noise,
            "--materials", args.materials, "--depth-mode", args.depth_mode,
            "--objects-per-round", str(args.objects_per_round), "--executor", args.executor,
            "--leap-friction", str(args.leap_friction),
            "--workers", str(args.workers), "--device", args.device, "--split", args.split]
    if args.round_timeout is not None:
        argv += ["--round-timeout", str(args.round_timeout)]
    if args.objects is not None:
        argv += ["--objects", str(args.objects)]
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import BenchmarkSettings
    from ..evaluation.clutter_removal import run_benchmark_parallel
    from ..evaluation.provenance import check_results_destination, method_code_paths, run_context
    from ..evaluation.report import arm_table, summary_table, to_json, to_markdown
    from ..grasping import device_option, make_planner
    from ..sim.object_splits import folder_objects, validation_objects

    check_results_destination([args.json, args.markdown], args.allow_dirty)  # before anything runs
    scenes = ["pile", "packed"] if "both" in args.scene else list(dict.fromkeys(args.scene))
    settings = [BenchmarkSettings(scene, args.rounds, args.seed, args.views, args.noise, args.objects_per_round,
                                  args.executor, args.materials, args.depth_mode, args.leap_friction, args.device)
                for scene in scenes]
    if len(set(args.method)) != len(args.method):
        raise ValueError(f"a method is named twice in --method {' '.join(args.method)}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.round_timeout is not None and not args.round_timeout > 0:
        raise ValueError(f"--round-timeout must be positive, got {args.round_timeout}")
    # Built here, although the rounds run in worker processes, so that a bad method spec or missing weights
    # fail before any round runs.
    planners = {method: make_planner(method, args.robot, **device_option(method, args.device))
                for method in args.method}
    if args.leap_friction != 1.0 and next(iter(planners.values())).robot.hand != "leap":
        raise ValueError(f"--leap-friction is for the LEAP robots (xarm_leap, ur5_leap), not {args.robot!r}")
    object_sets = {scene: folder_objects(args.objects) if args.objects is not None
                   else validation_objects(scene, args.split) for scene in scenes}
    # The code hash covers the package, models/, weights named in --method and the objects the scenes use.
    context = run_context(_command(args, scenes), allow_dirty=args.allow_dirty,
                          code_paths=[*method_code_paths(args.method),
                                      *dict.fromkeys(s.root for s in object_sets.values())])

    results = []
    for setting in settings:
        objects = object_sets[setting.scene]
        print(f"diffgrasp bench: {setting.scene}, {setting.rounds} rounds, seed {setting.seed}, "
              f"{setting.views} view, noise {setting.noise}"
              f"{f' ({setting.materials} materials)' if setting.noise == 'stereo' else ''}, depth {setting.depth_mode}, "
              f"executed by the {setting.executor} of {args.robot}"
              f"{f' (LEAP friction {setting.leap_friction})' if setting.leap_friction != 1.0 else ''}; "
              f"objects: {objects.name} ({len(objects.objects)})", flush=True)

        def progress(index: int, by_method: dict, scene: str = setting.scene, rounds: int = setting.rounds) -> None:
            parts = [f"{m} {r.successes}/{r.objects_placed} removed, {r.successes}/{r.attempts} grasps, {r.end}"
                     for m, r in by_method.items()]
            seconds = sum(r.duration_s for r in by_method.values())
            print(f"  [{scene}] round {index + 1}/{rounds}: {'; '.join(parts)} ({seconds:.1f} s)", flush=True)

        # Even one worker is a process of its own, so that a hung round is timed out, not the whole run.
        result = run_benchmark_parallel(args.method, args.robot, objects.objects, setting, args.workers,
                                        objects.name, on_round=progress, round_timeout_s=args.round_timeout)
        results.append(result)
        print(summary_table(list(result.summaries.values())), flush=True)
        if setting.executor == "arm":
            print(arm_table(list(result.summaries.values())), flush=True)

    if args.json is not None:
        write_json(args.json, to_json(results, context))
        print(f"wrote {args.json}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(to_markdown(results, context))
        print(f"wrote {args.markdown}")
    return 0
