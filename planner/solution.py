"""From a backend's choices to a plan and its certified figures (solver-free).

Every backend returns one :class:`~planner.result.Choice` per job; this module turns them
into a :class:`~planner.spec.plan.Plan`, re-scores the plan with the cost model and reports
the objective the cost model gives (so a plan's reported objective is what ``evaluate`` says).
"""

from __future__ import annotations

from planner.candidates import Column, Space, objective_value
from planner.catalog import Catalog
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.costmodel.service import evaluate_serving
from planner.costmodel.training import evaluate_training
from planner.layouts import placement_for
from planner.result import Choice, Result, Status, relative_gap
from planner.serving import configs_from_counts
from planner.spec.base import WanSharing
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import ObjectiveKind, Problem


def config_of(col: Column, stages: tuple[int, ...] = ()) -> TrainingConfig:
    """The column's configuration placed with ``stages`` per layout pool (pipeline) or its
    reference placement."""
    if col.layout.mode != "pipeline" or not stages:
        return col.cfg
    return col.cfg.model_copy(
        update={"placement": placement_for(col.layout, col.cfg, list(stages))}
    )


def plan_from_choices(
    space: Space, choices: list[Choice], counts: dict[int, int] | None = None
) -> Plan:
    """The plan made of one configuration per job and the engines of every service."""
    return Plan(
        training=[config_of(space.columns[c.column], c.stages) for c in choices],
        serving=configs_from_counts(space.services, counts or {}),
    )


def _explicit_cells(problem: Problem, catalog: Catalog, plan: Plan) -> Plan:
    """Write the DP-cell size the cost model used into each configuration that crosses a WAN
    (so the saved plan records its cells)."""
    configs = []
    for cfg, m in zip(plan.training, evaluate_plan(problem, plan, catalog), strict=True):
        temporal = cfg.wan_sharing is WanSharing.TEMPORAL
        if m.dp_cell_size is not None and cfg.dp_cell_size is None and temporal:
            cfg = cfg.model_copy(update={"dp_cell_size": m.dp_cell_size})
        configs.append(cfg)
    return Plan(training=configs, serving=plan.serving)


def evaluate_plan(problem: Problem, plan: Plan, catalog: Catalog) -> list[TrainingMetrics]:
    """Cost-model figures of every configuration of ``plan``."""
    out = []
    for cfg in plan.training:
        job = problem.workloads.training_job(cfg.job)
        out.append(
            evaluate_training(job, catalog.model(job.model), cfg, problem.cluster, catalog.gpus)
        )
    return out


def evaluate_services(problem: Problem, plan: Plan, catalog: Catalog) -> list[ServingMetrics]:
    """Cost-model figures of every serving configuration of ``plan``."""
    out = []
    for cfg in plan.serving:
        svc = problem.workloads.service(cfg.service)
        model = catalog.model(svc.model)
        out.append(evaluate_serving(svc, model, cfg, problem.cluster, catalog.gpus))
    return out


def service_value(kind: ObjectiveKind, hours: float, m: ServingMetrics) -> float:
    """A service's objective term: its GPUs, or its energy, carbon or money over ``hours``
    of serving with every engine at its goodput (0 for throughput-like objectives, where
    services are constraints)."""
    if kind is ObjectiveKind.GPUS:
        return float(m.n_gpus)
    per_h = {
        ObjectiveKind.ENERGY: m.energy_kwh_per_h,
        ObjectiveKind.CARBON: m.carbon_kg_per_h,
        ObjectiveKind.COST: m.cost_usd_per_h,
    }.get(kind)
    return 0.0 if per_h is None else per_h * hours


def plan_objective(
    problem: Problem,
    kind: ObjectiveKind,
    metrics: list[TrainingMetrics],
    serving: list[ServingMetrics] | None = None,
    hours: float | None = None,
) -> float:
    """Sum over jobs of the objective (throughput and time weighted by the job's weight) plus
    the services' terms (:func:`service_value`)."""
    weights = {j.id: j.weight for j in problem.workloads.training}
    total = sum(objective_value(kind, m, weights.get(m.job, 1.0)) for m in metrics)
    h = problem.objective.serving_hours if hours is None else hours
    return total + sum(service_value(kind, h, m) for m in serving or [])


def choice_value(space: Space, choice: Choice) -> float:
    """The formulation's linear value of one choice (``const + sum coef``)."""
    col = space.columns[choice.column]
    value = col.const
    if col.coef and choice.stages:
        d = 0
        for i, n in enumerate(choice.stages):
            for _ in range(n):
                value += col.coef[d][i]
                d += 1
    return value


def finish(
    problem: Problem,
    catalog: Catalog,
    space: Space,
    choices: list[Choice] | None,
    status: Status,
    backend: str,
    bound: float | None,
    solve_time_s: float,
    stats: dict[str, object] | None = None,
    explanation: str = "",
    counts: dict[int, int] | None = None,
) -> Result:
    """A :class:`Result` with the decoded plan re-scored by the cost model."""
    info: dict[str, object] = {**space.stats, **space.services.stats, **(stats or {})}
    if choices is None or (not choices and space.jobs) or (not choices and not counts):
        return Result(
            status,
            backend,
            space.objective.kind.value,
            bound=bound,
            solve_time_s=solve_time_s,
            explanation=explanation,
            stats=info,
        )
    plan = _explicit_cells(problem, catalog, plan_from_choices(space, choices, counts))
    metrics = evaluate_plan(problem, plan, catalog)
    serving = evaluate_services(problem, plan, catalog)
    objective = plan_objective(
        problem, space.objective.kind, metrics, serving, space.objective.serving_hours
    )
    if bound is not None:
        # The bound can never be worse than a plan the backend found.
        bound = max(bound, objective) if space.maximise else min(bound, objective)
    if not space.complete:
        # Columns left unexamined at the deadline: the proof only covers what was examined.
        if space.open_bound is None:
            bound = None
        elif bound is not None:
            pick = max if space.maximise else min
            bound = pick(bound, space.open_bound)
        if status is Status.OPTIMAL and (bound is None or relative_gap(objective, bound)):
            status = Status.FEASIBLE
    return Result(
        status=status,
        backend=backend,
        objective_kind=space.objective.kind.value,
        objective=objective,
        bound=bound,
        gap=relative_gap(objective, bound),
        solve_time_s=solve_time_s,
        plan=plan,
        metrics=metrics,
        serving=serving,
        choices=list(choices),
        counts=dict(counts or {}),
        explanation=explanation,
        stats=info,
    )
