"""Contact-map transfer against untemplated LEAP grasps on held-out instances of each template's category.

    .venv/bin/python benchmarks/template_transfer.py [--templates models/leap_transfer/templates]
        [--trials 3] [--robot xarm_leap] [--seed 0] [--transfer-weights FOLDER] [--options transfer_hands=fit]
        [--split held_out|tuning] [--approach top] [--region-top 0.04] [--workers 2] [--json out.json]
        [--allow-dirty]

For every template file and every held-out instance of its category (``sim.categories``: shapes training never
saw; ``--split tuning``: the last ``HELD_OUT_COUNT`` training instances instead, which no shipped template was
made from, for choosing settings without looking at the held-out ones), ``--trials`` times: the instance stands on the simulated table turned about z at random, one side view
with the benchmark's dex noise, and the request's target is the instance's bounding box with its category.
Both methods plan on the same frame (``leap`` and ``leap:template=FILE``); the best grasp of each is executed
with the free-floating LEAP hand from the same settled scene:
- contact-part agreement: the hand closed to contact (as the executor does), the share of the instance's
  surface points it touches that lie on the template's part (its contacts' majority part), and whether that
  share is at least one half;
- lift success (the executor's test);
- planning latency (fusion + planning);
- with a request (``--approach``, ``--region-top``: both given to both methods), how well it was met: the
  angle between the best grasp's approach and the asked one, and the share of the touched surface points
  inside the region (a sphere of ``--region-top`` metres about the top centre of the instance's box).
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
BOOTSTRAP_DRAWS = 10_000
_planners: dict = {}


def planner(spec: str, robot: str, request: dict):
    """The planner of ``spec`` with the trial's ``request`` (approach, region) as options; kept for the next trial
    unless the request has a region (one per trial)."""
    from diffgrasp_ros import make_planner

    if "region" in request:
        return make_planner(spec, robot, **request)
    key = (spec, request.get("approach"))
    if key not in _planners:
        _planners[key] = make_planner(spec, robot, **request)
    return _planners[key]


def run_trial(job: dict) -> list[dict]:
    """Both methods on one standing instance (see the module docstring); a row per method."""
    import torch

    from diffgrasp_ros.execution.sim_executor import LEAP_GUARDED_APPROACH_M, SimHandExecutor
    from diffgrasp_ros.geometry import invert, pose_from_quaternion
    from diffgrasp_ros.grasping.leap.planner import parse_direction
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
    instance = make_instance(template.category, job["split"], job["instance"])
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

        lo, hi = (np.array(v) for v in world.p.getAABB(body))
        region = None if job["region_top_m"] is None else np.array([*(lo[:2] + hi[:2]) / 2, hi[2], job["region_top_m"]])
        views = [(apply_depth_noise(world.camera.render(T).depth, "dex", np.random.default_rng(job["seed"])), T)
                 for T in view_poses("side")]
        request = {**({"approach": job["approach"]} if job["approach"] else {}),
                   **({"region": ":".join(f"{v:.4f}" for v in region)} if region is not None else {})}
        for spec in (job["untemplated"], job["templated"]):
            start = time.perf_counter()
            builder = SceneBuilder(world.workspace)
            for depth, T in views:
                builder.integrate(depth, T)
            plan = planner(spec, job["robot"], request).plan(dataclasses.replace(builder.scene(), target=target))
            row = {"method": "template" if spec == job["templated"] else "leap", "template": job["name"],
                   "category": template.category, "part": template.part_names[part], "instance": instance.name,
                   "yaw_rad": job["yaw_rad"], "found": plan.found, "message": plan.message,
                   "latency_s": time.perf_counter() - start, "success": False,
                   "part_share": 0.0, "on_part": False, "contacts": 0}
            if plan.found and job["approach"]:
                asked = parse_direction(job["approach"], "approach")
                row["approach_angle_deg"] = float(np.degrees(np.arccos(np.clip(plan.best.T_frame_grasp[:3, 2] @ asked,
                                                                               -1.0, 1.0))))
            if plan.found:
                row["fitted_hand"] = bool(plan.best.info.get("contacts_m"))  # else sampled on the part, or leap's
                T_palm, q_pre, q_closing = executor.leap_postures(plan.best)
                contact = executor.hand.close_to_contact(T_palm, q_pre, q_closing, LEAP_GUARDED_APPROACH_M)
                if contact.ok and contact.object_id == body:
                    T_object_hand = invert(pose_from_quaternion(*world.object_pose(body))) @ contact.T_palm_contact
                    touched, _, _ = hand_contacts(sample.points_m, T_object_hand, contact.q_contact)
                    if touched.size:
                        share = float(np.mean(sample.parts[touched] == part))
                        row.update(part_share=share, on_part=share >= ON_PART, contacts=int(touched.size))
                        if region is not None:
                            T_world_object = pose_from_quaternion(*world.object_pose(body))
                            points = sample.points_m[touched] @ T_world_object[:3, :3].T + T_world_object[:3, 3]
                            row["in_region"] = float(np.mean(np.linalg.norm(points - region[:3], axis=1) <= region[3]))
                put_back()
                outcome = executor.execute_grasp(plan.best, remove_held=False)
                row.update(success=bool(outcome.success), outcome=outcome.reason)
                put_back()
            rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    def stats(selected: list[dict]) -> dict:
        angles = [r["approach_angle_deg"] for r in selected if "approach_angle_deg" in r]
        in_region = [r["in_region"] for r in selected if "in_region" in r]
        return {"trials": len(selected), "found": float(np.mean([r["found"] for r in selected])),
                "success": float(np.mean([r["success"] for r in selected])),
                "part_share": float(np.mean([r["part_share"] for r in selected])),
                "on_part": float(np.mean([r["on_part"] for r in selected])),
                "latency_p50_ms": 1e3 * float(np.median([r["latency_s"] for r in selected])),
                "approach_angle_p50_deg": float(np.median(angles)) if angles else None,
                "in_region": float(np.mean(in_region)) if in_region else None}

    out = {"all": {m: stats([r for r in rows if r["method"] == m]) for m in ("leap", "template")}}
    out["all"]["difference"] = paired_differences(rows)
    for name in sorted({r["template"] for r in rows}):
        out[name] = {m: stats([r for r in rows if r["method"] == m and r["template"] == name])
                     for m in ("leap", "template")}
    return out


def paired_differences(rows: list[dict]) -> dict:
    """Transfer minus leap over the trials (each plans both on one frame), with 95 % intervals from a bootstrap
    over the trials."""
    pairs = {}
    for r in rows:
        pairs.setdefault((r["template"], r["instance"], r["yaw_rad"]), {})[r["method"]] = r
    rng = np.random.default_rng(0)
    draws = rng.integers(len(pairs), size=(BOOTSTRAP_DRAWS, len(pairs)))
    out = {}
    for key in ("success", "on_part", "part_share"):
        d = np.array([float(p["template"][key]) - float(p["leap"][key]) for p in pairs.values()])
        low, high = np.percentile(d[draws].mean(axis=1), [2.5, 97.5])
        out[key] = {"mean": float(d.mean()), "low": float(low), "high": float(high)}
    return out


def markdown(summary: dict, context: dict, args) -> str:
    instances = "held-out" if args.split == "held_out" else "tuning (training, never made templates)"
    asked = ([f"approach {args.approach}"] if args.approach else []) + \
            ([f"a region of {args.region_top} m about the top of the instance's box"] if args.region_top else [])
    extras = ([("approach_angle_p50_deg", ".0f")] if args.approach else []) + \
             ([("in_region", ".2f")] if args.region_top else [])
    extra_head = "".join(f" leap {label} | transfer {label} |" for label in
                         (["approach angle deg"] if args.approach else []) + (["in region"] if args.region_top else []))
    lines = [f"# Contact-map transfer on {instances} instances ({context.get('date', '')[:10]})", "",
             f"From commit `{context.get('git_commit')}`: `{context.get('exact_command', '')}`; "
             f"{context.get('machine')}.",
             "", f"Per template: every {instances} instance of its category x {args.trials} random turns, one side "
             "view with dex noise, the target box with its category; the best grasp of each method executed with "
             "the free-floating LEAP hand from the same settled scene. On part: at least half of the touched "
             "surface points on the template's part.", "",
             *([f"Asked of both methods: {', '.join(asked)}. Approach angle: the median angle between the best "
                "grasp's approach and the asked one; in region: the mean share of the touched surface points inside "
                "the region.", ""] if asked else []),
             "| template | trials | leap success | transfer success | leap on part | transfer on part | "
             "leap part share | transfer part share | leap p50 ms | transfer p50 ms |" + extra_head,
             "| --- " * (10 + 2 * len(extras)) + "|"]
    for name, s in summary.items():
        a, b = s["leap"], s["template"]
        cells = "".join(f" {'-' if m[key] is None else f'{m[key]:{form}}'} |" for key, form in extras for m in (a, b))
        lines.append(f"| {name} | {a['trials']} | {100 * a['success']:.0f} % | {100 * b['success']:.0f} % | "
                     f"{100 * a['on_part']:.0f} % | {100 * b['on_part']:.0f} % | {a['part_share']:.2f} | "
                     f"{b['part_share']:.2f} | {a['latency_p50_ms']:.0f} | {b['latency_p50_ms']:.0f} |" + cells)
    lines += ["", "Transfer minus leap, paired over the trials (95 % bootstrap intervals): " + "; ".join(
        f"{label} {scale * d['mean']:+.{digits}f} [{scale * d['low']:+.{digits}f}, {scale * d['high']:+.{digits}f}]{unit}"
        for (label, scale, digits, unit), d in zip((("lifted", 100, 1, " points"), ("on part", 100, 1, " points"),
                                                    ("part share", 1, 2, "")),
                                                   summary["all"]["difference"].values())) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=Path, default=Path("models/leap_transfer/templates"),
                        help="a folder of templates (.npz) or one file")
    parser.add_argument("--trials", type=int, default=3, help="random turns per held-out instance (default: 3)")
    parser.add_argument("--robot", default="xarm_leap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transfer-weights", type=Path, help="transfer model folder (default: the shipped one)")
    parser.add_argument("--options", default="", help="more options of the templated method, comma-separated "
                                                      "(e.g. transfer_hands=fit)")
    parser.add_argument("--approach", help="ask both methods for this approach (top, +x, ..., or x:y:z)")
    parser.add_argument("--region-top", type=float, metavar="R",
                        help="ask both methods for a region: R metres about the top centre of the instance's box")
    parser.add_argument("--split", choices=("held_out", "tuning"), default="held_out",
                        help="held-out instances (reported) or the last training instances (tuning)")
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
    from diffgrasp_ros.sim.categories import HELD_OUT_COUNT, TRAIN_COUNT

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or Path(temporary)
        cache.mkdir(parents=True, exist_ok=True)
        jobs = []
        for path in files:
            load_template(path)  # a bad file fails here, not in a worker
            templated = f"leap:template={path}" + (f",transfer_weights={args.transfer_weights}"
                                                   if args.transfer_weights else "") + (f",{args.options}"
                                                                                        if args.options else "")
            split, first = ("held_out", 0) if args.split == "held_out" else ("train", TRAIN_COUNT - HELD_OUT_COUNT)
            for instance in range(first, first + HELD_OUT_COUNT):
                for trial in range(args.trials):
                    jobs.append({"template": str(path), "name": path.stem, "split": split, "instance": instance,
                                 "yaw_rad": float(rng.uniform(-np.pi, np.pi)), "seed": int(rng.integers(2**31)),
                                 "robot": args.robot, "untemplated": "leap", "templated": templated,
                                 "approach": args.approach, "region_top_m": args.region_top,
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
