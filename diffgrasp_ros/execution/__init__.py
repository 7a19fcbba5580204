"""Execution: turning a ranked grasp list into a pick — the simulated free-floating hand, or a whole
arm (motion planning in ``execution.motion``, reachability in ``execution.reachability``)."""
from .sim_executor import ExecutionReport, SimHandExecutor

__all__ = ["ExecutionReport", "SimHandExecutor"]
