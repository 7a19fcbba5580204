"""The README's contact-map transfer picture: a template grasp, and its transfer onto a held-out instance.

    .venv/bin/python scripts/transfer_picture.py models/leap_transfer/templates/mug_handle.npz \
        docs/images/template_transfer.png [--instance 0] [--yaw-deg 30]

Left: the template's object (points by part), its contacts and the LEAP hand as the template holds it. Right: a
held-out instance of the category standing on the simulated table, the points one side view observes of it, the
best grasp of `leap:template=TEMPLATE` (the hand in its grasp posture) and, for a fitted hand, the contacts selected
on the maps; the title says whether the simulated hand lifted it, and for a hand sampled on the template's part which
share of its fingertips is on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

PART_COLOURS = ("#9aa5b1", "#f0a030", "#4a90d9", "#7cb342")


def draw(ax, points: np.ndarray, parts: np.ndarray | None, hand: tuple[np.ndarray, np.ndarray],
         contacts: np.ndarray, title: str, azimuth_deg: float) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    colours = [PART_COLOURS[p % len(PART_COLOURS)] for p in parts] if parts is not None else "#9aa5b1"
    ax.scatter(*points.T, s=2, c=colours, depthshade=False)
    vertices, faces = hand
    ax.add_collection3d(Poly3DCollection(vertices[faces], facecolor="#6c5ce7", edgecolor="#2d3436", linewidth=0.2,
                                         alpha=0.15))
    ax.scatter(*contacts.T, s=60, c="#d63031", depthshade=False, edgecolors="black", linewidths=0.5)
    everything = np.concatenate([points, vertices])
    centre, half = everything.mean(axis=0), 0.5 * np.ptp(everything, axis=0).max()
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=30, azim=azimuth_deg)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--instance", type=int, default=0, help="held-out instance of the category (default: 0)")
    parser.add_argument("--yaw-deg", type=float, default=30.0, help="its turn on the table (default: 30)")
    parser.add_argument("--transfer-weights", type=Path, help="transfer model (default: the shipped one)")
    parser.add_argument("--azimuth-deg", type=float, default=30.0, help="view azimuth on the template (default: 30)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffgrasp_ros import make_planner
    from diffgrasp_ros.execution.sim_executor import SimHandExecutor
    from diffgrasp_ros.grasping.leap.templates import load_template
    from diffgrasp_ros.robots import leap
    from diffgrasp_ros.robots.registry import get_robot
    from diffgrasp_ros.scene.scene import TargetBox
    from diffgrasp_ros.sim.categories import make_instance, write_instance
    from diffgrasp_ros.sim.pick_scene import perceived_scene, stand_object
    from diffgrasp_ros.sim.world import ClutterWorld
    from diffgrasp_ros.visualisation.hands import hand_mesh, hand_model

    template = load_template(args.template)
    hand = hand_model("xarm_leap")
    spec = f"leap:template={args.template}" + (f",transfer_weights={args.transfer_weights}"
                                               if args.transfer_weights else "")
    planner = make_planner(spec, "xarm_leap")
    instance = make_instance(template.category, "held_out", args.instance)
    with tempfile.TemporaryDirectory() as tmp, ClutterWorld([model := write_instance(instance, tmp)], seed=0) as world:
        body = stand_object(world, model, yaw_rad=np.deg2rad(args.yaw_deg))
        target = TargetBox(*world.p.getAABB(body), category=template.category)
        scene = dataclasses.replace(perceived_scene(world, "side"), target=target)
        plan = planner.plan(scene)
        if not plan.found:
            raise SystemExit(f"no transferred grasp: {plan.message}")
        best = plan.best
        outcome = SimHandExecutor(world, get_robot("xarm_leap")).execute_grasp(best, remove_held=False)
    observed = scene.points_m[scene.target_points_mask()]
    part = template.part_names[template.main_contact_part]
    figure = plt.figure(figsize=(11, 5.5), dpi=100)
    T_tcp = template.T_object_hand @ leap.T_PALM_TCP
    draw(figure.add_subplot(1, 2, 1, projection="3d"), template.points_object, template.point_parts,
         hand_mesh(hand, T_tcp, template.joints), template.contact_points,
         f"template: {template.provenance.get('instance', 'a training ' + instance.category)}\n"
         f"{100 * template.part_share(part):.0f} % of its contacts on the {part} (red: contacts)", args.azimuth_deg)
    # A fitted hand carries the contacts the maps chose; a hand sampled on the part has none.
    contacts = np.array(list(best.info.get("contacts_m", {}).values())).reshape(-1, 3)
    which = ("fitted; red: the contacts the maps chose" if len(contacts) else
             f"sampled on the {part}: {100 * best.info['part_share']:.0f} % of its fingertips on it")
    draw(figure.add_subplot(1, 2, 2, projection="3d"), observed, None, hand_mesh(hand, best.T_frame_grasp,
                                                                                   best.grasp_joints), contacts,
         f"transferred onto held-out {instance.name} (points: one side view)\n"
         f"{'lifted' if outcome.success else 'not lifted'} in simulation; {which}", args.azimuth_deg + args.yaw_deg)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
