"""The exhaustive oracle: every column and every stage split, each plan re-scored by the cost
model and checked by :func:`planner.check.violations`. It shares nothing with the
formulations but the columns, so it also checks their linear coefficients."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from planner.candidates import Column, Space
from planner.catalog import Catalog
from planner.check import violations
from planner.result import Choice, Status
from planner.solution import evaluate_plan, plan_from_choices, plan_objective
from planner.spec.problem import Problem

MAX_PLANS = 200_000
"""Refuse spaces with more plans than this (the oracle is for tiny instances)."""


def splits(col: Column) -> Iterator[tuple[int, ...]]:
    """Every split of the column's stages into non-empty contiguous blocks on its chain."""
    if col.layout.mode != "pipeline":
        yield ()
        return
    n = len(col.layout.pools)
    for cuts in itertools.combinations(range(1, col.pp), n - 1):
        bounds = (0, *cuts, col.pp)
        yield tuple(b - a for a, b in itertools.pairwise(bounds))


def count_plans(space: Space) -> int:
    """Plans the oracle would score."""
    total = 1
    for job in space.jobs:
        total *= sum(sum(1 for _ in splits(c)) for c in space.columns if c.job == job)
    return total


def exhaustive(
    problem: Problem, catalog: Catalog, space: Space, time_limit_s: float = 600.0
) -> tuple[Status, list[Choice] | None, int, str]:
    """(status, best choices, plans scored, explanation)."""
    n = count_plans(space)
    if n > MAX_PLANS:
        return Status.ERROR, None, 0, f"{n} plans exceed the exhaustive limit of {MAX_PLANS}"
    per_job = [
        [Choice(c.index, s) for c in space.columns if c.job == job for s in splits(c)]
        for job in space.jobs
    ]
    sign = -1.0 if space.maximise else 1.0
    best: tuple[float, list[Choice]] | None = None
    t0, scored = time.perf_counter(), 0
    for combo in itertools.product(*per_job):
        if time.perf_counter() - t0 > time_limit_s:
            status = Status.FEASIBLE if best else Status.TIME_LIMIT_NO_SOLUTION
            return status, best[1] if best else None, scored, "time limit"
        choices = list(combo)
        plan = plan_from_choices(space, choices)
        scored += 1
        if violations(problem, plan, catalog, space.objective):
            continue
        value = plan_objective(problem, space.objective.kind, evaluate_plan(problem, plan, catalog))
        if best is None or sign * value < sign * best[0] - 1e-12 * abs(best[0]):
            best = (value, choices)
    if best is None:
        return Status.INFEASIBLE, None, scored, ""
    return Status.OPTIMAL, best[1], scored, ""
