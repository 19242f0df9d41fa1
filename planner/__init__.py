"""planner: plan LLM training and inference across GPU datacenters under power budgets.

The public surface::

    from planner import load, evaluate, validate_runs
    problem = load("instances/quickstart.yaml")
    for metrics in evaluate(problem):
        print(metrics.tokens_per_s, metrics.mfu)
"""

from __future__ import annotations

from planner.api import evaluate, validate_runs
from planner.costmodel.metrics import TrainingMetrics
from planner.errors import InputProblem, PlannerInputError
from planner.load import load, problem_from_dict
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
    "Site",
    "StagePlacement",
    "TrainingConfig",
    "TrainingJob",
    "TrainingMetrics",
    "WanLink",
    "Workloads",
    "__version__",
    "cluster_from_graph",
    "cluster_to_graph",
    "evaluate",
    "load",
    "problem_from_dict",
    "validate_runs",
]
