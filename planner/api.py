"""The library surface: load inputs, plan, evaluate a plan, validate the cost model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner import check
from planner.catalog import Catalog, default_catalog
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.describe import describe_plan
from planner.describe import site_power as site_power_rows
from planner.errors import InputProblem, PlannerInputError
from planner.pareto import ParetoFront, sweep
from planner.result import Result, SolveOptions
from planner.solution import evaluate_services
from planner.solve import plan
from planner.spec.plan import Plan
from planner.spec.problem import Problem
from planner.spec.workload import InferenceService
from planner.stagecaps import DEFAULT_TOLERANCE, StageCapReport, apply_stage_caps
from planner.validation import RunResult, summarise, validate_file

if TYPE_CHECKING:
    from planner.bench import BenchReport
    from planner.launchers import ExportFile
    from planner.sweep import SweepResult


def evaluate(
    problem: Problem, catalog: Catalog | None = None, source: str = "<input>"
) -> list[TrainingMetrics]:
    """Cost-model figures of every training configuration in ``problem.plan``.

    Raises :class:`PlannerInputError` when the problem has no plan or a configuration cannot
    be placed on the cluster.
    """
    cat = catalog or default_catalog()
    if problem.plan is None or not (problem.plan.training or problem.plan.serving):
        raise PlannerInputError(
            [
                InputProblem(
                    source,
                    "plan",
                    "no plan to evaluate",
                    "a plan: section with training or serving configurations",
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


def evaluate_serving(
    problem: Problem, catalog: Catalog | None = None, source: str = "<input>"
) -> list[ServingMetrics]:
    """Cost-model figures of every serving configuration in ``problem.plan``."""
    cat = catalog or default_catalog()
    if problem.plan is None:
        return []
    out = []
    for i, cfg in enumerate(problem.plan.serving):
        try:
            out.extend(evaluate_services(problem, Plan(serving=[cfg]), cat))
        except (KeyError, StopIteration, ValueError) as exc:
            raise PlannerInputError(
                [InputProblem(source, f"plan.serving[{i}]", str(exc), "engines the cluster has")]
            ) from None
    return out


def site_power(
    result: Result, problem: Problem, catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """Per site: budget, training and serving watts counted against it, and the margin."""
    if result.plan is None:
        return []
    return site_power_rows(problem, result.plan, catalog or default_catalog(), result.serving)


def simulate_serving(
    problem: Problem, catalog: Catalog | None = None, requests: int = 20_000, seed: int = 0
) -> list[dict[str, Any]]:
    """Request-level simulation of every service of the problem's plan (or of the plan
    ``plan`` finds) at its request rate: latency percentiles and SLO attainment."""
    from planner.serving_sim import simulate_service

    cat = catalog or default_catalog()
    configs = list(problem.plan.serving) if problem.plan else []
    if problem.plan is None:
        found = plan(problem, cat)
        configs = list(found.plan.serving) if found.plan else []
    rows = []
    for cfg in configs:
        svc = problem.workloads.service(cfg.service)
        bubble = None
        if cfg.prefill_in_bubbles_rps > 0 and problem.plan is not None:
            bubble = _bubble_ttfts(problem, cat, svc, cfg.bubble_job)
        res = simulate_service(
            svc, cfg, problem.cluster, cat, requests=requests, seed=seed, bubble_ttft_s=bubble
        )
        rows.append({"service": svc.id, **res.to_json(), "target": svc.slo.percentile / 100.0})
    return rows


def _bubble_ttfts(
    problem: Problem, cat: Catalog, svc: InferenceService, job: str | None
) -> list[float] | None:
    """TTFT samples (slot wait + prefill) of a request prefilled in ``job``'s bubbles."""
    from planner.bubbles import bubble_credit, slot_waits

    assert problem.plan is not None
    training = [c for c in problem.plan.training if c.job == job]
    credit = bubble_credit(problem, Plan(training=training), cat, svc)
    if credit is None:
        return None
    waits = slot_waits(credit.harvest, credit.harvest.iteration_s)
    return [w + credit.harvest.prefill_s for w in waits]


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
    from planner.simulate import link_utilisation
    from planner.simulate import simulate as replay
    from planner.spec.base import WanSharing

    cat = catalog or default_catalog()
    configs = list(problem.plan.training) if problem.plan else []
    if problem.plan is None:
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
                "wan_links": link_utilisation(tl, m),
            }
        )
    return rows


