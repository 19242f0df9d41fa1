"""The one result type every backend returns (solver-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.spec.plan import Plan


class Status(StrEnum):
    """Outcome of a solve."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    """A plan, not proven optimal (time limit): ``gap`` says how far it may be."""
    INFEASIBLE = "infeasible"
    TIME_LIMIT_NO_SOLUTION = "time_limit_no_solution"
    ERROR = "error"


@dataclass(frozen=True)
class SolveOptions:
    """Knobs shared by every backend."""

    time_limit_s: float = 60.0
    rel_gap: float = 1e-6
    threads: int = 1
    """One thread keeps runs deterministic (same input, same plan)."""
    seed: int = 0
    warm_start: bool = True
    export_model: str | None = None
    """Write the built formulation here before solving (``.lp`` for MILP, ``.pb.txt`` for
    CP-SAT)."""
    layouts: tuple[str, ...] | None = None
    """Only columns on these layout modes (``single``, ``pipeline``, ``data``); None: all.
    The data-parallel baseline solves with ``("single", "data")``; ``greedy`` ignores it."""


@dataclass(frozen=True)
class Choice:
    """The decision for one job: a column and, for pipeline layouts, its stage split."""

    column: int
    stages: tuple[int, ...] = ()
    """Stages on each pool of the column's layout (``pipeline`` only)."""


@dataclass
class Result:
    """Status, objective, bound, gap, time, backend, plan and its cost-model figures."""

    status: Status
    backend: str
    objective_kind: str = ""
    """What ``objective`` measures (``throughput`` in tokens/s, ``time_to_train`` in h,
    ``energy`` in kWh, ``carbon`` in kg CO2, ``cost`` in USD, ``gpus``); serving counts
    in the energy, carbon and cost objectives for ``Objective.serving_hours``."""
    objective: float | None = None
    """The plan's objective, from the cost model (what ``evaluate`` reports)."""
    bound: float | None = None
    """Best bound the backend proved on the objective."""
    gap: float | None = None
    """``|objective - bound| / |objective|``."""
    solve_time_s: float = 0.0
    plan: Plan | None = None
    metrics: list[TrainingMetrics] = field(default_factory=list)
    serving: list[ServingMetrics] = field(default_factory=list)
    """Cost-model figures of every inference service of the plan."""
    choices: list[Choice] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    """Engines of every serving option used (``n[o]``)."""
    explanation: str = ""
    """Why the problem is infeasible, or what limited the search."""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """``|objective - bound| / max(|objective|, tiny)``; None if either is missing."""
    if objective is None or bound is None:
        return None
    return abs(objective - bound) / max(abs(objective), 1e-12)
