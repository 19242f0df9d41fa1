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
* bound: the candidate's figures on an unlimited single pool bound every layout of it (WAN
  crossings only add time, and time only adds energy). Alone on the cluster, candidates whose
  bound is worse than the best feasible single-pool column are dropped; with other jobs or
  services, those whose bound plus every other job's best bound (and the services' least
  term) cannot beat a feasible plan of the whole problem (``incumbent``);
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
    tps_bound: dict[str, float] = field(default_factory=dict)
    """Per job, a bound on the tokens/s of any column (pairs ruled out by the floor or
    deadline before evaluation count here)."""
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


@dataclass
class _Pairs:
    """One job's candidates on every layout, with their bounds (best first)."""

    j: _Job
    classes: list[tuple[GpuSpec, list[GpuPool], list[TrainingConfig], References]]
    pairs: list[tuple[float, int, int, int, Layout]] = field(default_factory=list)
    """``(sign * bound, class, candidate, layout number, layout)``, sorted."""
    refs: dict[tuple[int, int], tuple[TrainingConfig, TrainingMetrics] | None] = field(
        default_factory=dict
    )
    tps_bound: float = 0.0
    """Highest roofline/WAN bound on tokens/s of any pair (set when a floor or deadline is
    checked against it)."""

    @property
    def best_key(self) -> float:
        return self.pairs[0][0] if self.pairs else math.inf


def _pairs(
    job: TrainingJob,
    catalog: Catalog,
    cluster: Cluster,
    objective: Objective,
    sign: float,
    max_subsets: int,
    stats: dict[str, int],
) -> _Pairs:
    """Every (candidate, layout) pair of ``job`` with its bound: the roofline/WAN bound for
    rate-like objectives (no evaluation), the reference bound (one evaluation per candidate)
    for the energy-like ones."""
    model = catalog.model(job.model)
    checkpoint_s = job_checkpoint_s(model, job.optimizer, cluster.reliability)
    j = _Job(job, model, job.tokens_to_train / job.global_batch_tokens, checkpoint_s)
    allowed = None if job.allowed_gpus is None else {catalog.gpu(g).id for g in job.allowed_gpus}
    eligible = [
        p
        for p in cluster.pools
        if (job.allowed_sites is None or p.site in job.allowed_sites)
        and (allowed is None or p.gpu in allowed)
    ]
    by_class: dict[tuple[object, ...], list[GpuPool]] = {}
    for p in eligible:
        by_class.setdefault(pool_class(p), []).append(p)
    out = _Pairs(j, [])
    kind = objective.kind
    roof = kind in RATE_KINDS
    floor = objective.min_tokens_per_s
    deadline = min(
        (d for d in (objective.deadline_h, job.deadline_h) if d is not None), default=None
    )
    fpt = 3.0 * forward_flops_per_token(model, job.seq_len, causal_executed=True)
    for c, pools in enumerate(by_class.values()):
        gpu = catalog.gpu(pools[0].gpu)
        raw = raw_configs(job, model, gpu, pools[0], sum(p.n_gpus for p in pools), stats)
        reference = References(job, model, pools[0], catalog.gpus, stats)
        out.classes.append((gpu, pools, raw, reference))
        all_layouts = layouts(pools, cluster, max_subsets)
        for i, base in enumerate(raw):
            for k, lay in enumerate(layouts_for(base, pools, all_layouts, cluster)):
                if floor is not None or deadline is not None:
                    # The roofline/WAN time bound alone may rule out the floor or deadline.
                    t = _time_bound(j, base, lay, cluster, roofline_s(job, fpt, base, gpu))
                    fastest = job.global_batch_tokens / t
                    out.tps_bound = max(out.tps_bound, fastest)
                    slow = floor is not None and fastest < floor
                    late = deadline is not None and j.iterations * t / 3600.0 > deadline
                    if slow or late:
                        stats["pruned_floor"] += 1
                        continue
                if roof:
                    # Cheap bound first (roofline and WAN link rate): no evaluation.
                    t = _time_bound(j, base, lay, cluster, roofline_s(job, fpt, base, gpu))
                    key = sign * _value_at(kind, j, t, base.n_gpus, cluster)
                else:
                    if (c, i) not in out.refs:
                        out.refs[c, i] = reference(base)
                    found = out.refs[c, i]
                    if found is None:
                        continue
                    key = sign * _bound(kind, j, found[1], found[0], lay, cluster, gpu)
                out.pairs.append((key, c, i, k, lay))
    out.pairs.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
    return out


