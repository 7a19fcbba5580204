import os
from glob import glob

from setuptools import find_packages, setup

package_name = "diffgrasp"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["diffgrasp_ros", "diffgrasp_ros.*"]),
    package_data={"diffgrasp_ros": ["robots/urdf/*.urdf", "sim/objects/**/*", "sim/object_families.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{package_name}/config/security", glob("config/security/*.xml")),
        (f"share/{package_name}/config/security/schema", glob("config/security/schema/*.xsd")),
        (f"share/{package_name}/models", glob("models/*.md")),
        (f"share/{package_name}/models/igd", glob("models/igd/*")),
        (f"share/{package_name}/models/igd_graft", glob("models/igd_graft/*")),
        (f"share/{package_name}/models/igd_families", glob("models/igd_families/*")),
        (f"share/{package_name}/models/depth_restore", glob("models/depth_restore/*")),
        (f"share/{package_name}/models/depth_noise", glob("models/depth_noise/*")),
        (f"share/{package_name}/models/leap", glob("models/leap/*")),
        (f"share/{package_name}/models/leap_evaluator", glob("models/leap_evaluator/*")),
        (f"share/{package_name}/models/leap_transfer",
         [f for f in glob("models/leap_transfer/*") if os.path.isfile(f)]),  # its templates/ below
        (f"share/{package_name}/models/leap_transfer/templates", glob("models/leap_transfer/templates/*")),
    ],
    # Runtime dependencies are pinned in requirements.txt (torch must come from the CPU build).
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="diffgrasp maintainers",
    maintainer_email="maintainers@diffgrasp.example.com",
    description="Grasp perception from depth cameras to ranked, executable grasps.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "diffgrasp = diffgrasp_ros.cli.main:main",
            # One executable per lifecycle node (ros2 run / launch find them in lib/diffgrasp).
            "depth_capture = diffgrasp_ros.nodes.depth_capture:main",
            "depth_processor = diffgrasp_ros.nodes.depth_processor:main",
            "scene_builder = diffgrasp_ros.nodes.scene_builder:main",
            "grasp_server = diffgrasp_ros.nodes.grasp_server:main",
            "grasp_executor = diffgrasp_ros.nodes.grasp_executor:main",
            "lifecycle_manager = diffgrasp_ros.nodes.lifecycle_manager:main",
        ],
    },
)
