"""The library surface: load inputs, evaluate a plan, validate the cost model."""

from __future__ import annotations

from pathlib import Path

from planner.catalog import Catalog, default_catalog
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.errors import InputProblem, PlannerInputError
from planner.spec.problem import Problem
from planner.validation import RunResult, summarise, validate_file


def evaluate(
    problem: Problem, catalog: Catalog | None = None, source: str = "<input>"
) -> list[TrainingMetrics]:
    """Cost-model figures of every training configuration in ``problem.plan``.

    Raises :class:`PlannerInputError` when the problem has no plan or a configuration cannot
    be placed on the cluster.
    """
    cat = catalog or default_catalog()
    if problem.plan is None or not problem.plan.training:
        raise PlannerInputError(
            [
                InputProblem(
                    source,
                    "plan",
                    "no plan to evaluate",
                    "a plan: section with training configurations",
                )
            ]
        )
    out = []
    for i, cfg in enumerate(problem.plan.training):
        job = problem.workloads.training_job(cfg.job)
        model = cat.model(job.model)
        try:
            out.append(evaluate_training(job, model, cfg, problem.cluster, cat.gpus))
        except (PlacementError, ValueError) as exc:
            raise PlannerInputError(
                [
                    InputProblem(
                        source,
                        f"plan.training[{i}]",
                        str(exc),
                        "a configuration the cluster can host",
                    )
                ]
            ) from None
    return out


def validate_runs(path: str | Path, catalog: Catalog | None = None) -> dict[str, object]:
    """The cost model against measured runs: ``{"runs": [...], "summary": {...}}``."""
    results: list[RunResult] = validate_file(path, catalog)
    return {"runs": [r.to_json() for r in results], "summary": summarise(results)}
