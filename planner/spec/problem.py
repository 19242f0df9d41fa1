"""The merged input of a planner run: cluster, workloads, objective and an optional plan."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from planner.spec.base import Spec
from planner.spec.cluster import Cluster
from planner.spec.plan import Plan
from planner.spec.workload import Workloads


class ObjectiveKind(StrEnum):
    """What a plan optimises."""

    THROUGHPUT = "throughput"
    GOODPUT = "goodput"
    """Throughput times the expected goodput fraction under failures (cluster reliability)."""
    TIME_TO_TRAIN = "time_to_train"
    ENERGY = "energy"
    CARBON = "carbon"
    COST = "cost"
    GPUS = "gpus"
    """Fewest GPUs (training and serving together)."""


class Objective(Spec):
    """The objective, with an optional throughput floor or deadline for the cost-like ones."""

    kind: ObjectiveKind = ObjectiveKind.THROUGHPUT
    min_tokens_per_s: float | None = Field(default=None, gt=0)
    deadline_h: float | None = Field(default=None, gt=0)
    serving_hours: float = Field(default=720.0, gt=0)
    """Hours of serving counted next to the training runs in the energy, carbon and cost
    objectives (every engine counted at its goodput for this long; default 30 days)."""


class Problem(Spec):
    """Every section of an instance. Instance metadata (``name``, ``tier``, ``provenance``,
    ``expected``) is kept but not interpreted here."""

    cluster: Cluster
    workloads: Workloads = Field(default_factory=Workloads)
    objective: Objective = Field(default_factory=Objective)
    plan: Plan | None = None
    name: str = ""
    description: str = ""
    tier: str | None = None
    provenance: str | list[str] | None = None
    expected: dict[str, Any] | None = None


SECTIONS = tuple(Problem.model_fields)
"""Top-level sections an input file may hold."""
