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
from dataclasses import dataclass, field

from planner.catalog import Catalog
from planner.costmodel.energy import provisioned_power_w, run_share
from planner.costmodel.flops import forward_flops_per_token, total_params
from planner.costmodel.iteration import boundary_bytes_per_gpu, cross_site_reduce_s
from planner.costmodel.kernels import clock_ratio
from planner.costmodel.memory import GRAD_BYTES, model_state_bytes
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.pipeline import pipeline_time
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.costmodel.wan import cell_size_options
from planner.spec.base import Precision, Recompute, Schedule, WanSharing
from planner.spec.cluster import Cluster, GpuPool, Site
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import StagePlacement, TrainingConfig
from planner.spec.problem import Objective, ObjectiveKind, Problem
from planner.spec.workload import TrainingJob
from planner.topology import Path, pool_path
from planner.units import GIB

TP_SIZES = (1, 2, 4, 8)
MICRO_BATCHES = (1, 2, 4, 8)
CAP_FRACTIONS = (1.0, 0.8, 0.6)
"""Power caps tried, as fractions of the GPU's maximum cap: Zeus (You et al. NSDI 2023)
finds the energy-optimal H100/A100 caps at 60-80% of the maximum."""
LONG_SEQUENCE = 32768
"""Context parallelism is enumerated from this sequence length (Megatron-Core CP guidance)."""
RECOMPUTES = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
MAXIMISE = {ObjectiveKind.THROUGHPUT}


@dataclass(frozen=True)
class Layout:
    """Where a candidate's GPUs come from."""

    mode: str
    """``single``, ``pipeline`` or ``data``."""
    pools: tuple[str, ...]
    """Pool ids; for ``pipeline`` the chain order of the stage blocks."""


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

    @property
    def maximise(self) -> bool:
        return self.objective.kind in MAXIMISE


def objective_value(kind: ObjectiveKind, m: TrainingMetrics, weight: float = 1.0) -> float:
    """A plan's objective from its cost-model figures (the figure every backend reports)."""
    if kind is ObjectiveKind.THROUGHPUT:
        return weight * m.tokens_per_s
    if kind is ObjectiveKind.TIME_TO_TRAIN:
        return weight * m.time_to_train_h
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
    if kind in (ObjectiveKind.THROUGHPUT, ObjectiveKind.TIME_TO_TRAIN):
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
    if kind in (ObjectiveKind.THROUGHPUT, ObjectiveKind.TIME_TO_TRAIN):
        return objective_value(kind, m, weight)
    if kind is ObjectiveKind.COST:
        return m.energy.cost_breakdown_usd["wan_egress"]
    return 0.0


def pool_class(pool: GpuPool) -> tuple[object, ...]:
    """Pools with equal class give a device the same time (GPU, node size, fabrics)."""
    return (
        pool.gpu,
        pool.gpus_per_node,
        pool.intra_node_bw_gb_s,
        pool.inter_node_bw_gbps,
        pool.inter_node_latency_us,
    )


