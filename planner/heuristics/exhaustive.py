"""The exhaustive oracle: every column and every stage split, each plan re-scored by the cost
model and checked by :func:`planner.check.violations`. It shares nothing with the
formulations but the columns, so it also checks their linear coefficients."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from planner.candidates import Column, Space
from planner.catalog import Catalog
from planner.check import violations
from planner.costmodel.metrics import ServingMetrics
from planner.costmodel.serving import COVER_TOL
from planner.result import Choice, Status
from planner.serving import ServiceOption, ServiceSpace
from planner.solution import evaluate_plan, evaluate_services, plan_from_choices, plan_objective
from planner.spec.cluster import Cluster
from planner.spec.plan import Plan
from planner.spec.problem import Problem

MAX_PLANS = 200_000
"""Refuse spaces with more plans than this (the oracle is for tiny instances)."""


def splits(col: Column) -> Iterator[tuple[int, ...]]:
    """Every split of the column's stages into non-empty contiguous blocks on its chain."""
    if col.layout.mode != "pipeline":
        yield ()
        return
    n = len(col.layout.pools)
    for cuts in itertools.combinations(range(1, col.pp), n - 1):
        bounds = (0, *cuts, col.pp)
        yield tuple(b - a for a, b in itertools.pairwise(bounds))


def minimal_covers(
    space: ServiceSpace,
    service: str,
    cluster: Cluster | None = None,
    deadline: float | None = None,
) -> list[dict[int, int]]:
    """Every engine count vector of one service, in one site, that covers both demands and
    loses coverage if any one engine is removed. Every objective values engines at >= 0 and
    engines only consume GPUs and power, so some optimal plan uses a minimal cover. With
    ``cluster``, vectors that alone exceed a pool's GPUs, their site's power budget or the
    service's GPU quota are cut as they grow (resources only grow along the walk). Raises
    TimeoutError past ``deadline`` (a ``time.perf_counter()`` value)."""
    need = space.demand[service]
    need_prefill = space.prefill_demand(service)
    quota = space.max_gpus.get(service)
    out: list[dict[int, int]] = []
    by_site: dict[str, list[ServiceOption]] = {}
    for o in space.by_service[service]:
        opt = space.options[o]
        by_site.setdefault(opt.site, []).append(opt)

    def covered(counts: dict[int, int], attr: str) -> bool:
        rates = [
            (space.options[o].prefill_rps if attr == "prefill_rps" else space.options[o].decode_rps)
            * k
            for o, k in counts.items()
        ]
        goal = need_prefill if attr == "prefill_rps" else need
        return sum(rates) >= goal * (1 - COVER_TOL)

    def minimal(counts: dict[int, int]) -> bool:
        for o in counts:
            less = {**counts, o: counts[o] - 1}
            if covered(less, "prefill_rps") and covered(less, "decode_rps"):
                return False
        return True

    def fits(counts: dict[int, int]) -> bool:
        if cluster is None:
            return True
        gpus: dict[str, int] = {}
        watts = 0.0
        for o, k in counts.items():
            opt = space.options[o]
            gpus[opt.group.pool] = gpus.get(opt.group.pool, 0) + k * opt.gpus
            watts += k * opt.budget_w
        if quota is not None and sum(gpus.values()) > quota:
            return False
        if any(n > cluster.pool(p).n_gpus for p, n in gpus.items()):
            return False
        site = next((space.options[o].site for o in counts), None)
        return site is None or watts <= cluster.site(site).power_budget_mw * 1e6 * (1 + 1e-9)

    def walk(
        opts: list[ServiceOption], rest: list[tuple[float, float]], i: int, counts: dict[int, int]
    ) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeoutError
        if not fits(counts):
            return
        have_p = sum(space.options[o].prefill_rps * k for o, k in counts.items())
        have_d = sum(space.options[o].decode_rps * k for o, k in counts.items())
        if have_p >= need_prefill * (1 - COVER_TOL) and have_d >= need * (1 - COVER_TOL):
            if minimal(counts):
                out.append({o: k for o, k in counts.items() if k})
            return
        if (
            i == len(opts)
            or have_p + rest[i][0] < need_prefill * (1 - COVER_TOL)
            or have_d + rest[i][1] < need * (1 - COVER_TOL)
        ):
            return  # the remaining options cannot cover the demand
        opt = opts[i]
        for k in range(opt.upper + 1):
            walk(opts, rest, i + 1, {**counts, opt.index: k} if k else counts)

    for opts in by_site.values():
        rest = [(0.0, 0.0)] * (len(opts) + 1)
        for i in range(len(opts) - 1, -1, -1):
            last = opts[i]
            rest[i] = (
                rest[i + 1][0] + last.upper * last.prefill_rps,
                rest[i + 1][1] + last.upper * last.decode_rps,
            )
        walk(opts, rest, 0, {})
    return out


