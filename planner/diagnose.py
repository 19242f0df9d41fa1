"""Why a problem has no plan: the constraint that binds and by how much (solver-free)."""

from __future__ import annotations

from planner.candidates import Space
from planner.catalog import Catalog
from planner.configs import lowest_cap
from planner.costmodel.energy import provisioned_power_w
from planner.costmodel.flops import total_params
from planner.costmodel.memory import GRAD_BYTES, OPTIMIZER_BYTES, WEIGHT_BYTES
from planner.serving import fractional_cover
from planner.spec.problem import Problem
from planner.units import GIB


def _tb(n_bytes: float) -> str:
    return f"{n_bytes / 1e12:.2f} TB"


def explain_infeasible(problem: Problem, catalog: Catalog, space: Space) -> str:
    """One sentence per binding reason, most basic first (memory, GPUs, power, floor)."""
    reasons: list[str] = []
    cluster = problem.cluster
    for job in problem.workloads.training:
        model = catalog.model(job.model)
        pools = [
            p
            for p in cluster.pools
            if (job.allowed_sites is None or p.site in job.allowed_sites)
            and (job.allowed_gpus is None or p.gpu in {catalog.gpu(g).id for g in job.allowed_gpus})
        ]
        if not pools:
            reasons.append(f"{job.id}: no pool is in its allowed sites and GPU types")
            continue
        states = total_params(model) * (WEIGHT_BYTES + GRAD_BYTES + OPTIMIZER_BYTES[job.optimizer])
        by_site: dict[str, float] = {}
        for p in pools:
            by_site[p.site] = by_site.get(p.site, 0.0) + p.n_gpus * catalog.gpus[p.gpu].hbm_gib
        site, hbm = max(by_site.items(), key=lambda kv: kv[1])
        total = sum(by_site.values()) * GIB
        if states > total:
            reasons.append(
                f"{job.id}: {model.id} needs >= {_tb(states)} of weights, gradients and "
                f"optimizer state; all eligible GPUs offer {_tb(total)} (short by "
                f"{_tb(states - total)}); the largest site {site!r} offers {_tb(hbm * GIB)}"
            )
            continue
        fewest = space.fewest_gpus.get(job.id)
        have = sum(p.n_gpus for p in pools)
        bound = space.tps_bound.get(job.id)
        floor = space.objective.min_tokens_per_s
        if fewest is None and bound is not None and floor is not None and bound < floor:
            reasons.append(
                f"{job.id}: no plan can exceed {bound:,.0f} tokens/s (roofline and WAN bound); "
                f"the floor asks {floor:,.0f} (short by {100 * (1 - bound / floor):.1f}%)"
            )
            continue
        if fewest is None:
            reasons.append(
                f"{job.id}: no configuration fits memory on the {have} eligible GPUs "
                f"({_tb(total)} of HBM for >= {_tb(states)} of model state plus activations)"
            )
            continue
        room = 0
        for s in {p.site for p in pools}:
            site_pools = [p for p in pools if p.site == s]
            spec = cluster.site(s)
            w = min(
                provisioned_power_w(catalog.gpus[p.gpu], p, lowest_cap(catalog.gpus[p.gpu]))
                for p in site_pools
            )
            by_power = int(spec.power_budget_mw * 1e6 / (w * spec.pue))
            room += min(by_power, sum(p.n_gpus for p in site_pools))
        if fewest > room:
            reasons.append(
                f"{job.id}: the smallest configuration that fits memory needs {fewest} GPUs; "
                f"site power budgets allow {room} eligible GPUs even at the lowest power cap tried "
                f"(short by {fewest - room} GPUs)"
            )
            continue
        best = space.best_tokens_per_s.get(job.id)
        floor = space.objective.min_tokens_per_s
        if floor is not None and best is not None and best < floor:
            reasons.append(
                f"{job.id}: the fastest plan reaches {best:,.0f} tokens/s; the floor asks "
                f"{floor:,.0f} (short by {100 * (1 - best / floor):.1f}%)"
            )
            continue
        for deadline in (space.objective.deadline_h, job.deadline_h):
            if deadline is not None and best is not None:
                hours = job.tokens_to_train / best / 3600.0
                if hours > deadline:
                    reasons.append(
                        f"{job.id}: the fastest plan needs {hours:,.1f} h; the deadline is "
                        f"{deadline:g} h (late by {hours - deadline:,.1f} h)"
                    )
    reasons.extend(_service_reasons(problem, space))
    if not reasons:
        what = "job and service" if problem.workloads.inference else "job"
        reasons.append(
            f"every {what} fits on its own, but not all together: the GPU inventory and site "
            "power budgets cannot host the chosen configurations at once"
        )
    return "; ".join(reasons)


def _service_reasons(problem: Problem, space: Space) -> list[str]:
    """Per service: no engine meets its SLO, or no single site can host the fewest GPUs (or
    watts) its demand needs (a fractional lower bound over its engine options)."""
    out = []
    svc_space = space.services
    for svc in problem.workloads.inference:
        opts = [svc_space.options[o] for o in svc_space.by_service.get(svc.id, [])]
        slo = f"P{svc.slo.percentile:g} TTFT {svc.slo.ttft_ms:g} ms, TPOT {svc.slo.tpot_ms:g} ms"
        if not opts:
            out.append(
                f"{svc.id}: no engine shape tried (TP 1-8, PP 1-4, power caps) on its eligible "
                f"pools meets the SLO ({slo}) even alone"
            )
            continue
        rate = svc.arrival_rate_rps
        best: tuple[float, str] | None = None
        for site in sorted({o.site for o in opts}):
            here = [o for o in opts if o.site == site]
            need_gpus = fractional_cover(here, rate, lambda o: float(o.gpus))
            need_w = fractional_cover(here, rate, lambda o: o.budget_w)
            spec = problem.cluster.site(site)
            have_gpus = sum(p.n_gpus for p in problem.cluster.pools if p.site == site)
            have_w = spec.power_budget_mw * 1e6
            short = max(need_gpus / have_gpus, need_w / have_w)
            if best is None or short < best[0]:
                best = (
                    short,
                    f"{svc.id}: {rate:g} req/s under its SLO need >= {need_gpus:.1f} GPUs and "
                    f">= {need_w / 1e3:.1f} kW (facility) in one site; the best site {site!r} "
                    f"has {have_gpus} GPUs and {have_w / 1e3:.1f} kW",
                )
        if best is not None and best[0] > 1.0:
            out.append(best[1])
    return out
