"""Why a plan is what it is, in plain words: the constraints that bind, each job's bottleneck,
and what the next-best alternative costs.

* **Constraints**: GPU inventory per pool, site power budgets (``describe.site_power``),
  memory per pipeline device (``StageMemoryGiB`` against the GPU's capacity, and whether the
  chosen recompute is needed), the throughput floor and deadlines, GPU quotas, and every
  service's demand against its engines' goodput. A constraint *binds* when it leaves less
  room than one more data-parallel replica (or, for memory, when the chosen recompute is
  needed to fit; for a floor or deadline, when it is met within 5%).
* **Bottleneck**: the parts of the iteration time (``TrainingMetrics.breakdown``): kernels,
  pipeline bubble, exposed TP/CP/EP/PP communication, exposed data-parallel reduction,
  optimizer, step overhead; the bubble beyond the schedule's own fill and drain is counted
  as waiting on the WAN when the pipeline crosses one.
* **Alternatives**: for a solved plan, each job's best plan without its chosen configuration
  (same GPU type, TP, PP, DP, CP, EP, micro-batch, schedule, recompute, ZeRO and power cap),
  re-solved with that configuration's columns removed, and the greedy Atlas/Megatron
  baseline; for a given ``plan:`` section, the optimum the solver finds.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import replace
from typing import Any

from planner.candidates import MAXIMISE, Search, Space
from planner.catalog import Catalog, default_catalog
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.costmodel.training import evaluate_training
from planner.describe import describe_plan, site_power
from planner.result import Result, SolveOptions, Status
from planner.serving import service_options, services_bound
from planner.solution import evaluate_plan, evaluate_services, plan_objective
from planner.solve import FIRST, _core, _formulation, serving_goal
from planner.solve import plan as solve_plan
from planner.spec.base import Recompute
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import Problem

TIGHT = 0.05
"""A floor or deadline met within this share binds."""

PARTS = (
    ("compute", "kernels (forward, backward, recompute)"),
    ("bubble", "pipeline fill and drain"),
    ("wan", "waiting on the WAN"),
    ("comm", "exposed TP/CP/EP/PP communication"),
    ("dp", "exposed data-parallel reduction"),
    ("optimizer", "optimizer step"),
    ("overhead", "step overhead"),
)


def _config(cfg: TrainingConfig) -> str:
    return (
        f"{cfg.gpu} TP {cfg.tp} PP {cfg.pp} DP {cfg.dp} CP {cfg.cp} EP {cfg.ep}, "
        f"micro-batch {cfg.micro_batch}, {cfg.schedule.value}"
        + (f" v{cfg.vpp}" if cfg.vpp > 1 else "")
        + f", recompute {cfg.recompute.value}, ZeRO {cfg.zero}"
        + (f", cap {cfg.power_cap_w:.0f} W" if cfg.power_cap_w else "")
    )


def bottleneck(cfg: TrainingConfig, m: TrainingMetrics) -> dict[str, Any]:
    """Shares of the iteration time and the largest part besides the kernels."""
    b = m.breakdown
    ideal = (cfg.pp - 1) / cfg.vpp * max((d.fwd_s + d.bwd_s for d in m.devices), default=0.0)
    wan = max(0.0, b.bubble_s - ideal) if m.wan else 0.0
    seconds = {
        "compute": b.compute_s,
        "bubble": b.bubble_s - wan,
        "wan": wan,
        "comm": b.exposed_comm_s,
        "dp": b.dp_exposed_s,
        "optimizer": b.optimizer_s,
        "overhead": b.overhead_s,
    }
    total = b.iteration_s or 1.0
    shares = {k: v / total for k, v in seconds.items()}
    names = dict(PARTS)
    worst = max((k for k in shares if k != "compute"), key=lambda k: shares[k])
    if shares["compute"] >= 0.6:
        text = (
            f"compute-bound: kernels take {shares['compute']:.0%} of the {total:.3g} s step "
            f"(MFU {m.mfu:.0%}); the largest overhead is {names[worst]} "
            f"({shares[worst]:.0%})"
        )
    else:
        text = (
            f"{names[worst]} takes {shares[worst]:.0%} of the {total:.3g} s step; kernels "
            f"{shares['compute']:.0%} (MFU {m.mfu:.0%})"
        )
    return {"name": worst if shares["compute"] < 0.6 else "compute", "shares": shares, "text": text}


def _memory(
    problem: Problem, cat: Catalog, cfg: TrainingConfig, m: TrainingMetrics
) -> dict[str, Any]:
    """The fullest device, and whether the chosen recompute is what makes it fit."""
    dev = max(m.devices, key=lambda d: d.memory.total / d.memory.capacity)
    use = dev.memory.total / dev.memory.capacity
    row: dict[str, Any] = {
        "kind": "memory",
        "what": f"{cfg.job}: device {dev.device} memory",
        "used": dev.memory.total,
        "limit": dev.memory.capacity,
        "binding": False,
        "text": f"{cfg.job}: the fullest GPU (stage {dev.device}) holds {dev.memory.total:.1f} "
        f"of {dev.memory.capacity:.0f} GiB ({use:.0%})",
    }
    if cfg.recompute is not Recompute.NONE:
        job = problem.workloads.training_job(cfg.job)
        bare = cfg.model_copy(update={"recompute": Recompute.NONE})
        try:
            mb = evaluate_training(job, cat.model(job.model), bare, problem.cluster, cat.gpus)
        except ValueError:
            return row
        worst = max(mb.devices, key=lambda d: d.memory.total / d.memory.capacity)
        if not mb.fits_memory:
            row["binding"] = True
            row["text"] += (
                f"; without {cfg.recompute.value} recompute it would need "
                f"{worst.memory.total:.1f} GiB: memory forces the recompute"
            )
    elif use > 0.9:
        row["binding"] = True
        row["text"] += ": memory is nearly full"
    return row


def constraints(
    problem: Problem,
    cat: Catalog,
    plan: Plan,
    metrics: list[TrainingMetrics],
    serving: list[ServingMetrics],
) -> list[dict[str, Any]]:
    """Every constraint the plan touches, with its use, limit and whether it binds."""
    out: list[dict[str, Any]] = []
    details = describe_plan(plan, metrics, problem, cat)
    used: dict[str, int] = {}
    replica: dict[str, int] = {}
    for cfg, d in zip(plan.training, details, strict=True):
        for row in d["stages"]:
            used[row["pool"]] = used.get(row["pool"], 0) + row["ranks"][1] - row["ranks"][0] + 1
            block = cfg.tp * cfg.cp * cfg.pp
            replica[row["pool"]] = min(replica.get(row["pool"], block), block)
    for scfg in plan.serving:
        for g in scfg.engines:
            used[g.pool] = used.get(g.pool, 0) + g.n_gpus
            replica[g.pool] = min(replica.get(g.pool, g.tp * g.pp), g.tp * g.pp)
    for pool in problem.cluster.pools:
        if pool.id not in used:
            continue
        free = pool.n_gpus - used[pool.id]
        out.append(
            {
                "kind": "gpus",
                "what": f"pool {pool.id} GPUs",
                "used": used[pool.id],
                "limit": pool.n_gpus,
                "binding": free < replica[pool.id],
                "text": f"pool {pool.id} ({pool.site}): {used[pool.id]} of {pool.n_gpus} GPUs "
                f"used, {free} free"
                + (" (not enough for another replica)" if free < replica[pool.id] else ""),
            }
        )
    gpus_at: dict[str, int] = {}
    for d in details:
        for row in d["stages"]:
            gpus_at[row["site"]] = (
                gpus_at.get(row["site"], 0) + row["ranks"][1] - row["ranks"][0] + 1
            )
    for r in site_power(problem, plan, cat, serving):
        per_gpu = r["training_w"] / gpus_at[r["site"]] if gpus_at.get(r["site"]) else 0.0
        one_more = per_gpu * min(replica.values(), default=1)
        binding = r["margin_w"] < max(one_more, 1e-6 * r["budget_w"])
        out.append(
            {
                "kind": "power",
                "what": f"site {r['site']} power budget",
                "used": r["counted_w"],
                "limit": r["budget_w"],
                "binding": binding,
                "text": f"site {r['site']}: {r['counted_w'] / 1e6:.3f} of "
                f"{r['budget_w'] / 1e6:.3f} MW counted, margin {r['margin_w'] / 1e6:.3f} MW"
                + (" (not enough for another replica at these caps)" if binding else ""),
            }
        )
    for cfg, m in zip(plan.training, metrics, strict=True):
        out.append(_memory(problem, cat, cfg, m))
        out.extend(_targets(problem, cfg, m))
    for s in serving:
        svc = problem.workloads.service(s.service)
        out.append(
            {
                "kind": "service",
                "what": f"service {s.service} demand",
                "used": s.rate_rps,
                "limit": s.goodput_rps,
                "binding": s.goodput_rps <= s.rate_rps * (1 + TIGHT),
                "text": f"service {s.service}: {s.rate_rps:g} req/s of {s.goodput_rps:.3g} "
                f"req/s goodput on {s.n_gpus} GPUs (P{svc.slo.percentile:g} TTFT "
                f"{s.ttft_s * 1e3:.0f} of {svc.slo.ttft_ms:g} ms, TPOT {s.tpot_s * 1e3:.1f} "
                f"of {svc.slo.tpot_ms:g} ms)",
            }
        )
    return out


def _targets(problem: Problem, cfg: TrainingConfig, m: TrainingMetrics) -> list[dict[str, Any]]:
    """Throughput floor, deadline and GPU quota of one job."""
    out: list[dict[str, Any]] = []
    job = problem.workloads.training_job(cfg.job)
    floor = problem.objective.min_tokens_per_s
    if floor is not None:
        slack = m.tokens_per_s / floor - 1.0
        out.append(
            {
                "kind": "floor",
                "what": f"{cfg.job}: throughput floor",
                "used": m.tokens_per_s,
                "limit": floor,
                "binding": slack < TIGHT,
                "text": f"{cfg.job}: {m.tokens_per_s:,.0f} tokens/s against a floor of "
                f"{floor:,.0f} ({slack:+.1%})",
            }
        )
    deadlines = [d for d in (problem.objective.deadline_h, job.deadline_h) if d is not None]
    if deadlines:
        deadline = min(deadlines)
        slack = 1.0 - m.time_to_train_h / deadline
        out.append(
            {
                "kind": "deadline",
                "what": f"{cfg.job}: deadline",
                "used": m.time_to_train_h,
                "limit": deadline,
                "binding": slack < TIGHT,
                "text": f"{cfg.job}: trains in {m.time_to_train_h:,.1f} h against a deadline of "
                f"{deadline:g} h ({slack:.1%} to spare)",
            }
        )
    if job.max_gpus is not None:
        room = job.max_gpus - cfg.n_gpus
        out.append(
            {
                "kind": "quota",
                "what": f"{cfg.job}: GPU quota",
                "used": cfg.n_gpus,
                "limit": job.max_gpus,
                "binding": room < cfg.tp * cfg.cp * cfg.pp,
                "text": f"{cfg.job}: {cfg.n_gpus} of at most {job.max_gpus} GPUs",
            }
        )
    return out


def _without(space: Space, job: str, core: tuple[Any, ...]) -> Space:
    """``space`` less the columns of ``job`` with configuration core ``core``."""
    cols = [c for c in space.columns if not (c.job == job and _core(c.cfg) == core)]
    return replace(space, columns=[replace(c, index=i) for i, c in enumerate(cols)])


def resolve_without(
    problem: Problem,
    cat: Catalog,
    cfg: TrainingConfig,
    backend: str = "milp",
    options: SolveOptions | None = None,
) -> Result:
    """The best plan in which job ``cfg.job`` does not use ``cfg``'s configuration (any
    layout of it), solved by ``backend`` (milp or cpsat; milp for the others): best-bound
    enumeration with that configuration's columns removed, pruned against the best plan found
    so far under the same exclusion (as ``planner.solve`` does for shared problems), then one
    solve of what is left."""
    opts = options or SolveOptions()
    backend = backend if backend in ("milp", "cpsat") else "milp"
    t0 = time.perf_counter()
    goal = serving_goal(problem, problem.objective)
    services = service_options(problem.workloads.inference, problem.cluster, cat, goal)
    search = Search(problem, cat, goal, deadline=t0 + 0.8 * opts.time_limit_s)
    # Prune against plans of the constrained problem, not the job's own best column (which
    # may be the excluded configuration).
    search.single = False
    mod = importlib.import_module(f"planner.formulations.{backend}.model")
    sign = 1.0 if goal.kind in MAXIMISE else -1.0
    core, incumbent, new = _core(cfg), None, FIRST
    while True:
        finished = search.run(incumbent, services_bound(services), new)
        sub = _without(search.space(), cfg.job, core)
        sub.services = services
        if finished or time.perf_counter() > t0 + 0.8 * opts.time_limit_s:
            break
        if all(any(c.job == j for c in sub.columns) for j in sub.jobs):
            quick = replace(opts, time_limit_s=max(1.0, 0.2 * opts.time_limit_s))
            found = _formulation(problem, cat, sub, None, backend, quick, t0, 0.0)
            if found.ok and found.objective is not None:
                value = found.objective
                if incumbent is None or sign * value > sign * incumbent:
                    incumbent = value
        new *= 2
    if not all(any(c.job == j for c in sub.columns) for j in sub.jobs):
        return Result(
            Status.INFEASIBLE,
            mod.BACKEND,
            goal.kind.value,
            explanation=f"no other configuration of {cfg.job} is feasible",
        )
    return _formulation(problem, cat, sub, None, backend, opts, t0, time.perf_counter() - t0)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def _delta(kind: str, base: float, other: float) -> str:
    better_high = kind in {k.value for k in MAXIMISE}
    change = other / base - 1.0 if base else 0.0
    worse = change < 0 if better_high else change > 0
    return f"{change:+.1%} ({'worse' if worse else 'better' if change else 'the same'})"


def alternatives(
    problem: Problem,
    cat: Catalog,
    plan: Plan,
    value: float,
    kind: str,
    backend: str,
    opts: SolveOptions,
    given: bool,
) -> list[dict[str, Any]]:
    """What the next-best alternatives would give (see the module docstring)."""
    out: list[dict[str, Any]] = []
    base = problem.model_copy(update={"plan": None})
    tries: list[tuple[str, Result]] = []
    if given:
        tries.append(("the solver's optimum", solve_plan(base, cat, backend=backend, options=opts)))
    else:
        for cfg in plan.training:
            what = f"{cfg.job} without its chosen configuration ({_config(cfg)})"
            tries.append((what, resolve_without(base, cat, cfg, backend, opts)))
        tries.append(
            ("the greedy Atlas/Megatron baseline", solve_plan(base, cat, backend="greedy"))
        )
    for what, r in tries:
        if not r.ok or r.objective is None or r.plan is None:
            out.append({"what": what, "status": r.status.value, "text": f"{what}: no plan"})
            continue
        configs = "; ".join(f"{c.job}: {_config(c)}" for c in r.plan.training)
        out.append(
            {
                "what": what,
                "status": r.status.value,
                "objective": r.objective,
                "plan": configs,
                "text": f"{what}: {kind} {_num(r.objective)} vs {_num(value)}, "
                f"{_delta(kind, value, r.objective)}" + (f" with {configs}" if configs else ""),
            }
        )
    return out


def explain(
    problem: Problem,
    catalog: Catalog | None = None,
    backend: str = "milp",
    options: SolveOptions | None = None,
    with_alternatives: bool = True,
) -> dict[str, Any]:
    """Why the plan of ``problem`` (its ``plan:`` section, or the one ``backend`` finds) is
    what it is: ``{"source", "status", "objective_kind", "objective", "jobs", "constraints",
    "alternatives", "summary"}`` (see the module docstring)."""
    cat = catalog or default_catalog()
    opts = options or SolveOptions()
    given = problem.plan is not None and bool(problem.plan.training or problem.plan.serving)
    goal = serving_goal(problem, problem.objective)
    kind = goal.kind.value
    if given and problem.plan is not None:
        plan = problem.plan
        metrics = evaluate_plan(problem, plan, cat)
        serving = evaluate_services(problem, plan, cat)
        value = plan_objective(problem, goal.kind, metrics, serving, goal.serving_hours)
        status, source = "given", "the input's plan: section, evaluated"
    else:
        r = solve_plan(problem, cat, backend=backend, options=opts)
        source = f"solved with {backend}: {r.status.value}" + (
            f", gap {r.gap:.2%}" if r.gap is not None else ""
        )
        if not r.ok or r.plan is None or r.objective is None:
            return {
                "source": source,
                "status": r.status.value,
                "objective_kind": kind,
                "summary": [f"no plan: {r.explanation}"],
            }
        plan, metrics, serving, value, status = r.plan, r.metrics, r.serving, r.objective, "solved"
    jobs: list[dict[str, Any]] = [
        {"job": c.job, "config": _config(c), "bottleneck": bottleneck(c, m)}
        for c, m in zip(plan.training, metrics, strict=True)
    ]
    rules = constraints(problem, cat, plan, metrics, serving)
    alts = (
        alternatives(problem, cat, plan, value, kind, backend, opts, given)
        if with_alternatives
        else []
    )
    binding = [c["text"] for c in rules if c["binding"]]
    summary = [f"{kind} {_num(value)} ({source})"]
    summary += [f"{j['job']} runs {j['config']}: {j['bottleneck']['text']}" for j in jobs]
    summary.append(
        "binding: " + "; ".join(binding)
        if binding
        else "no constraint binds: nothing is at a limit"
    )
    summary += [a["text"] for a in alts]
    return {
        "source": source,
        "status": status,
        "objective_kind": kind,
        "objective": value,
        "jobs": jobs,
        "constraints": rules,
        "alternatives": alts,
        "summary": summary,
    }


__all__ = ["bottleneck", "constraints", "explain", "resolve_without"]
