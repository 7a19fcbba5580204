"""Evaluation: the simulated clutter-removal benchmark and its reports."""
from .clutter_removal import (BenchmarkResult, BenchmarkSettings, Clearing, MethodSummary, RoundResult,
                              clear_table, round_seed, run_benchmark, run_round)

__all__ = ["BenchmarkResult", "BenchmarkSettings", "Clearing", "MethodSummary", "RoundResult", "clear_table",
           "round_seed", "run_benchmark", "run_round"]
