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


def test_library_never_imports_ros():
    offenders = []
    for path in (ROOT / "diffgrasp_ros").rglob("*.py"):
        relative = path.relative_to(ROOT / "diffgrasp_ros")
        if "nodes" in relative.parts or relative == Path("cli/up.py"):  # the ROS layer itself
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in {"rclpy", "rosidl_runtime_py"}
                          or n.endswith("_msgs") or n.split(".")[0].endswith("_msgs")]
    assert not offenders


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
