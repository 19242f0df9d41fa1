"""MILP formulation (PuLP + CBC). Mirrors :mod:`planner.formulations.cpsat` file for file."""

from planner.formulations.milp.model import Built, build, decode, decode_counts, solve

__all__ = ["Built", "build", "decode", "decode_counts", "solve"]
