"""Formulations: MILP (PuLP + CBC) and CP-SAT (OR-Tools), mirrored file for file.

Both select one column per job and place the stage blocks of pipeline columns; the data they
read is prepared once, solver-free, by :mod:`planner.formulations.index`.
"""
