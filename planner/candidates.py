"""Enumerate and prune the columns a formulation selects from.

A **candidate** is one parallel configuration of a training job (GPU type, TP, CP, EP, PP,
schedule, micro-batch, DP, power cap, and the cheapest recompute that fits memory). A
**column** is a candidate on a **layout**:

* ``single``: every GPU in one pool;
* ``pipeline``: contiguous blocks of stages on an ordered chain of pools (Atlas: the DP
  replicas of a stage stay in one pool, only stage-boundary activations cross the WAN); the
  formulation chooses how many stages each pool hosts;
* ``data``: whole pipelines in several pools, DP replicas split evenly, gradients reduced
  hierarchically across sites (the naive geo layout, kept as an explicit alternative).

Every column is scored by the cost model. Its iteration time does not depend on how the
stages of a ``pipeline`` column are split over its pools (the pools of one chain share a
performance class), so throughput is a constant of the column and the per-device energy, carbon
and money are linear in the placement: ``value = const + sum_d coef[d][pos(d)]``.

Pruning rules (counted in :class:`Space.stats`):

* memory: a candidate that does not fit even with full recompute is dropped; a cheaper
  recompute that fits dominates a dearer one (recompute only adds time and energy);
* floor: columns under the throughput floor or over the deadline are dropped;
* bound (one job only): the candidate's figures on an unlimited single pool bound every layout
  of it (WAN crossings only add time, and time only adds energy); candidates whose bound is
  worse than the best feasible single-pool column are dropped;
* chains: per chain length, the ``max_subsets`` pool sets with the widest bottleneck, each in
  its widest order and in the Atlas order (most free GPUs first).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, replace

from planner.catalog import Catalog
from planner.configs import References, evaluate_quietly, raw_configs, roofline_s
from planner.costmodel.energy import provisioned_power_w, run_share
from planner.costmodel.flops import forward_flops_per_token
from planner.costmodel.iteration import boundary_bytes_per_gpu, cross_site_reduce_s
from planner.costmodel.memory import GRAD_BYTES
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.pipeline import pipeline_time
from planner.costmodel.reliability import job_checkpoint_s, job_goodput_fraction
from planner.costmodel.wan import cell_size_options
from planner.layouts import (
    PATHS,
    Layout,
    connections,
    dp_split,
    layouts,
    layouts_for,
    path_between,
    placement_for,
    pool_class,
    stage_split,
)
from planner.serving import ServiceSpace
from planner.spec.base import WanSharing
from planner.spec.cluster import Cluster, GpuPool, Site
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.problem import Objective, ObjectiveKind, Problem
from planner.spec.workload import TrainingJob

MAXIMISE = {ObjectiveKind.THROUGHPUT, ObjectiveKind.GOODPUT}
RATE_KINDS = (
    ObjectiveKind.THROUGHPUT,
    ObjectiveKind.GOODPUT,
    ObjectiveKind.TIME_TO_TRAIN,
    ObjectiveKind.GPUS,
)
"""Objectives that are a function of the iteration time (and the GPU count) alone."""


@dataclass(frozen=True)
class Column:
    """One candidate on one layout, with its cost-model figures and objective terms."""

    index: int
    job: str
    cfg: TrainingConfig
    """The configuration with a reference placement (a feasible split for ``pipeline``)."""
    layout: Layout
    metrics: TrainingMetrics
    block_gpus: int
    """GPUs of one pipeline device with all its DP replicas: ``tp * cp * dp``."""
    fixed_gpus: tuple[tuple[str, int], ...]
    """GPUs per pool for ``single`` and ``data`` layouts (empty for ``pipeline``)."""
    power_w: tuple[float, ...]
    """Provisioned IT watts per GPU in each layout pool (at the candidate's cap)."""
    const: float
    """Objective value independent of the stage split."""
    coef: tuple[tuple[float, ...], ...]
    """``coef[d][i]``: objective contribution of device ``d`` on layout pool ``i``."""

    @property
    def pp(self) -> int:
        return self.cfg.pp


@dataclass
class Space:
    """The columns of a problem and how they were obtained."""

    columns: list[Column]
    objective: Objective
    jobs: list[str]
    stats: dict[str, int] = field(default_factory=dict)
    best_tokens_per_s: dict[str, float] = field(default_factory=dict)
    """Per job, the best throughput of any column before the floor and deadline."""
    fewest_gpus: dict[str, int] = field(default_factory=dict)
    """Per job, the fewest GPUs of any configuration that fits memory."""
    complete: bool = True
    """False when a deadline stopped the search before every column was examined."""
    open_bound: float | None = None
    """Best objective any unexamined column could reach (None if unknown or complete)."""
    services: ServiceSpace = field(default_factory=ServiceSpace)
    """Serving options of the inference services (:mod:`planner.serving`)."""

    @property
    def maximise(self) -> bool:
        return self.objective.kind in MAXIMISE


def objective_value(kind: ObjectiveKind, m: TrainingMetrics, weight: float = 1.0) -> float:
    """A plan's objective from its cost-model figures (the figure every backend reports)."""
    if kind is ObjectiveKind.THROUGHPUT:
        return weight * m.tokens_per_s
    if kind is ObjectiveKind.GOODPUT:
        rel = m.reliability
        return weight * (m.tokens_per_s if rel is None else rel.goodput_tokens_per_s)
    if kind is ObjectiveKind.TIME_TO_TRAIN:
        return weight * m.time_to_train_h
    if kind is ObjectiveKind.GPUS:
        return float(m.n_gpus)
    if kind is ObjectiveKind.ENERGY:
        return m.energy.energy_to_train_kwh
    if kind is ObjectiveKind.CARBON:
        return m.energy.carbon_to_train_kg
    return m.energy.cost_to_train_usd


def _device_term(
    kind: ObjectiveKind,
    m: TrainingMetrics,
    d: int,
    gpu: GpuSpec,
    pool: GpuPool,
    site: Site,
    n_gpus: int,
    iterations: float,
    cap: float | None,
    iteration_s: float | None = None,
) -> float:
    """Objective contribution of device ``d`` (``n_gpus`` GPUs) in ``pool`` (energy-like),
    at the column's iteration time or at ``iteration_s`` (for bounds: the term grows with
    the iteration time, as idle and node power accrue)."""
    if kind in RATE_KINDS:
        return 0.0
    dm = m.devices[d]
    t = m.iteration_time_s if iteration_s is None else iteration_s
    rs = run_share(gpu, pool, site, n_gpus, dm.compute_s, dm.memory_s, t, iterations, cap)
    if kind is ObjectiveKind.ENERGY:
        return rs.facility_kwh
    if kind is ObjectiveKind.CARBON:
        return rs.carbon_kg
    return rs.electricity_usd + rs.gpu_rental_usd


def _const_term(kind: ObjectiveKind, m: TrainingMetrics, weight: float) -> float:
    if kind in RATE_KINDS:
        return objective_value(kind, m, weight)
    if kind is ObjectiveKind.COST:
        return m.energy.cost_breakdown_usd["wan_egress"]
    return 0.0


def _wan_variants(cfg: TrainingConfig, cluster: Cluster, layout: Layout) -> list[TrainingConfig]:
    """The configuration with enough TCP connections and each worthwhile DP-cell size."""
    if layout.mode == "single":
        return [cfg]
    k = connections(cluster, layout)
    cfg = cfg.model_copy(update={"tcp_connections": k})
    if layout.mode == "data":
        return [cfg]
    hops = [path_between(cluster, a, b) for a, b in itertools.pairwise(layout.pools)]
    wan_hops = [h for h in hops if h is not None and h.kind == "wan"]
    if not wan_hops:
        return [cfg]
    narrow = min(wan_hops, key=lambda h: h.bw_gbps)
    out = [cfg]
    for c in cell_size_options(cfg.dp, narrow.bw_gbps, narrow.bw_with_flows(k)):
        if c == 1:
            out.append(cfg.model_copy(update={"wan_sharing": WanSharing.FAIR}))
        else:
            out.append(cfg.model_copy(update={"dp_cell_size": c}))
    unique = {c.model_dump_json(): c for c in reversed(out)}
    return list(reversed(unique.values()))


@dataclass(frozen=True)
class _Job:
    job: TrainingJob
    model: ModelSpec
    iterations: float
    checkpoint_s: float = 0.0
    """Checkpoint write time (:mod:`costmodel.reliability`; the same for every candidate)."""


def _column(
    index: int,
    j: _Job,
    kind: ObjectiveKind,
    cfg: TrainingConfig,
    layout: Layout,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
) -> Column | None:
    """Evaluate ``cfg`` on ``layout`` (best WAN variant) and derive its objective terms."""
    pools = [cluster.pool(p) for p in layout.pools]
    block = cfg.tp * cfg.cp * cfg.dp
    if layout.mode == "pipeline":
        split = stage_split(cfg.pp, [p.n_gpus // block for p in pools])
    elif layout.mode == "data":
        split = dp_split(cfg.dp, [p.n_gpus for p in pools], cfg.tp * cfg.cp * cfg.pp)
    else:
        split = [cfg.pp] if pools[0].n_gpus >= cfg.n_gpus else None
    if split is None:
        return None
    best: tuple[TrainingConfig, TrainingMetrics] | None = None
    for variant in _wan_variants(cfg, cluster, layout):
        placed = variant.model_copy(update={"placement": placement_for(layout, variant, split)})
        m = evaluate_quietly(j.job, j.model, placed, cluster, gpus)
        if m is not None and (best is None or m.iteration_time_s < best[1].iteration_time_s):
            best = (placed, m)
    if best is None:
        return None
    placed, m = best
    gpu = gpus[pools[0].gpu]
    power = tuple(provisioned_power_w(gpu, p, cfg.power_cap_w) for p in pools)
    const = _const_term(kind, m, j.job.weight)
    sites = [cluster.site(p.site) for p in pools]
    coef: tuple[tuple[float, ...], ...] = ()
    fixed: tuple[tuple[str, int], ...] = ()
    if layout.mode == "pipeline":
        coef = tuple(
            tuple(
                _device_term(kind, m, d, gpu, p, s, block, j.iterations, cfg.power_cap_w)
                for p, s in zip(pools, sites, strict=True)
            )
            for d in range(cfg.pp)
        )
    else:
        shares = split if layout.mode == "data" else [cfg.dp]
        per = cfg.tp * cfg.cp
        fixed = tuple((p.id, n * per * cfg.pp) for p, n in zip(pools, shares, strict=True))
        const += sum(
            _device_term(kind, m, d, gpu, p, s, n * per, j.iterations, cfg.power_cap_w)
            for d in range(cfg.pp)
            for p, s, n in zip(pools, sites, shares, strict=True)
        )
    return Column(index, j.job.id, placed, layout, m, block, fixed, power, const, coef)


def _iteration_bound(
    j: _Job,
    ref: TrainingMetrics,
    cfg: TrainingConfig,
    layout: Layout,
    cluster: Cluster,
    gpu: GpuSpec,
) -> float:
    """:func:`_time_bound` from the candidate's figures on an unlimited single pool: exact
    for a single pool; for several pools, the part no placement changes: the pipeline of the
    devices' per-micro-batch times (kernels and exposed TP/CP/EP, the same on every pool of
    the class) without fill, plus the optimizer step and the step overhead. The reference's
    fill and DP exposure are not a bound there: a stage's replicas in one site may reduce
    over NVLink, and a WAN hop may beat a slow NIC."""
    if layout.mode == "single":
        return _time_bound(j, cfg, layout, cluster, ref.iteration_time_s, ref)
    per_mb = [d.fwd_s + d.bwd_s for d in ref.devices]
    t_opt = max(d.busy_s - ref.micro_batches * t for d, t in zip(ref.devices, per_mb, strict=True))
    t = pipeline_time(per_mb, ref.micro_batches, cfg.vpp) + max(0.0, t_opt)
    return _time_bound(j, cfg, layout, cluster, t + gpu.efficiency.step_overhead_s, ref)


def _time_bound(
    j: _Job,
    cfg: TrainingConfig,
    layout: Layout,
    cluster: Cluster,
    t: float,
    ref: TrainingMetrics | None = None,
) -> float:
    """A lower bound on the iteration time of ``cfg`` on ``layout``: ``t`` (a bound that
    ignores the layout) and, across sites, the WAN work that cannot overlap: a pipeline's
    period is at least ``D V / B`` per micro-batch on its narrowest hop (``costmodel.wan``);
    device 0 cannot finish before its cross-site gradient reduction
    (``iteration.cross_site_reduce_s``; its drain slack is zero)."""
    if layout.mode == "pipeline":
        hops = [path_between(cluster, a, b) for a, b in itertools.pairwise(layout.pools)]
        wan = [h.bw_gbps for h in hops if h is not None and h.kind == "wan"]
        if wan:
            volume = boundary_bytes_per_gpu(j.job, j.model, cfg) * cfg.tp * cfg.cp * cfg.dp
            m = max(1, round(j.job.global_batch_seqs / (cfg.dp * cfg.micro_batch)))
            t = max(t, m * volume * 8.0 / (min(wan) * 1e9))
    elif layout.mode == "data" and ref is not None:
        by_site: dict[str, str] = {}
        for p in layout.pools:
            by_site.setdefault(cluster.pool(p).site, p)
        if len(by_site) > 1:
            sites = sorted(by_site)
            paths = [path_between(cluster, by_site[sites[0]], by_site[s]) for s in sites[1:]]
            if any(p is None for p in paths):
                return math.inf
            k = connections(cluster, layout)
            bw = min(p.bw_with_flows(k) for p in paths if p)
            rtt = max(p.latency_ms for p in paths if p) * 2
            grads = ref.devices[0].params * GRAD_BYTES * cfg.tp * cfg.cp
            t = max(t, cross_site_reduce_s(grads, len(sites), bw, rtt, cfg.pp)[0])
    return t


def _value_at(kind: ObjectiveKind, j: _Job, t: float, n_gpus: int, cluster: Cluster) -> float:
    """Throughput, goodput or time to train of the job on ``n_gpus`` GPUs at iteration time
    ``t``. Goodput is throughput times the goodput fraction, which depends on the GPU count
    alone (and falls with it), so a lower bound on ``t`` still bounds it."""
    if kind is ObjectiveKind.THROUGHPUT:
        return j.job.weight * j.job.global_batch_tokens / t
    if kind is ObjectiveKind.GOODPUT:
        f = job_goodput_fraction(n_gpus, j.checkpoint_s, cluster.reliability)
        return j.job.weight * j.job.global_batch_tokens / t * f
    if kind is ObjectiveKind.GPUS:
        return float(n_gpus)
    return j.job.weight * j.iterations * t / 3600.0


def _bound(
    kind: ObjectiveKind,
    j: _Job,
    ref: TrainingMetrics,
    cfg: TrainingConfig,
    layout: Layout,
    cluster: Cluster,
    gpu: GpuSpec,
) -> float:
    """Best value ``cfg`` can reach on ``layout`` (see :func:`_iteration_bound`)."""
    t = _iteration_bound(j, ref, cfg, layout, cluster, gpu)
    if kind in RATE_KINDS:
        return _value_at(kind, j, t, cfg.n_gpus, cluster)
    pools = [cluster.pool(p) for p in layout.pools]
    block = cfg.tp * cfg.cp * cfg.dp
    return sum(
        min(
            _device_term(
                kind, ref, d, gpu, p, cluster.site(p.site), block, j.iterations, cfg.power_cap_w, t
            )
            for p in pools
        )
        for d in range(cfg.pp)
    )


def _meets_floor(objective: Objective, job: TrainingJob, m: TrainingMetrics) -> bool:
    if objective.min_tokens_per_s is not None and m.tokens_per_s < objective.min_tokens_per_s:
        return False
    deadline = min(
        (d for d in (objective.deadline_h, job.deadline_h) if d is not None), default=None
    )
    return deadline is None or m.time_to_train_h <= deadline


def _reference_value(col: Column, cluster: Cluster) -> float | None:
    """The column's value at its reference placement if that placement respects capacity and
    every site's power budget on its own (a feasible plan for a one-job problem)."""
    if col.layout.mode == "pipeline":
        pos = [
            col.layout.pools.index(e.pool)
            for e in col.cfg.placement
            for _ in range(e.last_stage - e.first_stage + 1)
        ]
        gpus = {p: col.block_gpus * pos.count(i) for i, p in enumerate(col.layout.pools)}
        value = col.const + sum(col.coef[d][i] for d, i in enumerate(pos))
    else:
        gpus = dict(col.fixed_gpus)
        value = col.const
    watts: dict[str, float] = {}
    for i, p in enumerate(col.layout.pools):
        pool = cluster.pool(p)
        if gpus.get(p, 0) > pool.n_gpus:
            return None
        watts[pool.site] = watts.get(pool.site, 0.0) + gpus.get(p, 0) * col.power_w[i]
    for site_id, w in watts.items():
        site = cluster.site(site_id)
        if w * site.pue > site.power_budget_mw * 1e6:
            return None
    return value


def best_value(col: Column) -> float:
    """The best objective any stage split of the column can reach."""
    if not col.coef:
        return col.const
    return col.const + sum(min(row) for row in col.coef)


def enumerate_space(
    problem: Problem,
    catalog: Catalog,
    objective: Objective | None = None,
    max_subsets: int = 3,
    prune: bool = True,
    deadline: float | None = None,
) -> Space:
    """Every column of every training job of ``problem`` (see the module docstring).

    ``deadline`` (a ``time.perf_counter()`` value) stops the search early; for one job the
    best bound among the columns not examined is kept in :attr:`Space.open_bound`, so the
    plan found still comes with a valid gap.
    """
    objective = objective or problem.objective
    kind = objective.kind
    cluster = problem.cluster
    PATHS.clear()
    stats = dict.fromkeys(
        ("enumerated", "pruned_memory", "pruned_floor", "pruned_bound", "columns"), 0
    )
    columns: list[Column] = []
    jobs = problem.workloads.training
    sign = -1.0 if kind in MAXIMISE else 1.0
    best_tps: dict[str, float] = {}
    fewest: dict[str, int] = {}
    open_bound: float | None = None

    def worse(value: float, incumbent: float | None) -> bool:
        return incumbent is not None and sign * value > sign * incumbent + 1e-9 * abs(incumbent)

    for job in jobs:
        model = catalog.model(job.model)
        checkpoint_s = job_checkpoint_s(model, job.optimizer, cluster.reliability)
        j = _Job(job, model, job.tokens_to_train / job.global_batch_tokens, checkpoint_s)
        allowed = (
            None if job.allowed_gpus is None else {catalog.gpu(g).id for g in job.allowed_gpus}
        )
        eligible = [
            p
            for p in cluster.pools
            if (job.allowed_sites is None or p.site in job.allowed_sites)
            and (allowed is None or p.gpu in allowed)
        ]
        by_class: dict[tuple[object, ...], list[GpuPool]] = {}
        for p in eligible:
            by_class.setdefault(pool_class(p), []).append(p)
        job_cols: list[Column] = []
        incumbent: float | None = None
        single_job = prune and len(jobs) == 1
        for pools in by_class.values():
            gpu = catalog.gpu(pools[0].gpu)
            raw = raw_configs(job, model, gpu, pools[0], sum(p.n_gpus for p in pools), stats)
            reference = References(job, model, pools[0], catalog.gpus, stats)
            all_layouts = layouts(pools, cluster, max_subsets)
            roof = kind in RATE_KINDS
            fpt = 3.0 * forward_flops_per_token(model, job.seq_len, causal_executed=True)
            pairs: list[tuple[float, int, int, Layout]] = []
            refs: dict[int, tuple[TrainingConfig, TrainingMetrics] | None] = {}
            for i, base in enumerate(raw):
                for k, lay in enumerate(layouts_for(base, pools, all_layouts, cluster)):
                    if roof:
                        # Cheap bound first (roofline and WAN link rate): no evaluation.
                        t = _time_bound(j, base, lay, cluster, roofline_s(job, fpt, base, gpu))
                        key = sign * _value_at(kind, j, t, base.n_gpus, cluster)
                    else:
                        if i not in refs:
                            refs[i] = reference(base)
                        found = refs[i]
                        if found is None:
                            continue
                        key = sign * _bound(kind, j, found[1], found[0], lay, cluster, gpu)
                    pairs.append((key, i, k, lay))
            pairs.sort(key=lambda x: (x[0], x[1], x[2]))
            for n, (key, i, _, lay) in enumerate(pairs):
                if single_job and worse(sign * key, incumbent):
                    stats["pruned_bound"] += len(pairs) - n
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    stats["unexamined"] = stats.get("unexamined", 0) + len(pairs) - n
                    # Keys are sorted, so this one bounds every pair left in this class;
                    # keep the best over classes.
                    left = sign * key if single_job else math.nan
                    if open_bound is None or math.isnan(left):
                        open_bound = left
                    elif not math.isnan(open_bound):
                        open_bound = sign * min(sign * open_bound, key)
                    break
                if i not in refs:
                    refs[i] = reference(raw[i])
                found = refs[i]
                if found is None:
                    continue
                cfg, ref = found
                fewest[job.id] = min(fewest.get(job.id, cfg.n_gpus), cfg.n_gpus)
                if (
                    roof
                    and single_job
                    and worse(_bound(kind, j, ref, cfg, lay, cluster, gpu), incumbent)
                ):
                    stats["pruned_bound"] += 1
                    continue
                col = _column(
                    len(columns) + len(job_cols), j, kind, cfg, lay, cluster, catalog.gpus
                )
                if col is None:
                    continue
                best_tps[job.id] = max(best_tps.get(job.id, 0.0), col.metrics.tokens_per_s)
                if not _meets_floor(objective, job, col.metrics):
                    stats["pruned_floor"] += 1
                    continue
                job_cols.append(col)
                ref_value = _reference_value(col, cluster) if single_job else None
                if ref_value is not None and not worse(ref_value, incumbent):
                    incumbent = ref_value
            for found in refs.values():
                if found is not None:
                    n_gpus = found[0].n_gpus
                    fewest[job.id] = min(fewest.get(job.id, n_gpus), n_gpus)
        for col in job_cols:
            if single_job and worse(best_value(col), incumbent):
                stats["pruned_bound"] += 1
                continue
            columns.append(replace(col, index=len(columns)))
    stats["columns"] = len(columns)
    space = Space(columns, objective, [j.id for j in jobs], stats, best_tps, fewest)
    space.open_bound = None if open_bound is None or math.isnan(open_bound) else open_bound
    space.complete = open_bound is None
    return space