def count_plans(space: Space, covers: list[list[dict[int, int]]] | None = None) -> int:
    """Plans the oracle would score (``covers``: each service's minimal covers)."""
    total = 1
    for job in space.jobs:
        total *= sum(sum(1 for _ in splits(c)) for c in space.columns if c.job == job)
    if covers is None:
        covers = [minimal_covers(space.services, s) for s in space.services.services]
    for cover in covers:
        total *= len(cover)
    return total


def exhaustive(
    problem: Problem, catalog: Catalog, space: Space, time_limit_s: float = 600.0
) -> tuple[Status, list[Choice] | None, dict[int, int] | None, int, str]:
    """(status, best choices, best engine counts, plans scored, explanation)."""
    t0 = time.perf_counter()
    try:
        per_service = [
            minimal_covers(space.services, svc, problem.cluster, t0 + time_limit_s)
            for svc in space.services.services
        ]
    except TimeoutError:
        return (
            Status.TIME_LIMIT_NO_SOLUTION,
            None,
            None,
            0,
            "time limit while listing engine covers",
        )
    n = count_plans(space, per_service)
    if n > MAX_PLANS:
        return Status.ERROR, None, None, 0, f"{n} plans exceed the exhaustive limit of {MAX_PLANS}"
    per_job = [
        [Choice(c.index, s) for c in space.columns if c.job == job for s in splits(c)]
        for job in space.jobs
    ]
    sign = -1.0 if space.maximise else 1.0
    best: tuple[float, list[Choice], dict[int, int]] | None = None
    t0, scored = time.perf_counter(), 0
    kind, hours = space.objective.kind, space.objective.serving_hours
    served: dict[str, ServingMetrics] = {}
    for combo in itertools.product(*per_job):
        for covers in itertools.product(*per_service):
            if time.perf_counter() - t0 > time_limit_s:
                status = Status.FEASIBLE if best else Status.TIME_LIMIT_NO_SOLUTION
                found = (best[1], best[2]) if best else (None, None)
                return status, found[0], found[1], scored, "time limit"
            choices = list(combo)
            counts = {o: k for cover in covers for o, k in cover.items()}
            plan = plan_from_choices(space, choices, counts)
            scored += 1
            serving = []
            for cfg in plan.serving:
                key = cfg.model_dump_json()
                if key not in served:
                    served[key] = evaluate_services(problem, Plan(serving=[cfg]), catalog)[0]
                serving.append(served[key])
            if violations(problem, plan, catalog, space.objective, serving):
                continue
            metrics = evaluate_plan(problem, plan, catalog)
            value = plan_objective(problem, kind, metrics, serving, hours)
            if best is None or sign * value < sign * best[0] - 1e-12 * abs(best[0]):
                best = (value, choices, counts)
    if best is None:
        return Status.INFEASIBLE, None, None, scored, ""
    return Status.OPTIMAL, best[1], best[2], scored, ""