def pp_options(n_layers: int) -> list[int]:
    """Powers of two and small divisors of the layer count, with at least two layers per
    stage and at most 32 stages (Megatron-LM runs at scale use PP <= 16)."""
    top = min(32, max(1, n_layers // 2))
    opts = {p for p in (1, 2, 4, 8, 16, 32) if p <= top}
    opts |= {p for p in range(2, min(top, 16) + 1) if n_layers % p == 0}
    return sorted(opts)


def _caps(gpu: GpuSpec) -> list[float | None]:
    caps: list[float | None] = [None]
    for f in CAP_FRACTIONS[1:]:
        caps.append(max(gpu.power_cap_min_w, round(f * gpu.power_cap_max_w)))
    return list(dict.fromkeys(caps))


def lowest_cap(gpu: GpuSpec) -> float:
    """The lowest power cap the enumeration tries on ``gpu``."""
    caps = [c for c in _caps(gpu) if c is not None]
    return min(caps) if caps else gpu.power_cap_max_w


def _states_fit(
    model: ModelSpec, job: TrainingJob, gpu: GpuSpec, tp: int, pp: int, dp: int, cp: int, ep: int
) -> bool:
    """Quick lower bound: weights, gradients and optimizer state alone must fit (ZeRO-1)."""
    params = total_params(model) / (tp * pp)
    w, g, o = model_state_bytes(params, dp * cp, 1, job.optimizer)
    return (w + g + o) / GIB < gpu.hbm_gib


def _reference_cluster(template: GpuPool, n_gpus: int) -> Cluster:
    nodes = math.ceil(n_gpus / template.gpus_per_node)
    site = Site(id="_reference", power_budget_mw=1e9, pue=1.0)
    pool = template.model_copy(update={"id": "_reference", "site": site.id, "nodes": nodes})
    return Cluster(sites=[site], pools=[pool])


def _evaluate(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
) -> TrainingMetrics | None:
    try:
        return evaluate_training(job, model, cfg, cluster, gpus)
    except (PlacementError, ValueError):
        return None


def _raw_configs(
    job: TrainingJob,
    model: ModelSpec,
    gpu: GpuSpec,
    template: GpuPool,
    max_gpus: int,
    stats: dict[str, int],
) -> list[TrainingConfig]:
    """Every candidate of ``job`` on pools like ``template`` whose model states fit (recompute
    not chosen yet: :func:`_reference` picks the cheapest that fits)."""
    out = []
    batch = job.global_batch_seqs
    cps = [1] + ([2, 4, 8] if job.seq_len >= LONG_SEQUENCE else [])
    eps = [1] if model.moe is None else [e for e in (1, 2, 4, 8) if model.moe.n_experts % e == 0]
    caps = _caps(gpu)
    for tp, cp, pp, mb in itertools.product(
        TP_SIZES, cps, pp_options(model.n_layers), MICRO_BATCHES
    ):
        if (
            tp * cp > template.gpus_per_node
            or model.n_heads % tp
            or model.kv_heads % min(tp, model.kv_heads)
        ):
            continue
        for dp in range(1, batch // mb + 1):
            if batch % (dp * mb) or tp * cp * pp * dp > max_gpus:
                continue
            scheds = [(Schedule.ONE_F_ONE_B, 1)]
            # Megatron's interleaved schedule needs micro-batches in multiples of pp.
            if pp > 1 and model.n_layers % (2 * pp) == 0 and (batch // (dp * mb)) % pp == 0:
                scheds.append((Schedule.INTERLEAVED, 2))
            for ep in eps:
                if (dp * cp) % ep:
                    continue
                stats["enumerated"] += len(scheds) * len(caps)
                if not _states_fit(model, job, gpu, tp, pp, dp, cp, ep):
                    stats["pruned_memory"] += len(scheds) * len(caps)
                    continue
                for (sched, vpp), cap in itertools.product(scheds, caps):
                    out.append(
                        TrainingConfig(
                            job=job.id,
                            gpu=gpu.id,
                            tp=tp,
                            pp=pp,
                            dp=dp,
                            cp=cp,
                            ep=ep,
                            micro_batch=mb,
                            schedule=sched,
                            vpp=vpp,
                            power_cap_w=cap,
                            sequence_parallel=tp > 1,
                        )
                    )
    return out


def roofline_s(
    job: TrainingJob, flops_per_token: float, cfg: TrainingConfig, gpu: GpuSpec
) -> float:
    """A lower bound on the iteration time: every executed FLOP (``flops_per_token``: 3x the
    causal forward) at the best kernel efficiency the GPU reaches at this cap."""
    precision = cfg.precision or job.precision
    eff = gpu.efficiency
    top = max(eff.gemm_max, eff.attention_fwd, eff.attention_bwd)
    if precision is Precision.FP8 and eff.fp8_gemm_max is not None:
        top = max(top, eff.fp8_gemm_max)
    rate = cfg.n_gpus * gpu.peak_flops(precision) * top * clock_ratio(gpu, cfg.power_cap_w)
    return job.global_batch_tokens * flops_per_token / rate


class _References:
    """Reference figures of candidates on an unlimited single pool, memoising the cheapest
    recompute that fits (memory does not depend on the power cap)."""

    def __init__(
        self,
        job: TrainingJob,
        model: ModelSpec,
        template: GpuPool,
        gpus: dict[str, GpuSpec],
        stats: dict[str, int],
    ) -> None:
        self.job, self.model, self.template, self.gpus, self.stats = (
            job,
            model,
            template,
            gpus,
            stats,
        )
        self.recompute: dict[str, Recompute | None] = {}

    def __call__(self, cfg: TrainingConfig) -> tuple[TrainingConfig, TrainingMetrics] | None:
        ref = _reference_cluster(self.template, cfg.n_gpus)
        key = cfg.model_copy(update={"power_cap_w": None}).model_dump_json()
        if key not in self.recompute:
            found = _cheapest_fitting(self.job, self.model, cfg, ref, self.gpus)
            self.recompute[key] = found[0].recompute if found else None
            if found is not None and cfg.power_cap_w is None:
                return found
        rc = self.recompute[key]
        if rc is None:
            self.stats["pruned_memory"] += 1
            return None
        placed = cfg.model_copy(update={"recompute": rc})
        m = _evaluate(self.job, self.model, placed, ref, self.gpus)
        return None if m is None else (placed, m)


def _cheapest_fitting(
    job: TrainingJob,
    model: ModelSpec,
    base: TrainingConfig,
    ref: Cluster,
    gpus: dict[str, GpuSpec],
) -> tuple[TrainingConfig, TrainingMetrics] | None:
    for rc in RECOMPUTES:
        cfg = base.model_copy(update={"recompute": rc})
        m = _evaluate(job, model, cfg, ref, gpus)
        if m is not None and m.fits_memory:
            return cfg, m
    return None


_PATHS: dict[tuple[int, str, str], Path | None] = {}


def _path(cluster: Cluster, a: str, b: str) -> Path | None:
    """``pool_path`` memoised for the cluster being enumerated (cleared per enumeration)."""
    key = (id(cluster), a, b)
    if key not in _PATHS:
        _PATHS[key] = pool_path(cluster, a, b)
    return _PATHS[key]


class _Paths:
    """Pool-to-pool link quality of a cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def link(self, a: str, b: str) -> tuple[float, float]:
        """(bottleneck Gbit/s, one-way latency ms) from pool ``a`` to pool ``b``."""
        p = _path(self.cluster, a, b)
        return (0.0, math.inf) if p is None else (p.bw_gbps, p.latency_ms)

    def chain_quality(self, order: tuple[str, ...]) -> tuple[float, float]:
        """(bottleneck bandwidth, -total latency) of a chain: larger is better."""
        hops = [self.link(a, b) for a, b in itertools.pairwise(order)]
        return min(h[0] for h in hops), -sum(h[1] for h in hops)


def _widest_order(pools: tuple[str, ...], paths: _Paths) -> tuple[str, ...]:
    """Chain order with the widest bottleneck (exact up to 6 pools, greedy beyond)."""
    if len(pools) <= 6:
        return max(itertools.permutations(pools), key=lambda o: (paths.chain_quality(o), o))
    best: tuple[str, ...] | None = None
    for start in pools:
        order = [start]
        while len(order) < len(pools):
            rest = [p for p in pools if p not in order]
            order.append(max(rest, key=lambda p: (paths.link(order[-1], p), p)))
        cand = tuple(order)
        if best is None or paths.chain_quality(cand) > paths.chain_quality(best):
            best = cand
    assert best is not None
    return best


def layouts(pools: list[GpuPool], cluster: Cluster, max_subsets: int) -> list[Layout]:
    """Single pools, then pipeline chains and DP splits over the best pool subsets."""
    paths = _Paths(cluster)
    out = [Layout("single", (p.id,)) for p in pools]
    ids = tuple(p.id for p in pools)
    size = {p.id: p.n_gpus for p in pools}
    for n in range(2, len(ids) + 1):
        scored = []
        for subset in itertools.combinations(ids, n):
            order = _widest_order(subset, paths)
            q = paths.chain_quality(order)
            if q[0] <= 0:
                continue
            scored.append(((q, sum(size[p] for p in subset)), order))
        scored.sort(key=lambda s: s[0], reverse=True)
        chosen = [order for _, order in scored[:max_subsets]]
        # The Atlas rule's pick: the n pools with the most GPUs (the greedy baseline's layout).
        largest = tuple(sorted(ids, key=lambda p: (-size[p], p))[:n])
        if all(set(o) != set(largest) for o in chosen) and any(
            set(o) == set(largest) for _, o in scored
        ):
            chosen.append(_widest_order(largest, paths))
        for order in chosen:
            atlas = tuple(sorted(order, key=lambda p: (-size[p], p)))
            for o in dict.fromkeys([order, atlas]):
                out.append(Layout("pipeline", o))
            out.append(Layout("data", tuple(sorted(order))))
    return out


def _stage_split(pp: int, caps: list[int]) -> list[int] | None:
    """A split of ``pp`` stages over pools with room for ``caps`` stages (each >= 1)."""
    if len(caps) > pp or min(caps) < 1 or sum(caps) < pp:
        return None
    split = [1] * len(caps)
    left = pp - len(caps)
    while left:
        i = max(range(len(caps)), key=lambda j: (caps[j] - split[j], -j))
        split[i] += 1
        left -= 1
    return split


def _dp_split(dp: int, sizes: list[int], per_replica: int) -> list[int] | None:
    """DP replicas per pool for a ``data`` layout: as even as possible (the remainder to the
    first pools), independent of the pools' sizes so more capacity never changes a column;
    None if a pool cannot hold its share."""
    n = len(sizes)
    if n > dp:
        return None
    base, extra = divmod(dp, n)
    split = [base + (1 if i < extra else 0) for i in range(n)]
    if any(k * per_replica > s for k, s in zip(split, sizes, strict=True)):
        return None
    return split


def placement_for(layout: Layout, cfg: TrainingConfig, split: list[int]) -> list[StagePlacement]:
    """Placement entries of a layout: stage blocks (``pipeline``) or DP shares (``data``)."""
    if layout.mode == "data":
        return [
            StagePlacement(pool=p, first_stage=0, last_stage=cfg.pp - 1, dp=n)
            for p, n in zip(layout.pools, split, strict=True)
        ]
    out, first = [], 0
    for p, n in zip(layout.pools, split, strict=True):
        if n:
            out.append(StagePlacement(pool=p, first_stage=first, last_stage=first + n - 1))
        first += n
    return out


def connections(cluster: Cluster, layout: Layout) -> int:
    """Fewest TCP connections per transfer that fill every WAN hop of the layout (more never
    slow a transfer: ``min(link, k f)`` grows with ``k``)."""
    k = 1
    hops = (
        itertools.pairwise(layout.pools)
        if layout.mode == "pipeline"
        else itertools.combinations(layout.pools, 2)
    )
    for a, b in hops:
        p = _path(cluster, a, b)
        if p is not None and p.kind == "wan":
            k = max(k, math.ceil(p.bw_gbps / p.flow_gbps - 1e-9))
    return k


def _wan_variants(cfg: TrainingConfig, cluster: Cluster, layout: Layout) -> list[TrainingConfig]:
    """The configuration with enough TCP connections and each worthwhile DP-cell size."""
    if layout.mode == "single":
        return [cfg]
    k = connections(cluster, layout)
    cfg = cfg.model_copy(update={"tcp_connections": k})
    if layout.mode == "data":
        return [cfg]
    hops = [_path(cluster, a, b) for a, b in itertools.pairwise(layout.pools)]
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
        split = _stage_split(cfg.pp, [p.n_gpus // block for p in pools])
    elif layout.mode == "data":
        split = _dp_split(cfg.dp, [p.n_gpus for p in pools], cfg.tp * cfg.cp * cfg.pp)
    else:
        split = [cfg.pp] if pools[0].n_gpus >= cfg.n_gpus else None
    if split is None:
        return None
    best: tuple[TrainingConfig, TrainingMetrics] | None = None
    for variant in _wan_variants(cfg, cluster, layout):
        placed = variant.model_copy(update={"placement": placement_for(layout, variant, split)})
        m = _evaluate(j.job, j.model, placed, cluster, gpus)
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
        hops = [_path(cluster, a, b) for a, b in itertools.pairwise(layout.pools)]
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
            paths = [_path(cluster, by_site[sites[0]], by_site[s]) for s in sites[1:]]
            if any(p is None for p in paths):
                return math.inf
            k = connections(cluster, layout)
            bw = min(p.bw_with_flows(k) for p in paths if p)
            rtt = max(p.latency_ms for p in paths if p) * 2
            grads = ref.devices[0].params * GRAD_BYTES * cfg.tp * cfg.cp
            t = max(t, cross_site_reduce_s(grads, len(sites), bw, rtt, cfg.pp)[0])
    return t


def _value_at(kind: ObjectiveKind, j: _Job, t: float) -> float:
    """Throughput or time to train of the job at iteration time ``t``."""
    if kind is ObjectiveKind.THROUGHPUT:
        return j.job.weight * j.job.global_batch_tokens / t
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
    if kind in (ObjectiveKind.THROUGHPUT, ObjectiveKind.TIME_TO_TRAIN):
        return _value_at(kind, j, t)
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


def _site_allows(cluster: Cluster, pool: GpuPool, n_gpus: int, watts: float) -> bool:
    site = cluster.site(pool.site)
    return n_gpus <= pool.n_gpus and n_gpus * watts * site.pue <= site.power_budget_mw * 1e6


def _reference_value(col: Column, cluster: Cluster) -> float | None:
    """The column's value at its reference placement if that placement respects capacity and
    every site's power budget on its own (a feasible plan for a one-job problem)."""
    if col.layout.mode == "pipeline":
        pos = []
        for i, entry in enumerate(e for e in col.cfg.placement if e.pool in col.layout.pools):
            pos.extend(
                [col.layout.pools.index(entry.pool)] * (entry.last_stage - entry.first_stage + 1)
            )
            del i
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


def _layouts_for(
    cfg: TrainingConfig, pools: list[GpuPool], all_layouts: list[Layout], cluster: Cluster
) -> list[Layout]:
    """Single pools, and multi-pool layouts of the fewest pools that can hold the candidate
    and one more (room to spread under power budgets)."""
    singles = [lay for lay in all_layouts if lay.mode == "single"]
    sizes = sorted((p.n_gpus for p in pools), reverse=True)
    need, have, fewest = cfg.n_gpus, 0, len(sizes) + 1
    for i, s in enumerate(sizes):
        have += s
        if have >= need:
            fewest = i + 1
            break
    lo = max(2, fewest)
    multi = [
        lay
        for lay in all_layouts
        if lay.mode != "single"
        and lo <= len(lay.pools) <= lo + 1
        and not (lay.mode == "pipeline" and len(lay.pools) > cfg.pp)
        and not (lay.mode == "data" and len(lay.pools) > cfg.dp)
    ]
    return singles + multi


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
    _PATHS.clear()
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
        j = _Job(job, model, job.tokens_to_train / job.global_batch_tokens)
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
            raw = _raw_configs(job, model, gpu, pools[0], sum(p.n_gpus for p in pools), stats)
            reference = _References(job, model, pools[0], catalog.gpus, stats)
            all_layouts = layouts(pools, cluster, max_subsets)
            roof = kind in (ObjectiveKind.THROUGHPUT, ObjectiveKind.TIME_TO_TRAIN)
            fpt = 3.0 * forward_flops_per_token(model, job.seq_len, causal_executed=True)
            pairs: list[tuple[float, int, int, Layout]] = []
            refs: dict[int, tuple[TrainingConfig, TrainingMetrics] | None] = {}
            for i, base in enumerate(raw):
                for k, lay in enumerate(_layouts_for(base, pools, all_layouts, cluster)):
                    if roof:
                        # Cheap bound first (roofline and WAN link rate): no evaluation.
                        t = _time_bound(j, base, lay, cluster, roofline_s(job, fpt, base, gpu))
                        key = sign * _value_at(kind, j, t)
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
            columns.append(dataclass_replace_index(col, len(columns)))
    stats["columns"] = len(columns)
    space = Space(columns, objective, [j.id for j in jobs], stats, best_tps, fewest)
    space.open_bound = None if open_bound is None or math.isnan(open_bound) else open_bound
    space.complete = open_bound is None
    return space


def dataclass_replace_index(col: Column, index: int) -> Column:
    """The column renumbered."""
    from dataclasses import replace

    return replace(col, index=index)
