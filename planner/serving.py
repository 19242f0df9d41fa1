"""Serving options of the inference services: what one engine of each shape, role and pool
contributes (the planning layer over :mod:`planner.costmodel.service`; solver-free).

An **option** is one engine (a role, a pool, TP, PP and a power cap) with its goodput toward
the service's prefill demand and decode demand: a prefill engine counts toward the first, a
decode engine toward the second, a colocated engine toward both (DistServe, Zhong et al.
OSDI 2024: disaggregated or colocated, whichever needs fewer GPUs). The formulations choose
an integer count of every option so both demands are covered, all in one site.

Shapes tried per pool: TP in {1, 2, 4, 8} inside a node (dividing the heads); PP in {1, 2, 4}
only when no PP = 1 engine holds the weights; power caps at 100/80/60% of the maximum
(``configs.cap_levels``). An option whose engine cannot meet the SLO even alone is dropped.
Options are computed once per pool class (pools with the same GPU and fabrics) and copied to
every pool of the class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from planner.catalog import Catalog
from planner.configs import cap_levels
from planner.costmodel.service import (
    demand_key,
    engine_model,
    engine_power,
    goodput_rps,
    hourly,
)
from planner.layouts import pool_class
from planner.spec.cluster import Cluster, GpuPool
from planner.spec.plan import EngineGroup, EngineRole, ServingConfig
from planner.spec.problem import Objective, ObjectiveKind
from planner.spec.workload import InferenceService

TP_SIZES = (1, 2, 4, 8)
PP_SIZES = (1, 2, 4)


@dataclass(frozen=True)
class ServiceOption:
    """One engine shape of one service on one pool, with what it contributes."""

    index: int
    service: str
    group: EngineGroup
    """The engine (``count`` 1)."""
    site: str
    gpus: int
    """GPUs of one engine."""
    prefill_rps: float
    """Goodput toward the prefill demand (0 for decode engines)."""
    decode_rps: float
    """Goodput toward the decode demand (0 for prefill engines)."""
    budget_w: float
    """Facility watts one engine counts against its site's budget: PUE x (its cap, or its
    expected peak draw where the site allows oversubscription) plus its node share."""
    provisioned_w: float
    """IT watts at the cap (GPUs plus node share)."""
    peak_w: float
    """Expected peak IT draw at its goodput (:func:`costmodel.service.engine_power`)."""
    value: float
    """Objective contribution of one engine (energy, carbon, money over the serving hours;
    GPUs; 0 for the throughput-like objectives)."""
    upper: int
    """Most engines of this option a plan can use (demand and pool size)."""


@dataclass
class ServiceSpace:
    """Every option of every service."""

    options: list[ServiceOption] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    by_service: dict[str, list[int]] = field(default_factory=dict)
    demand: dict[str, float] = field(default_factory=dict)
    bubbles: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Per service, the training job whose bubbles serve part of its prefill and the rate."""

    def prefill_demand(self, service: str) -> float:
        """Prefill demand left for the engines after the bubbles' share."""
        return max(0.0, self.demand[service] - self.bubbles.get(service, ("", 0.0))[1])

    max_gpus: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def roles(service: InferenceService) -> tuple[EngineRole, ...]:
    """The engine roles the service allows."""
    if service.disaggregated is True:
        return (EngineRole.PREFILL, EngineRole.DECODE)
    if service.disaggregated is False:
        return (EngineRole.COLOCATED,)
    return (EngineRole.PREFILL, EngineRole.DECODE, EngineRole.COLOCATED)


def _shapes(
    service: InferenceService, catalog: Catalog, pool: GpuPool
) -> list[tuple[EngineGroup, float]]:
    """Every engine shape on ``pool`` with its goodput (shapes that meet the SLO only). A
    deeper pipeline is kept where no shallower engine of its role, TP and cap holds the
    weights, or where it serves more requests per GPU (more KV cache per GPU)."""
    model = catalog.model(service.model)
    gpu = catalog.gpus[pool.gpu]
    tps = [t for t in TP_SIZES if t <= pool.gpus_per_node and model.n_heads % t == 0]
    out: list[tuple[EngineGroup, float]] = []
    for role in roles(service):
        for tp in tps:
            for cap in cap_levels(gpu):
                best = 0.0
                for pp in PP_SIZES:
                    if tp * pp > pool.n_gpus:
                        break
                    g = EngineGroup(role=role, pool=pool.id, tp=tp, pp=pp, power_cap_w=cap)
                    em = engine_model(service, model, gpu, pool, g)
                    if em.eng.kv_capacity_tokens <= em.w.resident_context:
                        continue
                    rate = goodput_rps(service, em)
                    if rate / (tp * pp) > best * (1 + 1e-9):
                        out.append((g, rate))
                        best = rate / (tp * pp)
    return out


