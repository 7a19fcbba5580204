"""Dexterous grasping for the LEAP hand (DexGraspNet 2.0 style); torch is imported only when a model is built."""
from .config import LeapConfig
from .planner import LeapPlanner
from .pretrained import DEFAULT_WEIGHTS, from_pretrained, load_pretrained, save_pretrained

__all__ = ["DEFAULT_WEIGHTS", "LeapConfig", "LeapPlanner", "from_pretrained", "load_pretrained", "save_pretrained"]
