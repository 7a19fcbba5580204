"""Robot and gripper descriptions."""
from .arm import ArmModel, load_arm
from .gripper import FRANKA_HAND, Box, ParallelGripper
from .registry import Embodiment, get_robot, robot_names

__all__ = ["ArmModel", "Box", "Embodiment", "FRANKA_HAND", "ParallelGripper", "get_robot", "load_arm",
           "robot_names"]
