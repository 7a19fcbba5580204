"""Contact-map transfer against untemplated LEAP grasps on held-out instances of each template's category.

    .venv/bin/python benchmarks/template_transfer.py [--templates models/leap_transfer/templates]
        [--trials 3] [--robot xarm_leap] [--seed 0] [--transfer-weights FOLDER] [--workers 2]
        [--json out.json] [--allow-dirty]

For every template file and every held-out instance of its category (``sim.categories``: shapes training never
saw), ``--trials`` times: the instance stands on the simulated table turned about z at random, one side view
with the benchmark's dex noise, and the request's target is the instance's bounding box with its category.
Both methods plan on the same frame (``leap`` and ``leap:template=FILE``); the best grasp of each is executed
with the free-floating LEAP hand from the same settled scene:
- contact-part agreement: the hand closed to contact (as the executor does), the share of the instance's
  surface points it touches that lie on the template's part (its contacts' majority part), and whether that
  share is at least one half;
- lift success (the executor's test);
- planning latency (fusion + planning).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from diffgrasp_ros.evaluation.provenance import add_provenance_arguments, prepare_results

SURFACE_POINTS = 4096  # instance surface samples the contacts are measured on
ON_PART = 0.5  # share of the contacts on the template's part for a grasp to count as on it
_planners: dict = {}


def planner(spec: str, robot: str):
    from diffgrasp_ros import make_planner

    if spec not in _planners:
        _planners[spec] = make_planner(spec, robot)
    return _planners[spec]


def run_trial(job: dict) -> list[dict]:
    """Both methods on one standing instance (see the module docstring); a row per method."""
    import torch

    from diffgrasp_ros.execution.sim_executor import LEAP_GUARDED_APPROACH_M, SimHandExecutor
    from diffgrasp_ros.geometry import invert, pose_from_quaternion
    from diffgrasp_ros.grasping.leap.templates import hand_contacts, load_template
    from diffgrasp_ros.robots.registry import get_robot
    from diffgrasp_ros.scene.scene import TargetBox
    from diffgrasp_ros.scene.tsdf import SceneBuilder
    from diffgrasp_ros.sim.camera import view_poses
    from diffgrasp_ros.sim.categories import make_instance, write_instance
    from diffgrasp_ros.sim.noise import apply_depth_noise
    from diffgrasp_ros.sim.pick_scene import stand_object
    from diffgrasp_ros.sim.world import ClutterWorld

    torch.set_num_threads(1)
    template = load_template(job["template"])
    part = template.main_contact_part
    instance = make_instance(template.category, "held_out", job["instance"])
    sample = instance.sample_surface(SURFACE_POINTS, seed=job["seed"])
    robot = get_robot(job["robot"])
    rows = []
    model = write_instance(instance, Path(job["cache"]) / f"{instance.name}")
    with ClutterWorld([model], seed=job["seed"]) as world:
        body = stand_object(world, model, yaw_rad=job["yaw_rad"])
        rest = world.p.getBasePositionAndOrientation(body)
        target = TargetBox(*world.p.getAABB(body), category=template.category)
        executor = SimHandExecutor(world, robot)

        def put_back() -> None:
            world.p.resetBasePositionAndOrientation(body, *rest)
            world.p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))

        views = [(apply_depth_noise(world.camera.render(T).depth, "dex", np.random.default_rng(job["seed"])), T)
                 for T in view_poses("side")]
        for spec in (job["untemplated"], job["templated"]):
            start = time.perf_counter()
            builder = SceneBuilder(world.workspace)
            for depth, T in views:
                builder.integrate(depth, T)
            plan = planner(spec, job["robot"]).plan(dataclasses.replace(builder.scene(), target=target))
            row = {"method": "template" if spec == job["templated"] else "leap", "template": job["name"],
                   "category": template.category, "part": template.part_names[part], "instance": instance.name,
                   "yaw_rad": job["yaw_rad"], "found": plan.found, "message": plan.message,
                   "latency_s": time.perf_counter() - start, "success": False,
                   "part_share": 0.0, "on_part": False, "contacts": 0}
            if plan.found:
                T_palm, q_pre, q_closing = executor.leap_postures(plan.best)
                contact = executor.hand.close_to_contact(T_palm, q_pre, q_closing, LEAP_GUARDED_APPROACH_M)
                if contact.ok and contact.object_id == body:
                    T_object_hand = invert(pose_from_quaternion(*world.object_pose(body))) @ contact.T_palm_contact
                    touched, _, _ = hand_contacts(sample.points_m, T_object_hand, contact.q_contact)
                    if touched.size:
                        share = float(np.mean(sample.parts[touched] == part))
                        row.update(part_share=share, on_part=share >= ON_PART, contacts=int(touched.size))
                put_back()
                outcome = executor.execute_grasp(plan.best, remove_held=False)
                row.update(success=bool(outcome.success), outcome=outcome.reason)
                put_back()
            rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    def stats(selected: list[dict]) -> dict:
        return {"trials": len(selected), "found": float(np.mean([r["found"] for r in selected])),
                "success": float(np.mean([r["success"] for r in selected])),
                "part_share": float(np.mean([r["part_share"] for r in selected])),
                "on_part": float(np.mean([r["on_part"] for r in selected])),
                "latency_p50_ms": 1e3 * float(np.median([r["latency_s"] for r in selected]))}

    out = {"all": {m: stats([r for r in rows if r["method"] == m]) for m in ("leap", "template")}}
    for name in sorted({r["template"] for r in rows}):
        out[name] = {m: stats([r for r in rows if r["method"] == m and r["template"] == name])
                     for m in ("leap", "template")}
    return out


def markdown(summary: dict, context: dict, args) -> str:
    lines = [f"# Contact-map transfer on held-out instances ({context.get('date', '')[:10]})", "",
             f"From commit `{context.get('git_commit')}`: `{context.get('exact_command', '')}`; "
             f"{context.get('machine')}.",
             "", f"Per template: every held-out instance of its category x {args.trials} random turns, one side "
             "view with dex noise, the target box with its category; the best grasp of each method executed with "
             "the free-floating LEAP hand from the same settled scene. On part: at least half of the touched "
             "surface points on the template's part.", "",
             "| template | trials | leap success | transfer success | leap on part | transfer on part | "
             "leap part share | transfer part share | leap p50 ms | transfer p50 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        a, b = s["leap"], s["template"]
        lines.append(f"| {name} | {a['trials']} | {100 * a['success']:.0f} % | {100 * b['success']:.0f} % | "
                     f"{100 * a['on_part']:.0f} % | {100 * b['on_part']:.0f} % | {a['part_share']:.2f} | "
                     f"{b['part_share']:.2f} | {a['latency_p50_ms']:.0f} | {b['latency_p50_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=Path, default=Path("models/leap_transfer/templates"),
                        help="a folder of templates (.npz) or one file")
    parser.add_argument("--trials", type=int, default=3, help="random turns per held-out instance (default: 3)")
    parser.add_argument("--robot", default="xarm_leap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transfer-weights", type=Path, help="transfer model folder (default: the shipped one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="folder for the instances' URDF / OBJ files (default: a temporary "
                                                   "one, removed after the run)")
    parser.add_argument("--json", type=Path, help="write rows and summary here, and the table beside it (.md)")
    add_provenance_arguments(parser)
    args = parser.parse_args()
    files = sorted(args.templates.glob("*.npz")) if args.templates.is_dir() else [args.templates]
    if not files:
        raise SystemExit(f"no templates in {args.templates}")
    code = [*files, *([args.transfer_weights] if args.transfer_weights else [])]
    context = prepare_results(args, args.json, args.json.with_suffix(".md") if args.json else None, code_paths=code)

    from diffgrasp_ros.grasping.leap.templates import load_template
    from diffgrasp_ros.sim.categories import HELD_OUT_COUNT

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or Path(temporary)
        cache.mkdir(parents=True, exist_ok=True)
        jobs = []
        for path in files:
            load_template(path)  # a bad file fails here, not in a worker
            templated = f"leap:template={path}" + (f",transfer_weights={args.transfer_weights}"
                                                   if args.transfer_weights else "")
            for instance in range(HELD_OUT_COUNT):
                for trial in range(args.trials):
                    jobs.append({"template": str(path), "name": path.stem, "instance": instance,
                                 "yaw_rad": float(rng.uniform(-np.pi, np.pi)), "seed": int(rng.integers(2**31)),
                                 "robot": args.robot, "untemplated": "leap", "templated": templated,
                                 "cache": str(cache)})
        with get_context("spawn").Pool(args.workers) as pool:
            rows = [row for result in pool.imap(run_trial, jobs) for row in result]
    summary = summarise(rows)
    text = markdown(summary, context, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"context": context, "args": {k: str(v) for k, v in vars(args).items()},
                                         "summary": summary, "rows": rows}, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
