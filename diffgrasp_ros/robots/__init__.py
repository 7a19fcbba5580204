"""Robot and gripper descriptions."""
from .gripper import FRANKA_HAND, Box, ParallelGripper
from .registry import Embodiment, get_robot, robot_names

__all__ = ["Box", "Embodiment", "FRANKA_HAND", "ParallelGripper", "get_robot", "robot_names"]