def _value(
    kind: ObjectiveKind,
    hours: float,
    cluster: Cluster,
    pool: GpuPool,
    g: EngineGroup,
    at_capacity_w: float,
) -> float:
    n = g.tp * g.pp
    if kind is ObjectiveKind.GPUS:
        return float(n)
    if kind not in (ObjectiveKind.ENERGY, ObjectiveKind.CARBON, ObjectiveKind.COST):
        return 0.0
    kwh, carbon, usd = hourly(cluster, {pool.site: at_capacity_w})
    per_h = {
        ObjectiveKind.ENERGY: kwh,
        ObjectiveKind.CARBON: carbon,
        ObjectiveKind.COST: usd + n * pool.usd_per_gpu_hour,
    }[kind]
    return per_h * hours


def service_options(
    services: list[InferenceService],
    cluster: Cluster,
    catalog: Catalog,
    objective: Objective,
) -> ServiceSpace:
    """The options of every service on every pool it may use."""
    space = ServiceSpace()
    memo: dict[tuple[object, ...], list[tuple[EngineGroup, float]]] = {}
    for svc in services:
        space.services.append(svc.id)
        space.by_service[svc.id] = []
        space.demand[svc.id] = svc.arrival_rate_rps
        if svc.max_gpus is not None:
            space.max_gpus[svc.id] = svc.max_gpus
        allowed = (
            None if svc.allowed_gpus is None else {catalog.gpu(g).id for g in svc.allowed_gpus}
        )
        model = catalog.model(svc.model)
        for pool in cluster.pools:
            if svc.allowed_sites is not None and pool.site not in svc.allowed_sites:
                continue
            if allowed is not None and pool.gpu not in allowed:
                continue
            key = (
                demand_key(svc),
                svc.model if isinstance(svc.model, str) else svc.model.model_dump_json(),
                roles(svc),
                pool_class(pool),
            )
            if key not in memo:
                memo[key] = _shapes(svc, catalog, pool)
            site = cluster.site(pool.site)
            gpu = catalog.gpus[pool.gpu]
            for shape, rate in memo[key]:
                g = shape.model_copy(update={"pool": pool.id})
                n = g.tp * g.pp
                em = engine_model(svc, model, gpu, pool, g)
                prov, peak, at_cap = engine_power(gpu, pool, g, em, rate, rate)
                counted = peak if site.power_oversubscription else prov
                upper = min(math.ceil(svc.arrival_rate_rps / rate), pool.n_gpus // n)
                if upper <= 0:
                    continue
                opt = ServiceOption(
                    index=len(space.options),
                    service=svc.id,
                    group=g,
                    site=pool.site,
                    gpus=n,
                    prefill_rps=0.0 if g.role is EngineRole.DECODE else rate,
                    decode_rps=0.0 if g.role is EngineRole.PREFILL else rate,
                    budget_w=counted * site.pue,
                    provisioned_w=prov,
                    peak_w=peak,
                    value=_value(objective.kind, objective.serving_hours, cluster, pool, g, at_cap),
                    upper=upper,
                )
                space.options.append(opt)
                space.by_service[svc.id].append(opt.index)
    space.stats = {"service_options": len(space.options)}
    return space


def configs_from_counts(space: ServiceSpace, counts: dict[int, int]) -> list[ServingConfig]:
    """One serving configuration per service from the engine count of every option."""
    out = []
    for svc in space.services:
        groups = [
            space.options[o].group.model_copy(update={"count": counts[o]})
            for o in space.by_service[svc]
            if counts.get(o, 0) > 0
        ]
        if groups:
            job, rps = space.bubbles.get(svc, (None, 0.0))
            out.append(
                ServingConfig(
                    service=svc, engines=groups, prefill_in_bubbles_rps=rps, bubble_job=job
                )
            )
    return out


def fractional_cover(
    opts: list[ServiceOption], rate: float, cost: Callable[[ServiceOption], float]
) -> float:
    """Least ``cost`` of covering ``rate`` for prefill and decode with fractional engines of
    ``opts``: disaggregated (the cheapest per req/s for each phase) or colocated. A lower
    bound on any integer plan of these options."""
    prefill = [cost(o) / o.prefill_rps for o in opts if o.prefill_rps and not o.decode_rps]
    decode = [cost(o) / o.decode_rps for o in opts if o.decode_rps and not o.prefill_rps]
    both = [cost(o) / o.prefill_rps for o in opts if o.prefill_rps and o.decode_rps]
    split = min(prefill, default=math.inf) + min(decode, default=math.inf)
    return rate * min(split, min(both, default=math.inf))


def services_bound(space: ServiceSpace) -> float:
    """Least total objective term of the services (0 when they have no options, or when the
    objective values engines at 0): a valid optimistic figure for pruning."""
    total = 0.0
    for svc in space.services:
        opts = [space.options[o] for o in space.by_service[svc]]
        if not opts:
            continue
        by_site: dict[str, list[ServiceOption]] = {}
        for o in opts:
            by_site.setdefault(o.site, []).append(o)
        least = min(
            fractional_cover(v, space.demand[svc], lambda o: o.value) for v in by_site.values()
        )
        total += least if math.isfinite(least) else 0.0
    return total