def pareto(
    problem: Problem,
    catalog: Catalog | None = None,
    x: str = "energy",
    y: str = "throughput",
    points: int = 8,
    backend: str = "milp",
    options: SolveOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ParetoFront:
    """The trade-off between minimising ``x`` (energy, carbon, cost, time_to_train) and
    maximising ``y`` (throughput) for the problem's one training job: an epsilon-constraint
    sweep of ``points`` solves, both extremes included (see :mod:`planner.pareto`). Raises
    :class:`PlannerInputError` for a wrong axis or other than one training job."""
    return sweep(problem, catalog, x, y, points, backend, options, progress)


def stage_caps(
    result: Result,
    problem: Problem,
    catalog: Catalog | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Result, list[StageCapReport]]:
    """Per-stage power caps on the non-critical pipeline devices of every configuration of a
    solved plan (after Perseus): the result re-scored with them, and one report per job
    (energy and iteration time before and after, the caps chosen)."""
    return apply_stage_caps(result, problem, catalog or default_catalog(), tolerance=tolerance)


def violations(problem: Problem, plan: Plan, catalog: Catalog | None = None) -> list[str]:
    """Every rule of ``problem`` that ``plan`` breaks (empty if none)."""
    return check.violations(problem, plan, catalog)


def validate(path: str | Path, catalog: Catalog | None = None) -> dict[str, object]:
    """The cost model against measured runs (``planner validate``; same as
    :func:`validate_runs`)."""
    return validate_runs(path, catalog)


def export(problem: Problem, to: str, catalog: Catalog | None = None) -> list[ExportFile]:
    """Launch files of ``problem.plan`` for ``to`` (megatron, deepspeed, torchrun, slurm or
    vllm; :mod:`planner.launch`). Raises :class:`PlannerInputError` without a plan."""
    from planner.launch import FORMATS
    from planner.launchers import render

    if to not in FORMATS:
        raise PlannerInputError(
            [InputProblem("<command line>", "--to", f"unknown format {to!r}", ", ".join(FORMATS))]
        )
    if problem.plan is None or not (problem.plan.training or problem.plan.serving):
        raise PlannerInputError(
            [
                InputProblem(
                    "<input>",
                    "plan",
                    "no plan to export",
                    "a saved `planner plan --out` result or a plan: section",
                )
            ]
        )
    return render(problem, to, catalog)


def explain(
    problem: Problem,
    catalog: Catalog | None = None,
    backend: str = "milp",
    options: SolveOptions | None = None,
    alternatives: bool = True,
) -> dict[str, Any]:
    """Why the plan is what it is: binding constraints, each job's bottleneck and the
    next-best alternatives (:mod:`planner.explanation`)."""
    from planner.explanation import explain as why

    return why(problem, catalog, backend, options, alternatives)


def input_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of an input file and of each section (:mod:`planner.schema`)."""
    from planner.schema import schemas

    return schemas()


def bench(
    paths: list[str | Path],
    backends: list[str] | None = None,
    tiers: list[str] | None = None,
    repeat: int = 3,
    baselines: list[str] | None = None,
    options: SolveOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Every instance under ``paths`` (of ``tiers``) x backend, ``repeat`` times, with the
    plans of the baselines (:mod:`planner.heuristics.baselines`) and how much better each
    backend's plan is (:mod:`planner.bench`)."""
    from planner.bench import bench as run
    from planner.heuristics.baselines import BASELINES

    chosen = list(BASELINES) if baselines is None else baselines
    return run(paths, backends or ["milp"], tiers, repeat, chosen, None, options, progress)


def what_if(
    inputs: list[str | Path],
    vary: list[str],
    backend: str = "milp",
    workers: int | None = None,
    ray: str | None = None,
    time_limit_s: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """A what-if grid: every combination of the ``vary`` fields (``FIELD=V1,V2,...``) over the
    merged ``inputs``, solved in local processes or as Ray tasks (:mod:`planner.sweep`)."""
    from planner.sweep import parse_vary
    from planner.sweep import sweep as run

    varies = [parse_vary(v) for v in vary]
    return run(inputs, varies, backend, workers, ray, time_limit_s, progress)


__all__ = [
    "bench",
    "describe",
    "evaluate",
    "explain",
    "export",
    "input_schemas",
    "pareto",
    "plan",
    "simulate",
    "stage_caps",
    "validate",
    "validate_runs",
    "violations",
    "what_if",
]
