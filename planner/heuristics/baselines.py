"""Baselines the benchmark compares the planner with, each a published rule or a restriction
of the planner's own search (documented in ``docs/baselines.md``).

* ``atlas``: the ``greedy`` backend, Megatron-LM defaults (TP = GPUs per node, the smallest
  PP that fits, micro-batch 1, 1F1B, the largest DP that fits) placed over every site by the
  Atlas site-selection rule (pools by free GPUs, largest first, contiguous stage blocks);
* ``megatron``: the same Megatron-LM defaults in one datacenter, the site with the most GPUs
  (how Megatron-LM is deployed: it has no cross-site placement);
* ``dp-sites``: the best plan whose training jobs run in one pool or as whole pipelines per
  pool with the DP replicas split over sites and gradients reduced over the WAN (the naive
  geo layout): the planner's own search restricted to ``single`` and ``data`` layouts;
* ``single-site``: the best plan of the whole problem restricted to one site, each site in
  turn, the best kept.

The first two are rules (no solver); the last two call :func:`planner.solve.plan` on a
restricted problem, so they are as strong as the planner within their restriction. A baseline
that does not apply to an instance (no training job for the training rules, one site for the
geo ones) is ``n/a`` with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from planner.candidates import MAXIMISE
from planner.catalog import Catalog
from planner.check import violations
from planner.heuristics.greedy import greedy
from planner.result import SolveOptions, Status
from planner.serving import service_options
from planner.solution import evaluate_plan, evaluate_services, plan_objective
from planner.spec.plan import Plan
from planner.spec.problem import Objective, Problem

BASELINES = ("atlas", "megatron", "dp-sites", "single-site")
NA = "n/a"


@dataclass
class Baseline:
    """One baseline's plan of one problem, scored by the cost model like any plan."""

    name: str
    status: str
    """A :class:`~planner.result.Status` value, or ``n/a``."""
    objective: float | None = None
    plan: Plan | None = None
    solve_time_s: float = 0.0
    note: str = ""
    """Why it is ``n/a`` or infeasible, or which site won (``single-site``)."""
    violations: list[str] = field(default_factory=list)
    """Rules of the problem the plan breaks (a rule-based plan may miss a floor)."""

    @property
    def usable(self) -> bool:
        """A plan that keeps every rule of the problem (the only kind a ratio is taken of)."""
        ok = self.status in (Status.OPTIMAL.value, Status.FEASIBLE.value)
        return ok and self.objective is not None and not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "objective": self.objective,
            "solve_time_s": self.solve_time_s,
            "note": self.note,
            "violations": self.violations,
        }


def site_problem(problem: Problem, site_id: str) -> Problem:
    """The problem on one site: its pools, no WAN links, no given plan."""
    cluster = problem.cluster
    restricted = cluster.model_copy(
        update={
            "sites": [cluster.site(site_id)],
            "pools": [p for p in cluster.pools if p.site == site_id],
            "links": [],
        }
    )
    return problem.model_copy(update={"cluster": restricted, "plan": None})


def largest_site(problem: Problem) -> str:
    """The site with the most GPUs (ties: the first id)."""
    gpus: dict[str, int] = {s.id: 0 for s in problem.cluster.sites}
    for p in problem.cluster.pools:
        gpus[p.site] += p.n_gpus
    return min(gpus, key=lambda s: (-gpus[s], s))


def _scored(
    name: str,
    problem: Problem,
    catalog: Catalog,
    goal: Objective,
    found: Plan | None,
    t0: float,
    note: str = "",
) -> Baseline:
    """A rule's plan (or None) scored against the whole problem."""
    if found is None:
        return Baseline(
            name,
            Status.INFEASIBLE.value,
            solve_time_s=time.perf_counter() - t0,
            note=note or "the rule found no placement",
        )
    metrics = evaluate_plan(problem, found, catalog)
    serving = evaluate_services(problem, found, catalog)
    value = plan_objective(problem, goal.kind, metrics, serving, goal.serving_hours)
    return Baseline(
        name,
        Status.FEASIBLE.value,
        value,
        found,
        time.perf_counter() - t0,
        note,
        violations(problem, found, catalog, goal, serving),
    )


