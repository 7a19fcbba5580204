"""The repository is one ament_python package; the library never imports ROS."""
import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "diffgrasp"
    assert root.find("export/build_type").text == "ament_python"
    exec_depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "moveit_msgs"} <= exec_depends
    assert (ROOT / "resource" / "diffgrasp").is_file()


def test_setup_declares_the_console_script_and_ament_resources():
    setup = (ROOT / "setup.py").read_text()
    assert "diffgrasp = diffgrasp_ros.cli.main:main" in setup
    assert "resource_index/packages" in setup and "package.xml" in setup
    assert "$base/lib/diffgrasp" in (ROOT / "setup.cfg").read_text()


def _imported_modules(statements) -> list[str]:
    names = []
    for node in statements:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_library_never_imports_rclpy_and_imports_ros_messages_only_lazily():
    """Below the ROS layer: rclpy never; message packages and moveit_py only inside the functions of
    the backends that need them (the MoveIt planner), so the library imports without ROS."""
    offenders = []
    for path in (ROOT / "diffgrasp_ros").rglob("*.py"):
        relative = path.relative_to(ROOT / "diffgrasp_ros")
        if "nodes" in relative.parts or relative == Path("cli/up.py"):  # the ROS layer itself
            continue
        tree = ast.parse(path.read_text())
        anywhere = _imported_modules(ast.walk(tree))
        offenders += [f"{path}: {n}" for n in anywhere if n.split(".")[0] in {"rclpy", "rosidl_runtime_py"}]
        at_module_level = _imported_modules(tree.body)
        offenders += [f"{path}: {n} at module level" for n in at_module_level
                      if n.split(".")[0].endswith("_msgs") or n.split(".")[0] == "moveit"]
    assert not offenders
    assert any("moveit" in n for n in _imported_modules(ast.walk(ast.parse(
        (ROOT / "diffgrasp_ros/execution/motion/moveit_backend.py").read_text()))))  # the check sees lazy ones


def test_readme_opens_with_the_demo_and_test_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    demo, tests = blocks[0].strip(), blocks[1].strip()
    assert "scripts/setup.sh" in demo and "diffgrasp demo" in demo
    assert "scripts/setup.sh --test" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_requirements_pin_the_cpu_torch_first():
    lines = [l for l in (ROOT / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "torch==2.13.0"
    assert all("==" in l for l in lines)


def test_every_model_folder_has_a_card_loadable_weights_and_is_installed():
    import json

    import torch

    setup = (ROOT / "setup.py").read_text()
    folders = sorted(p for p in (ROOT / "models").iterdir() if p.is_dir())
    assert {"igd", "igd_graft", "depth_restore", "depth_noise"} <= {p.name for p in folders}
    for folder in folders:
        card = (folder / "MODEL_CARD.md").read_text()
        assert "```bash" in card or "python" in card, f"{folder.name}: the card gives no reproducing command"
        json.loads((folder / "config.json").read_text())
        state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
        assert state and all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), folder.name
        assert (folder / "weights.pt").stat().st_size < 30e6, f"{folder.name}: weights over 30 MB"
        assert f'glob("models/{folder.name}/*")' in setup, f"setup.py does not install models/{folder.name}"
        assert f"`{folder.name}/`" in (ROOT / "models" / "README.md").read_text(), f"{folder.name} not in models/README.md"


def cited_results_files() -> list[Path]:
    """Every results file the README links or names (``benchmarks/results/<name>``, also ``leap_*.md``)."""
    text = (ROOT / "README.md").read_text()
    results = ROOT / "benchmarks" / "results"
    files = set()
    for name in re.findall(r"benchmarks/results/([\w.*-]+\w)", text):
        files |= set(results.glob(name)) if "*" in name else {results / name}
    return sorted(files)


def test_every_results_file_the_readme_cites_exists_and_names_a_clean_commit():
    files = cited_results_files()
    assert len(files) >= 15  # the README's figures come from files, not from memory
    for path in files:
        assert path.is_file(), f"the README cites {path.relative_to(ROOT)}, which does not exist"
        text = path.read_text()
        assert re.search(r"commit\W{0,4}[0-9a-f]{7,40}\b", text), f"{path.name} names no commit"
        assert "-dirty" not in text and "dirty tree" not in text, f"{path.name} was made from a dirty tree"
