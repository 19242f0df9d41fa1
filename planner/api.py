"""The library surface: load inputs, plan, evaluate a plan, validate the cost model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner import check
from planner.catalog import Catalog, default_catalog
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.describe import describe_plan
from planner.errors import InputProblem, PlannerInputError
from planner.result import Result
from planner.solve import plan
from planner.spec.plan import Plan
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


def describe(
    result: Result, problem: Problem, catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """Machine-level details of a result's plan (stage map, ranks, WAN cells, power)."""
    if result.plan is None:
        return []
    return describe_plan(result.plan, result.metrics, problem, catalog or default_catalog())


def simulate(
    problem: Problem,
    catalog: Catalog | None = None,
    policy: str | None = None,
    timeline: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Discrete-event replay of every configuration of the problem's plan (or, without one,
    of the plan ``plan`` finds), next to the cost model's iteration time. ``timeline`` writes
    a Gantt chart of each (``name.png``, then ``name-2.png``, ...)."""
    from planner.bubbles import harvest
    from planner.simulate import simulate as replay
    from planner.spec.base import WanSharing

    cat = catalog or default_catalog()
    configs = list(problem.plan.training) if problem.plan else []
    if not configs:
        found = plan(problem, cat)
        configs = list(found.plan.training) if found.plan else []
    rows: list[dict[str, Any]] = []
    for cfg in configs:
        if policy is not None:
            cfg = cfg.model_copy(update={"wan_sharing": WanSharing(policy)})
        job = problem.workloads.training_job(cfg.job)
        m = evaluate_training(job, cat.model(job.model), cfg, problem.cluster, cat.gpus)
        tl = replay(cfg, m)
        if timeline is not None:
            from planner.plots import timeline_figure

            target = Path(timeline)
            if rows:
                target = target.with_name(f"{target.stem}-{len(rows) + 1}{target.suffix}")
            timeline_figure(tl, f"{cfg.job}: {cfg.schedule.value} pp{cfg.pp}", target)
        prefill = [
            harvest(cfg, m, tl, svc, cat.model(svc.model), problem.cluster, cat.gpus).to_json()
            for svc in problem.workloads.inference
            if svc.prefill_in_bubbles
        ]
        rows.append(
            {
                "prefill_in_bubbles": prefill,
                "job": cfg.job,
                "schedule": f"{cfg.schedule.value} pp{cfg.pp} v{cfg.vpp} m{m.micro_batches}",
                "policy": cfg.wan_sharing.value,
                "cost_model_s": m.iteration_time_s,
                "simulated_s": tl.iteration_s,
                "difference": tl.iteration_s / m.iteration_time_s - 1.0,
                "utilisation": [tl.utilisation(d) for d in range(cfg.pp)],
                "link_busy_s": tl.link_busy_s,
            }
        )
    return rows


def violations(problem: Problem, plan: Plan, catalog: Catalog | None = None) -> list[str]:
    """Every rule of ``problem`` that ``plan`` breaks (empty if none)."""
    return check.violations(problem, plan, catalog)


__all__ = ["describe", "evaluate", "plan", "simulate", "validate_runs", "violations"]
