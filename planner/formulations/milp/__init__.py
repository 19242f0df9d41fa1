"""MILP formulation (PuLP + CBC). Mirrors :mod:`planner.formulations.cpsat` file for file."""

from planner.formulations.milp.model import Built, build, decode, solve

__all__ = ["Built", "build", "decode", "solve"]
