"""The greedy baseline: Megatron-style defaults placed by the Atlas site-selection rule.

Per job, in order:

1. GPU type: the eligible type with the most free GPUs (ties: higher BF16 peak).
2. Megatron-LM defaults: TP = GPUs per node (the largest divisor of the heads that fits a
   node), micro-batch 1, 1F1B, ZeRO-1, no power cap; PP = the smallest stage count whose
   memory fits, escalating recompute none -> selective -> full (Narayanan et al. 2021, Sec. 5;
   Megatron-LM README).
3. Atlas (Palak et al. 2024, Alg. 1): sort pools by free GPUs, largest first, and give each
   ``min(stages left, free GPUs // (TP x DP))`` contiguous stages, also bounded by its site's
   power room; DP is the largest batch divisor for which all stages find a place.

It returns a plan (and is the warm start of both formulations when its plan is a column).
"""

from __future__ import annotations

import math

from planner.catalog import Catalog
from planner.configs import RECOMPUTES, pp_options
from planner.costmodel.energy import provisioned_power_w
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.layouts import Layout, connections
from planner.serving import ServiceOption, ServiceSpace, configs_from_counts
from planner.spec.base import Precision
from planner.spec.cluster import GpuPool
from planner.spec.plan import Plan, StagePlacement, TrainingConfig
from planner.spec.problem import Problem
from planner.spec.workload import TrainingJob


def _eligible(problem: Problem, job: TrainingJob, catalog: Catalog) -> list[GpuPool]:
    allowed = None if job.allowed_gpus is None else {catalog.gpu(g).id for g in job.allowed_gpus}
    return [
        p
        for p in problem.cluster.pools
        if (job.allowed_sites is None or p.site in job.allowed_sites)
        and (allowed is None or p.gpu in allowed)
    ]


