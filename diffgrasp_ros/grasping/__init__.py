"""Grasp generation: the planner API and its methods."""
from . import baseline  # noqa: F401  (registers the "baseline" method)
from . import igd  # noqa: F401  (registers the "igd" method)
from . import leap  # noqa: F401  (registers the "leap" method)
from .grasp import Grasp, PlanResult
from .planner import GraspPlanner, device_option, make_planner, parse_method, planner_names, register_planner

__all__ = ["Grasp", "GraspPlanner", "PlanResult", "device_option", "make_planner", "parse_method", "planner_names",
           "register_planner"]