def atlas(problem: Problem, catalog: Catalog, goal: Objective) -> Baseline:
    """Megatron-LM defaults placed by the Atlas rule (the ``greedy`` backend's plan)."""
    t0 = time.perf_counter()
    if not problem.workloads.training:
        return Baseline("atlas", NA, note="no training job")
    services = service_options(problem.workloads.inference, problem.cluster, catalog, goal)
    return _scored("atlas", problem, catalog, goal, greedy(problem, catalog, services), t0)


def megatron(problem: Problem, catalog: Catalog, goal: Objective) -> Baseline:
    """Megatron-LM defaults in the site with the most GPUs (services there too)."""
    t0 = time.perf_counter()
    if not problem.workloads.training:
        return Baseline("megatron", NA, note="no training job")
    site = largest_site(problem)
    local = site_problem(problem, site)
    services = service_options(local.workloads.inference, local.cluster, catalog, goal)
    found = greedy(local, catalog, services)
    return _scored("megatron", problem, catalog, goal, found, t0, f"site {site}")


def _solved(
    name: str,
    problem: Problem,
    catalog: Catalog,
    goal: Objective,
    backend: str,
    options: SolveOptions,
    note: str = "",
) -> Baseline:
    from planner.solve import plan

    t0 = time.perf_counter()
    res = plan(problem, catalog, goal, backend, options)
    if not res.ok or res.plan is None:
        why = res.explanation.splitlines()[0] if res.explanation else ""
        return Baseline(
            name, res.status.value, solve_time_s=time.perf_counter() - t0, note=note or why
        )
    return Baseline(name, res.status.value, res.objective, res.plan, time.perf_counter() - t0, note)


def dp_sites(
    problem: Problem,
    catalog: Catalog,
    goal: Objective,
    backend: str = "milp",
    options: SolveOptions | None = None,
) -> Baseline:
    """The best plan with every training job in one pool or data-parallel over pools."""
    if len(problem.cluster.sites) < 2:
        return Baseline("dp-sites", NA, note="one site")
    if not problem.workloads.training:
        return Baseline("dp-sites", NA, note="no training job")
    opts = replace(options or SolveOptions(), layouts=("single", "data"))
    return _solved("dp-sites", problem, catalog, goal, backend, opts)


def single_site(
    problem: Problem,
    catalog: Catalog,
    goal: Objective,
    backend: str = "milp",
    options: SolveOptions | None = None,
) -> Baseline:
    """The best plan of the problem on one site, each site in turn, the best kept."""
    if len(problem.cluster.sites) < 2:
        return Baseline("single-site", NA, note="one site")
    t0 = time.perf_counter()
    sign = -1.0 if goal.kind in MAXIMISE else 1.0
    best: Baseline | None = None
    for site in problem.cluster.sites:
        if not any(p.site == site.id for p in problem.cluster.pools):
            continue
        found = _solved(
            "single-site",
            site_problem(problem, site.id),
            catalog,
            goal,
            backend,
            options or SolveOptions(),
            f"site {site.id}",
        )
        if found.objective is None:
            continue
        if best is None or sign * found.objective < sign * (best.objective or 0.0):
            best = found
    if best is None:
        return Baseline(
            "single-site",
            Status.INFEASIBLE.value,
            solve_time_s=time.perf_counter() - t0,
            note="no site hosts the problem",
        )
    best.solve_time_s = time.perf_counter() - t0
    best.violations = violations(problem, best.plan, catalog, goal) if best.plan else []
    return best


def run_baseline(
    name: str,
    problem: Problem,
    catalog: Catalog,
    goal: Objective,
    backend: str = "milp",
    options: SolveOptions | None = None,
) -> Baseline:
    """The baseline called ``name`` (one of :data:`BASELINES`)."""
    if name == "atlas":
        return atlas(problem, catalog, goal)
    if name == "megatron":
        return megatron(problem, catalog, goal)
    if name == "dp-sites":
        return dp_sites(problem, catalog, goal, backend, options)
    if name == "single-site":
        return single_site(problem, catalog, goal, backend, options)
    raise ValueError(f"unknown baseline {name!r} (expected one of {', '.join(BASELINES)})")


__all__ = [
    "BASELINES",
    "Baseline",
    "atlas",
    "dp_sites",
    "megatron",
    "run_baseline",
    "single_site",
    "site_problem",
]