def _stage_room(
    problem: Problem,
    pools: list[GpuPool],
    free: dict[str, int],
    watts: dict[str, float],
    block: int,
    w_per_gpu: dict[str, float],
) -> list[tuple[GpuPool, int]]:
    """Stages each pool can take: by free GPUs and by its site's power room."""
    out = []
    room_w = dict(watts)
    for p in pools:
        site = problem.cluster.site(p.site)
        by_gpus = free[p.id] // block
        per_stage = block * w_per_gpu[p.id] * site.pue
        by_power = int(room_w[p.site] // per_stage) if per_stage > 0 else by_gpus
        n = max(0, min(by_gpus, by_power))
        room_w[p.site] -= n * per_stage
        out.append((p, n))
    return out


def _place(
    cfg: TrainingConfig,
    problem: Problem,
    pools: list[GpuPool],
    free: dict[str, int],
    watts: dict[str, float],
    w_per_gpu: dict[str, float],
) -> list[StagePlacement] | None:
    block = cfg.tp * cfg.cp * cfg.dp
    ordered = sorted(pools, key=lambda p: (-free[p.id], p.id))
    placement, stage = [], 0
    for pool, room in _stage_room(problem, ordered, free, watts, block, w_per_gpu):
        take = min(cfg.pp - stage, room)
        if take > 0:
            placement.append(
                StagePlacement(pool=pool.id, first_stage=stage, last_stage=stage + take - 1)
            )
            stage += take
        if stage == cfg.pp:
            return placement
    return None


def _try(
    problem: Problem,
    job: TrainingJob,
    catalog: Catalog,
    cfg: TrainingConfig,
) -> TrainingMetrics | None:
    try:
        m = evaluate_training(job, catalog.model(job.model), cfg, problem.cluster, catalog.gpus)
    except (PlacementError, ValueError):
        return None
    return m if m.fits_memory and not m.warnings else None


def greedy_config(
    problem: Problem,
    job: TrainingJob,
    catalog: Catalog,
    free: dict[str, int],
    watts: dict[str, float],
) -> TrainingConfig | None:
    """The baseline configuration of one job on the GPUs and power still free."""
    model = catalog.model(job.model)
    pools = _eligible(problem, job, catalog)
    by_type: dict[str, int] = {}
    for p in pools:
        by_type[p.gpu] = by_type.get(p.gpu, 0) + free[p.id]
    if not by_type:
        return None
    gpu_id = max(by_type, key=lambda g: (by_type[g], catalog.gpus[g].peak_flops(Precision.BF16), g))
    gpu = catalog.gpus[gpu_id]
    typed = [p for p in pools if p.gpu == gpu_id]
    node = max(p.gpus_per_node for p in typed)
    tp = max(t for t in range(1, node + 1) if model.n_heads % t == 0 and node % t == 0)
    w_per_gpu = {p.id: provisioned_power_w(gpu, p, None) for p in typed}
    batch = job.global_batch_seqs
    for pp in pp_options(model.n_layers):
        for dp in sorted((d for d in range(1, batch + 1) if batch % d == 0), reverse=True):
            if tp * pp * dp > by_type[gpu_id]:
                continue
            base = TrainingConfig(
                job=job.id, gpu=gpu_id, tp=tp, pp=pp, dp=dp, micro_batch=1, sequence_parallel=tp > 1
            )
            placement = _place(base, problem, typed, free, watts, w_per_gpu)
            if placement is None:
                continue
            lay = Layout("pipeline", tuple(e.pool for e in placement))
            k = connections(problem.cluster, lay)
            for rc in RECOMPUTES:
                cfg = base.model_copy(
                    update={"placement": placement, "recompute": rc, "tcp_connections": k}
                )
                if _try(problem, job, catalog, cfg) is not None:
                    return cfg
    return None


def _rate(opt: ServiceOption, attr: str) -> float:
    return opt.prefill_rps if attr == "prefill_rps" else opt.decode_rps


def greedy_services(
    problem: Problem,
    space: ServiceSpace,
    free: dict[str, int],
    watts: dict[str, float],
) -> dict[int, int] | None:
    """Engines per option for every service in turn (DistServe-style homogeneous engines):
    in each site, most free GPUs first, the prefill and the decode option with the highest
    goodput per GPU (or the best colocated option if it needs fewer GPUs), as many engines as
    the demand needs; the first site where they fit in GPUs and power. None if one fails."""
    counts: dict[int, int] = {}
    site_free = {s.id: 0 for s in problem.cluster.sites}
    for p in problem.cluster.pools:
        site_free[p.site] += free[p.id]
    for svc in space.services:
        opts = [space.options[o] for o in space.by_service[svc]]
        need = space.demand[svc]
        placed = False
        for site in sorted(site_free, key=lambda s: -site_free[s]):
            here = [o for o in opts if o.site == site]
            picks: list[list[tuple[int, int]]] = []
            for attr in ("prefill_rps", "decode_rps"):
                goal = space.prefill_demand(svc) if attr == "prefill_rps" else need
                role = [
                    o for o in here if getattr(o, attr) > 0 and o.group.role.value != "colocated"
                ]
                if goal <= 0:
                    picks.append([])
                elif role:
                    best = max(role, key=lambda o: (_rate(o, attr) / o.gpus, -o.index))
                    picks.append([(best.index, math.ceil(goal / _rate(best, attr) - 1e-9))])
            together = [o for o in here if o.group.role.value == "colocated"]
            candidates: list[list[tuple[int, int]]] = []
            if len(picks) == 2:
                candidates.append(picks[0] + picks[1])
            if together:
                best = max(together, key=lambda o: (o.prefill_rps / o.gpus, -o.index))
                candidates.append([(best.index, math.ceil(need / best.prefill_rps - 1e-9))])
            candidates.sort(key=lambda c: sum(space.options[o].gpus * k for o, k in c))
            for cand in candidates:
                use: dict[str, int] = {}
                draw = 0.0
                for o, k in cand:
                    opt = space.options[o]
                    use[opt.group.pool] = use.get(opt.group.pool, 0) + k * opt.gpus
                    draw += k * opt.budget_w
                quota = space.max_gpus.get(svc)
                over = quota is not None and sum(use.values()) > quota
                if over or any(free[q] < n for q, n in use.items()) or draw > watts[site]:
                    continue
                for o, k in cand:
                    counts[o] = counts.get(o, 0) + k
                for pool_id, n in use.items():
                    free[pool_id] -= n
                    site_free[site] -= n
                watts[site] -= draw
                placed = True
                break
            if placed:
                break
        if not placed:
            return None
    return counts


def greedy(problem: Problem, catalog: Catalog, services: ServiceSpace | None = None) -> Plan | None:
    """The baseline plan of every training job in turn, then of every service (when its
    options are given), or None if one finds no place."""
    free = {p.id: p.n_gpus for p in problem.cluster.pools}
    watts = {s.id: s.power_budget_mw * 1e6 for s in problem.cluster.sites}
    configs = []
    for job in problem.workloads.training:
        cfg = greedy_config(problem, job, catalog, free, watts)
        if cfg is None:
            return None
        gpu = catalog.gpus[cfg.gpu]
        for e in cfg.placement:
            pool = problem.cluster.pool(e.pool)
            n = (e.last_stage - e.first_stage + 1) * cfg.tp * cfg.cp * cfg.dp
            free[pool.id] -= n
            site = problem.cluster.site(pool.site)
            watts[pool.site] -= n * provisioned_power_w(gpu, pool, cfg.power_cap_w) * site.pue
        configs.append(cfg)
    serving = []
    if services is not None and services.services:
        counts = greedy_services(problem, services, free, watts)
        if counts is None:
            return None
        serving = configs_from_counts(services, counts)
    return Plan(training=configs, serving=serving)
