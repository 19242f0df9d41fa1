"""Check a plan against every rule of its problem (solver-free): ``violations() == []``."""

from __future__ import annotations

from planner.catalog import Catalog, default_catalog
from planner.costmodel.energy import provisioned_power_w
from planner.costmodel.placement import PlacementError, resolve_placement
from planner.costmodel.training import evaluate_training
from planner.spec.plan import Plan
from planner.spec.problem import Objective, Problem


def violations(
    problem: Problem,
    plan: Plan,
    catalog: Catalog | None = None,
    objective: Objective | None = None,
) -> list[str]:
    """Every broken rule, one line each: jobs planned once, placement, pool inventory, site
    power budgets (GPUs at their caps plus node power, times PUE), memory, allowed sites and
    GPUs, the batch split, and the throughput floor or deadline."""
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
        for pool_id, n in pl.gpus_by_pool().items():
            pool = problem.cluster.pool(pool_id)
            used[pool_id] = used.get(pool_id, 0) + n
            w = provisioned_power_w(cat.gpus[pool.gpu], pool, cfg.power_cap_w)
            watts[pool.site] = watts.get(pool.site, 0.0) + n * w
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
