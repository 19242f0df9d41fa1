"""Solver-free backends: the greedy baseline and the exhaustive oracle."""
