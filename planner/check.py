"""Check a plan against every rule of its problem (solver-free): ``violations() == []``."""

from __future__ import annotations

from planner.bubbles import bubble_credit
from planner.catalog import Catalog, default_catalog
from planner.costmodel.energy import provisioned_by_pool_w
from planner.costmodel.metrics import ServingMetrics
from planner.costmodel.placement import PlacementError, resolve_placement
from planner.costmodel.service import evaluate_serving
from planner.costmodel.training import evaluate_training
from planner.spec.plan import EngineRole, Plan, ServingConfig
from planner.spec.problem import Objective, Problem
from planner.spec.workload import InferenceService


def violations(
    problem: Problem,
    plan: Plan,
    catalog: Catalog | None = None,
    objective: Objective | None = None,
    serving: list[ServingMetrics] | None = None,
) -> list[str]:
    """Every broken rule, one line each: jobs planned once, placement, pool inventory, site
    power budgets (GPUs at their caps, per-stage caps included, plus node power, times PUE),
    memory, allowed sites and GPUs, the batch split, GPU quotas, and the throughput floor or
    deadline; per service: one configuration, one site, engines that exist and fit, goodput
    under the SLO covering the request rate. ``serving`` (the services' figures in plan
    order) saves re-evaluating them."""
    cat = catalog or default_catalog()
    goal = objective or problem.objective
    out: list[str] = []
    jobs = {j.id: j for j in problem.workloads.training}
    planned = [c.job for c in plan.training]
    for job_id in jobs:
        if planned.count(job_id) != 1:
            out.append(f"job {job_id!r} has {planned.count(job_id)} configurations; expected 1")
    used: dict[str, int] = {}
    watts: dict[str, float] = {}
    for i, cfg in enumerate(plan.training):
        where = f"plan.training[{i}] ({cfg.job})"
        job = jobs.get(cfg.job)
        if job is None:
            out.append(f"{where}: unknown job")
            continue
        try:
            pl = resolve_placement(cfg, problem.cluster, cat.gpus)
            m = evaluate_training(job, cat.model(job.model), cfg, problem.cluster, cat.gpus)
        except (PlacementError, ValueError) as exc:
            out.append(f"{where}: {exc}")
            continue
        pool_w = provisioned_by_pool_w(pl)
        for pool_id, n in pl.gpus_by_pool().items():
            pool = problem.cluster.pool(pool_id)
            used[pool_id] = used.get(pool_id, 0) + n
            watts[pool.site] = watts.get(pool.site, 0.0) + pool_w[pool_id]
            if job.allowed_sites is not None and pool.site not in job.allowed_sites:
                out.append(f"{where}: uses site {pool.site!r} outside allowed_sites")
            if job.allowed_gpus is not None and pool.gpu not in {
                cat.gpu(g).id for g in job.allowed_gpus
            }:
                out.append(f"{where}: uses GPU {pool.gpu!r} outside allowed_gpus")
        out.extend(f"{where}: {w}" for w in m.warnings)
        floor = goal.min_tokens_per_s
        if floor is not None and m.tokens_per_s < floor * (1 - 1e-9):
            out.append(f"{where}: {m.tokens_per_s:.1f} tokens/s is under the floor {floor:g}")
        for deadline in (goal.deadline_h, job.deadline_h):
            if deadline is not None and m.time_to_train_h > deadline * (1 + 1e-9):
                out.append(
                    f"{where}: {m.time_to_train_h:.1f} h to train misses the {deadline:g} h "
                    "deadline"
                )
        lo, hi = job.min_gpus, job.max_gpus
        if lo is not None and cfg.n_gpus < lo:
            out.append(f"{where}: {cfg.n_gpus} GPUs, under min_gpus {lo}")
        if hi is not None and cfg.n_gpus > hi:
            out.append(f"{where}: {cfg.n_gpus} GPUs, over max_gpus {hi}")
    _serving(problem, plan, cat, used, watts, out, serving)
    for pool_id, n in used.items():
        have = problem.cluster.pool(pool_id).n_gpus
        if n > have:
            out.append(f"pool {pool_id!r}: {n} GPUs planned, {have} available")
    for site_id, w in watts.items():
        site = problem.cluster.site(site_id)
        need, budget = w * site.pue, site.power_budget_mw * 1e6
        if need > budget * (1 + 1e-9):
            out.append(
                f"site {site_id!r}: {need / 1e6:.3f} MW provisioned, budget "
                f"{site.power_budget_mw:g} MW"
            )
    return out


