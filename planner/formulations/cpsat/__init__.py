"""CP-SAT formulation (OR-Tools). Mirrors :mod:`planner.formulations.milp` file for file."""

from planner.formulations.cpsat.model import Built, build, decode, decode_counts, solve

__all__ = ["Built", "build", "decode", "decode_counts", "solve"]
