"""planner: plan LLM training and inference across GPU datacenters under power budgets.

The public surface::

    from planner import load, evaluate, plan, validate_runs
    problem = load("instances/quickstart.yaml")
    result = plan(problem, backend="milp")          # or "cpsat", "exhaustive", "greedy"
    print(result.status, result.objective, result.gap, result.plan)
    for metrics in evaluate(problem):               # the plan: section of the input
        print(metrics.tokens_per_s, metrics.mfu)
"""

from __future__ import annotations

from planner.api import describe, evaluate, plan, validate_runs, violations
from planner.costmodel.metrics import TrainingMetrics
from planner.errors import InputProblem, PlannerInputError
from planner.load import load, problem_from_dict
from planner.result import Result, SolveOptions, Status
from planner.spec.cluster import Cluster, GpuPool, Site, WanLink
from planner.spec.model import ModelSpec
from planner.spec.plan import Plan, StagePlacement, TrainingConfig
from planner.spec.problem import Objective, Problem
from planner.spec.workload import InferenceService, TrainingJob, Workloads
from planner.topology import cluster_from_graph, cluster_to_graph

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "GpuPool",
    "InferenceService",
    "InputProblem",
    "ModelSpec",
    "Objective",
    "Plan",
    "PlannerInputError",
    "Problem",
    "Result",
    "Site",
    "SolveOptions",
    "StagePlacement",
    "Status",
    "TrainingConfig",
    "TrainingJob",
    "TrainingMetrics",
    "WanLink",
    "Workloads",
    "__version__",
    "cluster_from_graph",
    "cluster_to_graph",
    "describe",
    "evaluate",
    "load",
    "plan",
    "problem_from_dict",
    "validate_runs",
    "violations",
]
