"""The ``device`` option of the learned models: resolving it, loading onto it, and inference that stays on it.

Tested on the CPU (no GPU here): the device is resolved and checked, models load onto it, results on an
explicit ``cpu`` equal the default's, and a static scan keeps the inference code free of tensors created
without a device (which would break on a GPU while every CPU test passes).
"""
import argparse
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from diffgrasp_ros import make_planner
from diffgrasp_ros.devices import resolve_device

PACKAGE = Path(__file__).resolve().parents[1] / "diffgrasp_ros"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


# -- resolve_device --------------------------------------------------------------------------------
def test_auto_is_cuda_when_available_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == resolve_device("auto").type == resolve_device(" AUTO ").type == expected


@pytest.mark.parametrize("spec", ["cpu", "CPU", torch.device("cpu"), "cpu:0"])
def test_the_cpu_in_any_spelling(spec):
    assert resolve_device(spec) == torch.device("cpu")


@NO_CUDA
@pytest.mark.parametrize("spec", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_cuda_without_cuda_says_torch_reports_none(spec):
    with pytest.raises(ValueError, match=r"device '?cuda.*is not available: torch reports no CUDA"):
        resolve_device(spec)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_mps_without_mps_is_refused():
    with pytest.raises(ValueError, match="'mps' is not available: torch reports no MPS"):
        resolve_device("mps")


@pytest.mark.parametrize("spec", ["gpu0", "", "cuda:x", "meta", "xpu"])
def test_anything_else_is_refused_with_what_is_accepted(spec):
    with pytest.raises(ValueError, match=r"device .*use auto \(CUDA when available, else the CPU\), cpu, cuda, "
                                         r"cuda:N or mps"):
        resolve_device(spec)


def test_float_tensor_takes_any_array():
    from diffgrasp_ros.devices import float_tensor

    flipped = np.arange(6.0).reshape(2, 3)[:, ::-1]  # negative strides, float64
    tensor = float_tensor(flipped, torch.device("cpu"))
    assert tensor.dtype == torch.float32 and tensor.tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]


# -- loading onto the device -------------------------------------------------------------------------
def _shipped_models(device):
    from diffgrasp_ros.depth.noise_diffusion import NoiseDiffusionModel
    from diffgrasp_ros.depth.restoration import DepthRestorer
    from diffgrasp_ros.grasping import igd, leap
    from diffgrasp_ros.grasping.leap.evaluator import DEFAULT_EVALUATOR_WEIGHTS, load_evaluator

    return {"igd": igd.load_pretrained(igd.DEFAULT_WEIGHTS, device),
            "leap": leap.load_pretrained(leap.DEFAULT_WEIGHTS, device),
            "leap evaluator": load_evaluator(DEFAULT_EVALUATOR_WEIGHTS, device),
            "restoration": DepthRestorer.from_pretrained(device=device),
            "noise": NoiseDiffusionModel.from_pretrained(device=device)}


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_every_parameter_and_buffer_of_a_loaded_model_is_on_the_device(device):
    expected = resolve_device(device)
    for name, model in _shipped_models(device).items():
        assert not model.training, name
        misplaced = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device != expected]
        assert not misplaced, f"{name}: {misplaced} not on {expected}"


@NO_CUDA
def test_an_unavailable_device_fails_when_the_model_is_built():
    from diffgrasp_ros.depth import DepthProcessor

    with pytest.raises(ValueError, match="no CUDA"):
        make_planner("igd", device="cuda")
    with pytest.raises(ValueError, match="no CUDA"):
        make_planner("leap:device=cuda", "xarm_leap")
    with pytest.raises(ValueError, match="no CUDA"):  # at start-up, not on the first frame
        DepthProcessor("restore", device="cuda")
    assert DepthProcessor("passthrough", device="cuda").mode == "passthrough"  # no model, no device


# -- the device as a planner option ----------------------------------------------------------------
def test_only_the_planners_with_a_model_take_a_device():
    from diffgrasp_ros.cli.common import planner_options
    from diffgrasp_ros.grasping import device_option

    assert device_option("igd", "cuda") == {"device": "cuda"}
    assert device_option("leap:approach=top", "cpu") == {"device": "cpu"}
    assert device_option("baseline", "cuda") == {}
    assert device_option("igd:device=cpu", "cuda") == {}  # the spec's own wins
    with pytest.raises(ValueError, match="planner 'baseline' does not take an option"):
        make_planner("baseline:device=cpu")
    args = argparse.Namespace(method="baseline", max_grasps=5, planner_seed=1, device="cuda")
    assert planner_options(args) == {"max_grasps": 5, "seed": 1}
    assert make_planner(args.method, **planner_options(args)).name == "baseline"


@pytest.fixture(scope="module")
def box_scene(box_objects):
    from scipy.spatial.transform import Rotation

    from diffgrasp_ros.scene import SceneBuilder
    from diffgrasp_ros.sim.camera import side_view
    from diffgrasp_ros.sim.world import ClutterWorld

    with ClutterWorld(box_objects, seed=0) as world:
        world.add_object(box_objects[0], (0.15, 0.15, world.workspace.table_height_m + 0.031), Rotation.identity(), 1.0)
        world.wait_for_objects_to_rest()
        view = world.camera.render(side_view())
    builder = SceneBuilder()
    builder.integrate(view.depth, view.T_workspace_camera)
    return builder.scene()


