"""planner: plan LLM training and inference across GPU datacenters under power budgets.

The public surface (docs/api.md)::

    from planner import load, evaluate, plan, simulate, explain, export
    problem = load("instances/quickstart.yaml")
    result = plan(problem, backend="milp")          # or "cpsat", "exhaustive", "greedy"
    print(result.status, result.objective, result.gap, result.plan)
    for metrics in evaluate(problem):               # the plan: section of the input
        print(metrics.tokens_per_s, metrics.mfu)

* inputs: :func:`load` (files), :func:`problem_from_dict` (a mapping), the spec types
  (:class:`Problem`, :class:`Cluster`, :class:`Workloads`, ...), :func:`input_schemas`;
* planning: :func:`plan` -> :class:`Result` (status, objective, bound, gap, :class:`Plan`);
* figures: :func:`evaluate` (cost model), :func:`simulate` (event replay),
  :func:`violations`, :func:`describe`, :func:`explain`;
* launch: :func:`export` (Megatron-LM, DeepSpeed, torchrun, Slurm, vLLM);
* the cost model against measurements: :func:`validate`.
"""

from __future__ import annotations

from planner.api import (
    describe,
    evaluate,
    explain,
    export,
    input_schemas,
    plan,
    simulate,
    validate,
    validate_runs,
    violations,
)
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.errors import InputProblem, PlannerInputError
from planner.load import load, problem_from_dict
from planner.result import Result, SolveOptions, Status
from planner.spec.cluster import Cluster, GpuPool, Site, WanLink
from planner.spec.model import ModelSpec
from planner.spec.plan import EngineGroup, Plan, ServingConfig, StagePlacement, TrainingConfig
from planner.spec.problem import Objective, Problem
from planner.spec.workload import InferenceService, TrainingJob, Workloads
from planner.topology import cluster_from_graph, cluster_to_graph

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "EngineGroup",
    "GpuPool",
    "InferenceService",
    "InputProblem",
    "ModelSpec",
    "Objective",
    "Plan",
    "PlannerInputError",
    "Problem",
    "Result",
    "ServingConfig",
    "ServingMetrics",
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
    "explain",
    "export",
    "input_schemas",
    "load",
    "plan",
    "problem_from_dict",
    "simulate",
    "validate",
    "validate_runs",
    "violations",
]