@dataclass
class Prepared:
    """Every job's (candidate, layout) pairs with their bounds, computed once and shared by
    the enumerations of one solve (the references evaluated by one are reused by the next)."""

    pairs: dict[str, _Pairs]
    stats: dict[str, int]


def prepare(
    problem: Problem,
    catalog: Catalog,
    objective: Objective,
    max_subsets: int = 3,
    modes: tuple[str, ...] | None = None,
) -> Prepared:
    """The pairs of every training job of ``problem`` under ``objective`` (only layouts of
    ``modes``, if given: a restricted search, e.g. a baseline's)."""
    kind = objective.kind
    sign = -1.0 if kind in MAXIMISE else 1.0
    stats = dict.fromkeys(("enumerated", "pruned_memory", "pruned_floor"), 0)
    PATHS.clear()
    pairs = {
        job.id: _pairs(job, catalog, problem.cluster, objective, sign, max_subsets, stats)
        for job in problem.workloads.training
    }
    if modes is not None:
        for p in pairs.values():
            p.pairs = [x for x in p.pairs if x[4].mode in modes]
    return Prepared(pairs, stats)


@dataclass
class _JobSearch:
    """Where one job's best-bound search stands."""

    pairs: _Pairs
    cursor: int = 0
    done: bool = False
    columns: list[Column] = field(default_factory=list)
    own: float | None = None
    """Best value of a column feasible alone on the cluster (single-job pruning)."""


