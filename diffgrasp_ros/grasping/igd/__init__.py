"""Implicit Grasp Diffusion (IGD) for the parallel gripper; torch is imported only when a model is built."""
from .config import IGDConfig
from .planner import IGDPlanner
from .pretrained import DEFAULT_WEIGHTS, load_pretrained, save_pretrained

__all__ = ["DEFAULT_WEIGHTS", "IGDConfig", "IGDPlanner", "load_pretrained", "save_pretrained"]
