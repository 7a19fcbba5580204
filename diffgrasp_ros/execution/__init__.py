"""Execution: turning a ranked grasp list into a pick (simulated free-floating hand for now)."""
from .sim_executor import ExecutionReport, SimHandExecutor

__all__ = ["ExecutionReport", "SimHandExecutor"]