@pytest.mark.parametrize("method, robot", [("igd", "franka"), ("igd:evaluator=classifier,rounds=2", "franka"),
                                           ("leap:rounds=2", "xarm_leap"),
                                           ("leap:rounds=2,evaluator=none,approach=top", "xarm_leap")])
def test_planning_on_the_cpu_equals_the_default(box_scene, method, robot):
    default = make_planner(method, robot)
    on_cpu = make_planner(method, robot, device="cpu")
    assert on_cpu.device == on_cpu.scheduler.device == torch.device("cpu")
    assert on_cpu.scheduler.timesteps.device == on_cpu.scheduler.alphas_cumprod.device == torch.device("cpu")
    expected, result = default.plan(box_scene), on_cpu.plan(box_scene)
    assert result.found, result.message
    assert [g.to_dict() for g in result.grasps] == [g.to_dict() for g in expected.grasps]


def test_depth_models_on_the_cpu_equal_the_default():
    from diffgrasp_ros.depth.grafting import graft
    from diffgrasp_ros.depth.noise_diffusion import NoiseDiffusionModel
    from diffgrasp_ros.depth.restoration import DepthRestorer

    depth = np.full((96, 128), 0.6, np.float32) + np.linspace(0.0, 0.05, 128, dtype=np.float32)
    depth[30:50, 40:70] = 0.0  # a hole to fill
    colour = np.full((96, 128, 3), 120, np.uint8)
    restored = DepthRestorer.from_pretrained(device="cpu").restore(depth, colour)
    np.testing.assert_array_equal(restored, DepthRestorer.from_pretrained().restore(depth, colour))
    assert (restored[30:50, 40:70] > 0).all()
    grafted = [graft(depth, NoiseDiffusionModel.from_pretrained(device=device), np.random.default_rng(2), steps=2)
               for device in ("cpu", "auto")]
    np.testing.assert_array_equal(*grafted)


# -- inference creates its tensors on the model's device -------------------------------------------
INFERENCE_MODULES = ("grasping/igd/model.py", "grasping/igd/planner.py", "grasping/igd/scheduler.py",
                     "grasping/leap/model.py", "grasping/leap/planner.py", "grasping/leap/sampler.py",
                     "grasping/leap/evaluator.py", "depth/restoration.py", "depth/noise_diffusion.py",
                     "depth/grafting.py", "depth/processing.py")
FACTORIES = {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "linspace",
             "logspace", "eye", "tensor", "as_tensor", "Generator"}
# Module constructors build parameters and buffers on the CPU; ``model_files.load_model_folder`` then moves
# the whole model to its device.
ALLOWED = {("grasping/igd/model.py", "DeformableAttention.__init__"),
           ("grasping/igd/model.py", "GraspAttention.__init__"),
           ("grasping/leap/model.py", "LeapGraspModel.__init__"),
           ("depth/restoration.py", "DepthRestorer.__init__")}


def device_unaware_calls(source: str) -> list[tuple[str, int, str]]:
    """(function, line, what) for each torch tensor factory called without ``device=``, ``torch.from_numpy``
    (it cannot take a device: ``torch.as_tensor(..., device=)`` can) and ``.numpy()`` not called on ``.cpu()``."""
    found = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{scope}.{child.name}" if scope else child.name)
                continue
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                func = child.func
                is_torch = isinstance(func.value, ast.Name) and func.value.id == "torch"
                keywords = {k.arg for k in child.keywords}
                if is_torch and func.attr in FACTORIES and "device" not in keywords:
                    found.append((scope, child.lineno, f"torch.{func.attr} without device="))
                elif is_torch and func.attr == "from_numpy":
                    found.append((scope, child.lineno, "torch.from_numpy (a CPU tensor)"))
                elif func.attr == "numpy" and not (isinstance(func.value, ast.Call)
                                                   and isinstance(func.value.func, ast.Attribute)
                                                   and func.value.func.attr == "cpu"):
                    found.append((scope, child.lineno, ".numpy() without .cpu()"))
            visit(child, scope)

    visit(ast.parse(source), "")
    return found


def test_the_scan_finds_tensors_made_without_a_device():
    source = ("import torch\n"
              "def sample(x, generator):\n"
              "    noise = torch.randn(x.shape, generator=generator)\n"
              "    zeros = torch.zeros(3)\n"
              "    kept = torch.zeros(3, device=x.device) + torch.randn(3, generator=generator, device=x.device)\n"
              "    y = torch.from_numpy(x)\n"
              "    return noise.numpy(), kept.cpu().numpy(), torch.Generator().manual_seed(0)\n")
    assert [(line, what) for _, line, what in device_unaware_calls(source)] == [
        (3, "torch.randn without device="), (4, "torch.zeros without device="),
        (6, "torch.from_numpy (a CPU tensor)"), (7, ".numpy() without .cpu()"), (7, "torch.Generator without device=")]


def test_inference_code_creates_no_tensor_off_the_device():
    unaware = [f"{module}:{line} in {scope or 'module'}: {what}"
               for module in INFERENCE_MODULES
               for scope, line, what in device_unaware_calls((PACKAGE / module).read_text())
               if (module, scope) not in ALLOWED]
    assert not unaware, "\n".join(unaware)
    for module, scope in ALLOWED:  # every exception still needed, so the list cannot rot
        assert any(s == scope for s, _, _ in device_unaware_calls((PACKAGE / module).read_text())), (module, scope)
