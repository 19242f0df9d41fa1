"""``plan``: enumerate columns, then select and place them with one backend.

Backends: ``milp`` (PuLP + CBC), ``cpsat`` (OR-Tools), ``exhaustive`` (the oracle) and
``greedy`` (the Atlas/Megatron baseline, also the warm start of both formulations). The
solver modules are imported on demand, so a process that only evaluates never loads them.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import replace
from typing import Any

from planner.bubbles import bubble_credit
from planner.candidates import MAXIMISE, Search, Space
from planner.catalog import Catalog, default_catalog
from planner.check import violations
from planner.diagnose import explain_infeasible
from planner.heuristics.exhaustive import exhaustive
from planner.heuristics.greedy import greedy
from planner.result import Choice, Result, SolveOptions, Status
from planner.serving import ServiceSpace, service_options, services_bound
from planner.solution import (
    evaluate_plan,
    evaluate_services,
    finish,
    plan_from_choices,
    plan_objective,
)
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import Objective, ObjectiveKind, Problem

log = logging.getLogger(__name__)

BACKENDS = ("milp", "cpsat", "exhaustive", "greedy")
_CORE = (
    "job",
    "gpu",
    "tp",
    "pp",
    "dp",
    "cp",
    "ep",
    "micro_batch",
    "schedule",
    "vpp",
    "recompute",
    "zero_stage",
    "fsdp",
    "power_cap_w",
    "stage_power_caps_w",
)


def _core(cfg: TrainingConfig) -> tuple[Any, ...]:
    return tuple(getattr(cfg, f) for f in _CORE)


def choices_for(space: Space, plan: Plan) -> list[Choice] | None:
    """The columns (and stage splits) that express ``plan``, if the space holds them."""
    out = []
    for cfg in plan.training:
        pools = tuple(e.pool for e in cfg.placement)
        stages = tuple(e.last_stage - e.first_stage + 1 for e in cfg.placement)
        match = None
        for col in space.columns:
            if col.job != cfg.job or _core(col.cfg) != _core(cfg):
                continue
            if col.layout.mode == "single" and len(pools) == 1 and col.layout.pools == pools:
                match = Choice(col.index)
            elif col.layout.mode == "pipeline" and col.layout.pools == pools:
                match = Choice(col.index, stages)
            if match is not None:
                break
        if match is None:
            return None
        out.append(match)
    return out


def counts_for(services: ServiceSpace, plan: Plan) -> dict[int, int] | None:
    """The engine count of every option that expresses ``plan.serving``, if the options hold
    its engines."""
    out: dict[int, int] = {}
    for cfg in plan.serving:
        for g in cfg.engines:
            key = g.model_copy(update={"count": 1})
            match = next(
                (
                    o
                    for o in services.by_service.get(cfg.service, [])
                    if services.options[o].group == key
                ),
                None,
            )
            if match is None:
                return None
            out[match] = out.get(match, 0) + g.count
    return out


def serving_goal(problem: Problem, objective: Objective) -> Objective:
    """The objective a problem is solved under: with services only, a throughput-like kind
    (which has nothing to maximise) becomes the fewest GPUs."""
    rate_like = (ObjectiveKind.THROUGHPUT, ObjectiveKind.GOODPUT, ObjectiveKind.TIME_TO_TRAIN)
    if not problem.workloads.training and objective.kind in rate_like:
        return objective.model_copy(update={"kind": ObjectiveKind.GPUS})
    return objective


def _greedy_result(problem: Problem, catalog: Catalog, objective: Objective, t0: float) -> Result:
    services = service_options(problem.workloads.inference, problem.cluster, catalog, objective)
    base = greedy(problem, catalog, services)
    kind = objective.kind.value
    if base is None:
        return Result(
            Status.INFEASIBLE,
            "greedy",
            kind,
            solve_time_s=time.perf_counter() - t0,
            explanation="the Atlas/Megatron rule found no placement",
        )
    metrics = evaluate_plan(problem, base, catalog)
    serving = evaluate_services(problem, base, catalog)
    value = plan_objective(problem, objective.kind, metrics, serving, objective.serving_hours)
    return Result(
        Status.FEASIBLE,
        "greedy",
        kind,
        objective=value,
        solve_time_s=time.perf_counter() - t0,
        plan=base,
        metrics=metrics,
        serving=serving,
        counts=counts_for(services, base) or {},
    )


def plan(
    problem: Problem,
    catalog: Catalog | None = None,
    objective: Objective | None = None,
    backend: str = "milp",
    options: SolveOptions | None = None,
) -> Result:
    """The best plan of ``problem`` under ``objective`` (default: the problem's), with its
    status, bound and gap. Infeasible problems come back with an explanation."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    cat = catalog or default_catalog()
    opts = options or SolveOptions()
    t0 = time.perf_counter()
    goal = serving_goal(problem, objective or problem.objective)
    if backend == "greedy":
        return _greedy_result(problem, cat, goal, t0)
    # Enumeration may use most of the time limit; the solver gets the rest (at least 1 s).
    services = service_options(problem.workloads.inference, problem.cluster, cat, goal)
    # The greedy plan: the first incumbent of a shared search and both formulations' warm start.
    base = greedy(problem, cat, services) if backend != "exhaustive" else None
    space = _search(problem, cat, goal, services, base, backend, opts, t0)
    enum_s = time.perf_counter() - t0
    left = max(1.0, opts.time_limit_s - enum_s)
    opts = replace(opts, time_limit_s=left)
    log.info("enumerated %s in %.2f s", space.stats, enum_s)
    no_job = any(not any(c.job == j for c in space.columns) for j in space.jobs)
    no_svc = any(not space.services.by_service[s] for s in space.services.services)
    if no_job or no_svc or not (space.columns or space.services.options):
        if not space.complete:
            return finish(
                problem,
                cat,
                space,
                None,
                Status.TIME_LIMIT_NO_SOLUTION,
                backend,
                None,
                time.perf_counter() - t0,
                {"enumerate_s": enum_s},
                "the time limit ran out while enumerating candidates",
            )
        return finish(
            problem,
            cat,
            space,
            None,
            Status.INFEASIBLE,
            backend,
            None,
            time.perf_counter() - t0,
            {"enumerate_s": enum_s},
            explain_infeasible(problem, cat, space),
        )
    if backend == "exhaustive":
        status, choices, counts, scored, why = exhaustive(problem, cat, space, opts.time_limit_s)
        bound = None
        result = finish(
            problem,
            cat,
            space,
            choices,
            status,
            "exhaustive",
            bound,
            time.perf_counter() - t0,
            {"plans_scored": scored, "enumerate_s": enum_s},
            why,
            counts,
        )
        if result.ok and status is Status.OPTIMAL:
            result.bound, result.gap = result.objective, 0.0
    else:
        result = _formulation(problem, cat, space, base, backend, opts, t0, enum_s)
    if result.status is Status.INFEASIBLE and not result.explanation:
        result.explanation = explain_infeasible(problem, cat, space)
    return result


FIRST = 24
"""Best-bound columns per job in the first, incumbent-finding solve of a shared problem."""


def _plan_value(problem: Problem, cat: Catalog, goal: Objective, plan_: Plan) -> float:
    metrics = evaluate_plan(problem, plan_, cat)
    serving = evaluate_services(problem, plan_, cat)
    return plan_objective(problem, goal.kind, metrics, serving, goal.serving_hours)


def _search(
    problem: Problem,
    cat: Catalog,
    goal: Objective,
    services: ServiceSpace,
    base: Plan | None,
    backend: str,
    opts: SolveOptions,
    t0: float,
) -> Space:
    """Enumerate the columns. Alone on the cluster a job prunes against its own best
    single-pool column (:class:`~planner.candidates.Search`). A shared problem (several jobs,
    or jobs and services) needs a feasible plan of the whole problem to prune against: start
    from the greedy plan, then alternate best-bound enumeration (``FIRST`` more columns per
    job, doubling) with a quick solve of the columns so far, each better plan tightening the
    bound for the columns left."""
    deadline = t0 + 0.8 * opts.time_limit_s
    search = Search(problem, cat, goal, deadline=deadline, modes=opts.layouts)
    shared = len(problem.workloads.training) > 1 or bool(
        problem.workloads.training and problem.workloads.inference
    )
    others = services_bound(services)
    incumbent: float | None = None
    if shared and backend != "exhaustive":
        sign = 1.0 if goal.kind in MAXIMISE else -1.0
        # A greedy plan outside the allowed layouts is no incumbent of the restricted search.
        spread = base is not None and any(len(c.placement) > 1 for c in base.training)
        allowed = opts.layouts is None or "pipeline" in opts.layouts or not spread
        if base is not None and allowed and not violations(problem, base, cat, goal):
            incumbent = _plan_value(problem, cat, goal, base)
        mod = importlib.import_module(f"planner.formulations.{backend}.model")
        new = FIRST
        while not search.run(incumbent, others, new):
            sub = search.space()
            sub.services = services
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            quick = replace(opts, time_limit_s=max(1.0, min(left, 0.2 * opts.time_limit_s)))
            built = mod.build(sub, problem.cluster)
            raw = mod.solve(built, replace(quick, export_model=None))
            if raw.status in (Status.OPTIMAL, Status.FEASIBLE):
                found = plan_from_choices(
                    sub, mod.decode(built, raw), mod.decode_counts(built, raw)
                )
                value = _plan_value(problem, cat, goal, found)
                if incumbent is None or sign * value > sign * incumbent:
                    incumbent = value
            new *= 2
        log.info("incumbent of the shared problem: %s", incumbent)
    search.run(incumbent, others)
    space = search.space()
    space.services = services
    return space


SERVICES_FREE = (ObjectiveKind.THROUGHPUT, ObjectiveKind.GOODPUT, ObjectiveKind.TIME_TO_TRAIN)
"""Objectives in which services are constraints only (their engines add no value)."""


def _fixed_training(
    problem: Problem,
    space: Space,
    choices: list[Choice],
    counts: dict[int, int],
    services: ServiceSpace,
    goal: Objective,
    mod: Any,
    opts: SolveOptions,
) -> tuple[list[Choice], dict[int, int]] | None:
    """A second stage under ``goal`` with the training columns fixed to ``choices`` (their
    objective terms zeroed: only the services' terms of ``services`` are left). Returns choices in
    ``space``'s column numbering and the engine counts, or None if the stage fails."""
    fixed = [
        replace(
            space.columns[c.column],
            index=i,
            const=0.0,
            coef=tuple(tuple(0.0 for _ in r) for r in space.columns[c.column].coef),
        )
        for i, c in enumerate(choices)
    ]
    second = Space(fixed, goal, list(space.jobs), services=services)
    built = mod.build(second, problem.cluster)
    mod.warm_start(built, [Choice(i, c.stages) for i, c in enumerate(choices)], counts)
    raw = mod.solve(built, opts)
    if raw.status not in (Status.OPTIMAL, Status.FEASIBLE):
        return None
    back = [Choice(choices[c.column].column, c.stages) for c in mod.decode(built, raw)]
    return back, mod.decode_counts(built, raw)


def _serving_stage(
    problem: Problem,
    cat: Catalog,
    space: Space,
    choices: list[Choice],
    counts: dict[int, int],
    mod: Any,
    opts: SolveOptions,
    stats: dict[str, Any],
) -> tuple[list[Choice], dict[int, int], ServiceSpace, bool] | None:
    """After the joint solve, with the training plan fixed: credit eligible services' prefill
    to the plan's pipeline bubbles (BubbleTea; :func:`planner.bubbles.bubble_credit`), and,
    where services add nothing to the objective, use the fewest GPUs for them. Returns the
    choices, the engine counts, the services they refer to, and whether the objective may
    have changed (bubbles under an energy-like objective), or None when nothing applies."""
    kind = space.objective.kind
    free = kind in SERVICES_FREE
    plan_ = plan_from_choices(space, choices, counts)
    bubbles: dict[str, tuple[str, float]] = {}
    for svc in problem.workloads.inference:
        credit = bubble_credit(problem, plan_, cat, svc) if plan_.training else None
        if credit is not None and credit.rps > 0:
            bubbles[svc.id] = (credit.job, credit.rps)
            stats.setdefault("prefill_in_bubbles", {})[svc.id] = {
                "job": credit.job,
                "rps": credit.rps,
                "capacity_rps": credit.harvest.capacity_rps,
                "ttft_s": credit.ttft_s,
            }
    if not bubbles and not free:
        return None
    goal = (
        space.objective.model_copy(update={"kind": ObjectiveKind.GPUS}) if free else space.objective
    )
    services = service_options(problem.workloads.inference, problem.cluster, cat, goal)
    services.bubbles = bubbles
    found = _fixed_training(problem, space, choices, counts, services, goal, mod, opts)
    if found is None:
        return None
    return found[0], found[1], services, bool(bubbles) and not free


def _formulation(
    problem: Problem,
    cat: Catalog,
    space: Space,
    base: Plan | None,
    backend: str,
    opts: SolveOptions,
    t0: float,
    enum_s: float,
) -> Result:
    mod = importlib.import_module(f"planner.formulations.{backend}.model")
    built = mod.build(space, problem.cluster)
    if opts.warm_start:
        warm = choices_for(space, base) if base is not None else None
        counts = counts_for(space.services, base) if base is not None else None
        if warm is not None and counts is not None and (warm or counts):
            mod.warm_start(built, warm, counts)
    raw = mod.solve(built, opts)
    found = raw.status in (Status.OPTIMAL, Status.FEASIBLE)
    choices = mod.decode(built, raw) if found else None
    counts = mod.decode_counts(built, raw) if found else None
    stats = {**raw.stats, "enumerate_s": enum_s, "solver_s": raw.wall_s}
    status, bound, explanation = raw.status, raw.bound, ""
    if choices is not None and counts:
        left = max(1.0, opts.time_limit_s - raw.wall_s)
        staged = _serving_stage(
            problem, cat, space, choices, counts, mod, replace(opts, time_limit_s=left), stats
        )
        if staged is not None:
            choices, counts, services, moved = staged
            space = replace(space, services=services)
            stats["serving_second_stage"] = True
            if moved:
                # Bubbles lowered the services' term below what the joint solve bounded.
                status, bound = Status.FEASIBLE, None
                explanation = (
                    "prefill in training bubbles: the training plan was fixed first, then the "
                    "services re-planned with the bubbles' share; no bound covers that order"
                )
    return finish(
        problem,
        cat,
        space,
        choices,
        status,
        mod.BACKEND,
        bound,
        time.perf_counter() - t0,
        stats,
        explanation,
        counts=counts,
    )


__all__ = ["BACKENDS", "choices_for", "counts_for", "plan", "serving_goal"]
