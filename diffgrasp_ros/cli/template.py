"""``diffgrasp template make`` / ``show``: LEAP grasp templates on category instances (``grasping.leap.templates``)."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from .common import add_device_argument

DEFAULT_POINTS = 2048


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "template", help="make or show LEAP grasp templates (object points with parts, grasp, contacts)",
        description="Grasp templates for contact-map transfer: a category instance's surface points with part "
                    "labels, a LEAP hand grasp on it and the points it touches, with a task label.")
    commands = parser.add_subparsers(dest="template_command", metavar="ACTION", required=True)
    make = commands.add_parser(
        "make", help="make a template from a planned grasp or a given hand pose",
        description="Make a template on instance --instance of --category (sim.categories; object frame: bottom "
                    "centre, z up). --from-plan stands the instance on the simulated table, plans with --method "
                    "around --part, closes the simulated hand on the best grasps in turn and keeps the first that "
                    "holds with at least --min-part-share of its contacts on --part. --hand-pose takes a JSON file "
                    '{"T_object_hand": 4x4 leap_palm pose in the object frame, "joints": 16 angles in rad}.')
    source = make.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-plan", action="store_true", help="plan, test in simulation, keep the first good grasp")
    source.add_argument("--hand-pose", type=Path, help="JSON with T_object_hand and joints")
    make.add_argument("--category", required=True, help="object category (mug, bottle, bowl, hammer, box)")
    make.add_argument("--split", choices=("train", "held_out"), default="train", help="instance split (default: train)")
    make.add_argument("--instance", type=int, default=0, help="instance index in the split (default: 0)")
    make.add_argument("--part", required=True, help="the part the grasp holds, e.g. handle")
    make.add_argument("--task", help="task label (default: the part)")
    make.add_argument("--out", type=Path, required=True, help="template file (.npz)")
    make.add_argument("--points", type=int, default=DEFAULT_POINTS,
                      help=f"object surface points stored (default: {DEFAULT_POINTS})")
    make.add_argument("--seed", type=int, default=0, help="surface sampling and planner seed (default: 0)")
    plan = make.add_argument_group("--from-plan")
    plan.add_argument("--method", default="leap", help="dexterous planning method (default: leap)")
    plan.add_argument("--robot", default="xarm_leap", help="LEAP embodiment (default: xarm_leap)")
    plan.add_argument("--views", choices=("side", "multi"), default="side", help="camera views (default: side)")
    plan.add_argument("--yaw", type=float, default=0.0, help="the instance's turn about z on the table (deg)")
    plan.add_argument("--candidates", type=int, default=20, help="planned grasps tested at most (default: 20)")
    plan.add_argument("--min-part-share", type=float, default=0.6,
                      help="share of the contacts that must be on --part (default: 0.6)")
    plan.add_argument("--cache", type=Path, help="folder for the instance's URDF / OBJ (default: a temporary one)")
    add_device_argument(plan)
    make.set_defaults(run=run_make)
    show = commands.add_parser("show", help="print a template's summary", description="Check and summarise a template.")
    show.add_argument("file", type=Path)
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    from ..grasping.leap.templates import load_template

    print(f"{args.file}:\n{load_template(args.file).summary()}")
    return 0


def run_make(args: argparse.Namespace) -> int:
    from ..grasping.leap.templates import make_template, save_template
    from ..sim.categories import make_instance

    instance = make_instance(args.category, args.split, args.instance)
    if args.part not in instance.part_names:
        raise ValueError(f"a {args.category} has the parts {list(instance.part_names)}, not {args.part!r}")
    if args.out.suffix != ".npz":
        raise ValueError(f"--out {args.out}: templates are .npz files")
    if args.candidates < 1 or not 0.0 <= args.min_part_share <= 1.0:
        raise ValueError("--candidates must be at least 1 and --min-part-share in [0, 1]")
    if args.points < 64:
        raise ValueError(f"--points {args.points}: a template needs at least 64 object points")
    sample = instance.sample_surface(args.points, args.seed)
    provenance = {"instance": instance.name, "split": instance.split, "index": instance.index,
                  "parameters": instance.parameters, "sample_seed": args.seed, "diffgrasp": __version__,
                  "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if args.hand_pose is not None:
        T_object_hand, joints = _read_hand_pose(args.hand_pose)
        provenance["source"] = f"hand pose {args.hand_pose.name}"
    else:
        T_object_hand, joints, found = _plan_grasp(args, instance, sample)
        provenance.update(source="plan", **found)
    template = make_template(args.category, args.task or args.part, instance.part_names, sample.points_m,
                             sample.normals, sample.parts, T_object_hand, joints, provenance)
    share = template.part_share(args.part)
    if args.hand_pose is not None and share < args.min_part_share:
        print(f"diffgrasp template: warning: only {100 * share:.0f} % of the contacts are on the {args.part}",
              file=sys.stderr)
    save_template(template, args.out)
    print(f"{template.summary()}\nwrote {args.out}")
    return 0


def _read_hand_pose(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"hand pose file not found: {path}")
    try:
        data = json.loads(path.read_text())
        return np.asarray(data["T_object_hand"], float), np.asarray(data["joints"], float)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: expected JSON with 'T_object_hand' (4x4) and 'joints' (16 numbers): "
                         f"{error!r}") from None


def _plan_grasp(args, instance, sample) -> tuple[np.ndarray, np.ndarray, dict]:
    """Stand the instance on the simulated table, plan around the part, close the hand on the ranked grasps in
    turn; the first that holds with enough of its contacts on the part gives (T_object_hand, contact joints)."""
    import tempfile

    from ..execution.sim_executor import LEAP_GUARDED_APPROACH_M, SimHandExecutor
    from ..geometry import invert, pose_from_quaternion
    from ..grasping import device_option, make_planner
    from ..grasping.leap.templates import hand_contacts
    from ..robots import leap
    from ..robots.registry import get_robot
    from ..sim.camera import view_poses
    from ..sim.categories import write_instance
    from ..sim.leap_hand import FINGERS
    from ..sim.pick_scene import stand_object
    from ..sim.world import ClutterWorld

    robot = get_robot(args.robot)
    if robot.hand != "leap":
        raise ValueError(f"--robot {args.robot} has no LEAP hand: templates are LEAP grasps")
    part = instance.part_names.index(args.part)
    with tempfile.TemporaryDirectory() as tmp:
        model = write_instance(instance, args.cache or tmp)
        with ClutterWorld([model], seed=args.seed) as world:
            body = stand_object(world, model, yaw_rad=np.deg2rad(args.yaw))

            def T_workspace_object() -> np.ndarray:
                return pose_from_quaternion(*world.object_pose(body))

            # Seeds only on the part, the wrist guided towards it (the planner's region option).
            T = T_workspace_object()
            on_part = sample.points_m[sample.parts == part] @ T[:3, :3].T + T[:3, 3]
            centre = on_part.mean(axis=0)
            radius = float(np.linalg.norm(on_part - centre, axis=1).max()) + 0.01
            planner = make_planner(args.method, robot, max_grasps=args.candidates, seed=args.seed,
                                   region=":".join(f"{x:.4f}" for x in (*centre, radius)),
                                   **device_option(args.method, args.device))
            views = [world.camera.render(T) for T in view_poses(args.views)]
            result = planner.plan_from_depth([v.depth for v in views], [v.T_workspace_camera for v in views])
            if not result.found:
                raise RuntimeError(f"the {args.method} planner found no grasp on {instance.name}: {result.message}")
            executor = SimHandExecutor(world, robot)
            rest = world.p.getBasePositionAndOrientation(body)

            def put_back() -> None:  # every grasp is tried on the object as it stood when planned
                world.p.resetBasePositionAndOrientation(body, *rest)
                world.p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))

            tried = []
            for rank, grasp in enumerate(result.grasps):
                T_palm, q_pregrasp, q_closing = executor.leap_postures(grasp)
                contact = executor.hand.close_to_contact(T_palm, q_pregrasp, q_closing, LEAP_GUARDED_APPROACH_M)
                T_object_hand = invert(T_workspace_object()) @ contact.T_palm_contact if contact.ok else None
                put_back()
                if T_object_hand is None:
                    tried.append(f"#{rank} {contact.reason}")
                    continue
                # The sim judges a hold by thumb against finger; a template must show that opposition at contact.
                if contact.object_id != body or "thumb" not in contact.digits \
                        or not any(finger in contact.digits for finger in FINGERS):
                    tried.append(f"#{rank} closed with {', '.join(contact.digits) or 'no digit'} on the object")
                    continue
                touched, _, _ = hand_contacts(sample.points_m, T_object_hand, contact.q_contact)
                share = float(np.mean(sample.parts[touched] == part)) if touched.size else 0.0
                if share < args.min_part_share:
                    tried.append(f"#{rank} {100 * share:.0f} % of its {touched.size} contacts on the {args.part}")
                    continue
                outcome = executor.execute_grasp(grasp, remove_held=False)
                put_back()
                if outcome.success:
                    # Clipped: PyBullet's joint limits are soft, settled joints can end a hair outside them.
                    return T_object_hand, np.clip(contact.q_contact, leap.LOWER_RAD, leap.UPPER_RAD), {
                        "method": args.method, "robot": args.robot, "rank": rank, "score": float(grasp.score),
                        "part_share": share, "held": True, "views": args.views, "yaw_deg": args.yaw}
                tried.append(f"#{rank} not held ({outcome.reason})")
    raise RuntimeError(f"none of the {len(result.grasps)} planned grasps on {instance.name} held with "
                       f"{100 * args.min_part_share:.0f} % of its contacts on the {args.part}: " + "; ".join(tried))

