"""CP-SAT formulation (OR-Tools). Mirrors :mod:`planner.formulations.milp` file for file."""

from planner.formulations.cpsat.model import Built, build, decode, solve

__all__ = ["Built", "build", "decode", "solve"]