def _serving(
    problem: Problem,
    plan: Plan,
    cat: Catalog,
    used: dict[str, int],
    watts: dict[str, float],
    out: list[str],
    given: list[ServingMetrics] | None,
) -> None:
    """The serving rules; adds the engines' GPUs and budgeted watts to ``used``/``watts``."""
    services = {s.id: s for s in problem.workloads.inference}
    planned = [c.service for c in plan.serving]
    for sid in services:
        if planned.count(sid) != 1:
            out.append(f"service {sid!r} has {planned.count(sid)} configurations; expected 1")
    pools = {p.id for p in problem.cluster.pools}
    for i, cfg in enumerate(plan.serving):
        where = f"plan.serving[{i}] ({cfg.service})"
        svc = services.get(cfg.service)
        if svc is None:
            out.append(f"{where}: unknown service")
            continue
        bad = [g.pool for g in cfg.engines if g.pool not in pools]
        if bad:
            out.append(f"{where}: unknown pools {bad}")
            continue
        allowed = None if svc.allowed_gpus is None else {cat.gpu(g).id for g in svc.allowed_gpus}
        m = given[i] if given is not None else None
        if m is None:
            m = evaluate_serving(svc, cat.model(svc.model), cfg, problem.cluster, cat.gpus)
        for g, e in zip(cfg.engines, m.engines, strict=True):
            pool = problem.cluster.pool(g.pool)
            site = problem.cluster.site(pool.site)
            used[pool.id] = used.get(pool.id, 0) + g.n_gpus
            # Oversubscribing sites count engines at their expected peak draw.
            per_engine = e.peak_w if site.power_oversubscription else e.provisioned_w
            watts[pool.site] = watts.get(pool.site, 0.0) + g.count * per_engine
            if svc.allowed_sites is not None and pool.site not in svc.allowed_sites:
                out.append(f"{where}: uses site {pool.site!r} outside allowed_sites")
            if allowed is not None and pool.gpu not in allowed:
                out.append(f"{where}: uses GPU {pool.gpu!r} outside allowed_gpus")
            if svc.disaggregated is True and g.role is EngineRole.COLOCATED:
                out.append(f"{where}: colocated engines in a disaggregated service")
            if svc.disaggregated is False and g.role is not EngineRole.COLOCATED:
                out.append(f"{where}: {g.role.value} engines in a colocated service")
        if cfg.prefill_in_bubbles_rps > 0:
            out.extend(f"{where}: {w}" for w in _bubble_rules(problem, plan, cat, svc, cfg))
        if svc.max_gpus is not None and cfg.n_gpus > svc.max_gpus:
            out.append(f"{where}: {cfg.n_gpus} GPUs, over max_gpus {svc.max_gpus}")
        out.extend(f"{where}: {w}" for w in m.warnings)


def _bubble_rules(
    problem: Problem, plan: Plan, cat: Catalog, svc: InferenceService, cfg: ServingConfig
) -> list[str]:
    """A prefill credit needs an eligible service, a planned training job, and bubbles that
    hold it (the job's iteration replayed again)."""
    if not svc.prefill_in_bubbles:
        return ["credits prefill to bubbles, but the service is not prefill_in_bubbles"]
    job = next((c for c in plan.training if c.job == cfg.bubble_job), None)
    if job is None:
        return [f"credits prefill to the bubbles of {cfg.bubble_job!r}, which is not planned"]
    credit = bubble_credit(problem, Plan(training=[job]), cat, svc)
    have = credit.rps if credit is not None else 0.0
    if have < cfg.prefill_in_bubbles_rps * (1 - 1e-6):
        return [
            f"credits {cfg.prefill_in_bubbles_rps:.3f} req/s to the bubbles of "
            f"{cfg.bubble_job!r}; they hold {have:.3f} within the TTFT target"
        ]
    return []