class Search:
    """Best-bound-first enumeration of every job's columns, resumable: :meth:`run` advances
    each job until its next bound cannot beat the incumbent, or it has kept ``new`` more
    columns; :meth:`space` returns the columns kept so far. The planner alternates the two
    on shared problems so a better incumbent prunes the rest (see :mod:`planner.solve`)."""

    def __init__(
        self,
        problem: Problem,
        catalog: Catalog,
        objective: Objective | None = None,
        max_subsets: int = 3,
        prune: bool = True,
        deadline: float | None = None,
        prepared: Prepared | None = None,
        modes: tuple[str, ...] | None = None,
    ) -> None:
        self.problem, self.catalog = problem, catalog
        self.objective = objective or problem.objective
        self.prune, self.deadline = prune, deadline
        self.kind = self.objective.kind
        self.sign = -1.0 if self.kind in MAXIMISE else 1.0
        prepared = prepared or prepare(problem, catalog, self.objective, max_subsets, modes)
        self.stats = dict.fromkeys(
            ("enumerated", "pruned_memory", "pruned_floor", "pruned_bound", "columns"), 0
        )
        for name, count in prepared.stats.items():
            self.stats[name] += count
        self.jobs = {j.id: _JobSearch(prepared.pairs[j.id]) for j in problem.workloads.training}
        # Pruning against the job's own best single-pool column needs the job to be alone on
        # the cluster (that column is then a feasible plan); with other jobs or services the
        # whole-problem incumbent prunes instead.
        self.single = prune and len(self.jobs) == 1 and not problem.workloads.inference
        self.best_tps: dict[str, float] = {}
        self.fewest: dict[str, int] = {}
        self.open_bound: float | None = None
        self.stopped = False

    def _worse(self, value: float, incumbent: float | None) -> bool:
        sign = self.sign
        return incumbent is not None and sign * value > sign * incumbent + 1e-9 * abs(incumbent)

    @property
    def finished(self) -> bool:
        return all(js.done for js in self.jobs.values())

    def run(
        self, incumbent: float | None = None, others_bound: float = 0.0, new: int | None = None
    ) -> bool:
        """Advance every job; True when every job's search is over (exhausted, pruned or
        stopped by the deadline). ``incumbent``: the objective of a feasible plan of the whole
        problem; a column whose bound plus every other job's best bound and ``others_bound``
        (the services' least objective term) cannot beat it is pruned."""
        for job in self.problem.workloads.training:
            js = self.jobs[job.id]
            if js.done:
                continue
            limit: float | None = None
            if self.prune and not self.single and incumbent is not None:
                rest = sum(o.pairs.best_key for k, o in self.jobs.items() if k != job.id)
                limit = self.sign * incumbent - rest - self.sign * others_bound
                limit += 1e-9 * max(abs(incumbent), 1.0)
            self._advance(job, js, limit, new)
        return self.finished

    def _advance(
        self, job: TrainingJob, js: _JobSearch, limit: float | None, new: int | None
    ) -> None:
        pj, j, cluster, stats = js.pairs, js.pairs.j, self.problem.cluster, self.stats
        roof = self.kind in RATE_KINDS
        kept = 0
        while js.cursor < len(pj.pairs):
            key, c, i, _, lay = pj.pairs[js.cursor]
            left = len(pj.pairs) - js.cursor
            if (self.single and self._worse(self.sign * key, js.own)) or (
                limit is not None and key > limit
            ):
                stats["pruned_bound"] += left
                js.cursor = len(pj.pairs)
                break
            if new is not None and kept >= new:
                return
            if self.deadline is not None and time.perf_counter() > self.deadline:
                stats["unexamined"] = stats.get("unexamined", 0) + left
                # Keys are sorted, so this one bounds every pair left.
                bound = self.sign * key if self.single else math.nan
                if self.open_bound is None or math.isnan(bound):
                    self.open_bound = bound
                elif not math.isnan(self.open_bound):
                    self.open_bound = self.sign * min(self.sign * self.open_bound, key)
                self.stopped = True
                js.cursor = len(pj.pairs)
                break
            js.cursor += 1
            gpu, _, raw, reference = pj.classes[c]
            if (c, i) not in pj.refs:
                pj.refs[c, i] = reference(raw[i])
            found = pj.refs[c, i]
            if found is None:
                continue
            cfg, ref = found
            self.fewest[job.id] = min(self.fewest.get(job.id, cfg.n_gpus), cfg.n_gpus)
            if roof and (self.single or limit is not None):
                exact = _bound(self.kind, j, ref, cfg, lay, cluster, gpu)
                if (self.single and self._worse(exact, js.own)) or (
                    limit is not None and self.sign * exact > limit
                ):
                    stats["pruned_bound"] += 1
                    continue
            col = _column(len(js.columns), j, self.kind, cfg, lay, cluster, self.catalog.gpus)
            if col is None:
                continue
            self.best_tps[job.id] = max(self.best_tps.get(job.id, 0.0), col.metrics.tokens_per_s)
            if not _meets_floor(self.objective, job, col.metrics):
                stats["pruned_floor"] += 1
                continue
            if limit is not None and self.sign * best_value(col) > limit:
                stats["pruned_bound"] += 1
                continue
            js.columns.append(col)
            kept += 1
            value = _reference_value(col, cluster) if self.single else None
            if value is not None and not self._worse(value, js.own):
                js.own = value
        js.done = True
        for found in pj.refs.values():
            if found is not None:
                n_gpus = found[0].n_gpus
                self.fewest[job.id] = min(self.fewest.get(job.id, n_gpus), n_gpus)

    def space(self) -> Space:
        """The columns kept so far, numbered in job order."""
        columns: list[Column] = []
        pruned = 0
        for js in self.jobs.values():
            for col in js.columns:
                if self.single and self._worse(best_value(col), js.own):
                    pruned += 1
                    continue
                columns.append(replace(col, index=len(columns)))
        stats = {**self.stats, "pruned_bound": self.stats["pruned_bound"] + pruned}
        stats["columns"] = len(columns)
        space = Space(
            columns, self.objective, list(self.jobs), stats, dict(self.best_tps), dict(self.fewest)
        )
        space.tps_bound = {
            k: js.pairs.tps_bound for k, js in self.jobs.items() if js.pairs.tps_bound
        }
        bound = self.open_bound
        space.open_bound = None if bound is None or math.isnan(bound) else bound
        space.complete = self.finished and not self.stopped
        return space


def enumerate_space(
    problem: Problem,
    catalog: Catalog,
    objective: Objective | None = None,
    max_subsets: int = 3,
    prune: bool = True,
    deadline: float | None = None,
    incumbent: float | None = None,
    others_bound: float = 0.0,
    prepared: Prepared | None = None,
) -> Space:
    """Every column of every training job of ``problem`` (see the module docstring and
    :class:`Search`).

    ``deadline`` (a ``time.perf_counter()`` value) stops the search early; for one job the
    best bound among the columns not examined is kept in :attr:`Space.open_bound`, so the
    plan found still comes with a valid gap. ``incumbent`` and ``others_bound``: see
    :meth:`Search.run`. ``prepared`` (from :func:`prepare`, same problem and objective) skips
    recomputing the pairs.
    """
    search = Search(problem, catalog, objective, max_subsets, prune, deadline, prepared)
    search.run(incumbent, others_bound)
    return search.space()
