"""Figures of one inference service under a serving configuration: each engine group's
goodput (the highest request rate at which its SLO percentiles hold), the latencies at the
load it carries, and the service's power, energy, carbon and money per hour.

The load balancer sends each engine a share of the demand proportional to its goodput, so
every engine runs at the same fraction of its capacity (latency percentiles only grow with
load, so a plan whose capacities cover the demand meets the SLO). Prefill and decode engines
hand the KV cache over the node fabric of their site (:func:`serving.kv_handoff_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.costmodel.energy import busy_power_w, footprint, provisioned_power_w
from planner.costmodel.metrics import EngineMetrics, ServingMetrics
from planner.costmodel.serving import (
    COVER_TOL,
    Engine,
    Latency,
    PrefillFit,
    PrefillTable,
    Workload,
    colocated_latency,
    decode_latency,
    engine,
    fit_prefill,
    kv_handoff_s,
    length_samples,
    max_rate,
    poisson_quantile,
    prefill_latency,
    prefill_table,
)
from planner.spec.cluster import Cluster, GpuPool
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import EngineGroup, EngineRole, ServingConfig
from planner.spec.workload import InferenceService


def workload(service: InferenceService) -> Workload:
    """The service's length distributions and SLO percentile."""
    return Workload(
        length_samples(service.prompt_tokens),
        length_samples(service.output_tokens),
        service.slo.percentile / 100.0,
    )


@dataclass(frozen=True)
class EngineModel:
    """An engine with its prefill latency (table and DistServe fit) and the workload it
    serves."""

    eng: Engine
    table: PrefillTable
    fit: PrefillFit
    w: Workload
    role: EngineRole
    handoff_s: float
    """KV hand-off of a mean prompt to a decode engine (decode role only)."""

    def latency(self, rate: float) -> Latency:
        """Latency percentiles at ``rate`` requests/s."""
        if self.role is EngineRole.PREFILL:
            return prefill_latency(self.eng, self.table, self.w, rate)
        if self.role is EngineRole.DECODE:
            return decode_latency(self.eng, self.w, rate, self.handoff_s)
        return colocated_latency(self.eng, self.table, self.w, rate)

    @property
    def mean_prefill_s(self) -> float:
        """Mean prefill latency over the service's prompt lengths."""
        return float(self.table.times(self.w.prompt).mean())

    def ceiling_rps(self) -> float:
        """A rate no engine of this kind can sustain (the search's upper end)."""
        prefill = self.eng.pp / max(self.mean_prefill_s, 1e-9)
        n_cap = self.eng.kv_capacity_tokens / self.w.resident_context
        step = self.eng.engine_step_s(max(n_cap, 1.0), self.w.resident_context)
        decode = max(n_cap, 1.0) / (self.w.mean_output * step)
        if self.role is EngineRole.PREFILL:
            return prefill * 1.01
        if self.role is EngineRole.DECODE:
            return decode * 1.01
        return min(prefill, decode) * 1.01


def engine_model(
    service: InferenceService,
    model: ModelSpec,
    gpu: GpuSpec,
    pool: GpuPool,
    group: EngineGroup,
) -> EngineModel:
    """The engine of ``group`` on ``pool`` serving ``service``."""
    w = workload(service)
    eng = engine(model, gpu, pool, group.tp, group.pp, service.precision, group.power_cap_w)
    table = prefill_table(eng, w.prompt)
    handoff = 0.0
    if group.role is EngineRole.DECODE:
        # The prefill engine is unknown here: a peer of the same shape on another node.
        peer = engine(model, gpu, pool, group.tp, group.pp, service.precision)
        handoff = kv_handoff_s(peer, eng, float(w.prompt.mean()), eng.pp_link)
    return EngineModel(eng, table, fit_prefill(table), w, group.role, handoff)


def meets_slo(service: InferenceService, lat: Latency) -> bool:
    """Whether the latency percentiles meet the service's SLO (a phase the role does not run
    reports 0)."""
    return lat.ttft_s <= service.slo.ttft_ms / 1e3 and lat.tpot_s <= service.slo.tpot_ms / 1e3


def demand_key(service: InferenceService) -> str:
    """What an engine's goodput depends on in a service: lengths, SLO and precision (not its
    id, rate, sites or quotas)."""
    return service.model_dump_json(include={"prompt_tokens", "output_tokens", "slo", "precision"})


_GOODPUT: dict[tuple[str, ...], float] = {}
_GOODPUT_SIZE = 4096


def goodput_rps(service: InferenceService, em: EngineModel) -> float:
    """Highest rate one engine sustains with the SLO percentiles met (0 if the weights do
    not fit or even one request misses the SLO). Memoised on the values that decide it (the
    service, the model, the GPU, the engine's shape and links), so plans that share engine
    shapes do not repeat the search."""
    key = (
        demand_key(service),
        em.eng.model.model_dump_json(),
        em.eng.gpu.model_dump_json(),
        repr((em.eng.tp, em.eng.pp, em.eng.tp_link, em.eng.pp_link, em.eng.power_cap_w)),
        repr((em.role, em.handoff_s)),
    )
    if key not in _GOODPUT:
        if len(_GOODPUT) >= _GOODPUT_SIZE:
            _GOODPUT.pop(next(iter(_GOODPUT)))
        _GOODPUT[key] = _goodput(service, em)
    return _GOODPUT[key]


def _goodput(service: InferenceService, em: EngineModel) -> float:
    if em.eng.kv_capacity_tokens <= em.w.resident_context:
        return 0.0
    return max_rate(lambda r: meets_slo(service, em.latency(r)), em.ceiling_rps())


def _stepping_w(gpu: GpuSpec, group: EngineGroup, em: EngineModel, resident: float) -> float:
    """Board watts of one GPU while the engine decodes ``resident`` requests: its kernels'
    compute-bound and memory-bound time at their powers, communication at idle power."""
    eng = em.eng
    b = max(resident / eng.pp, 1.0)
    kernel, other = eng.decode_step(b, b * em.w.resident_context)
    p_compute, p_memory = busy_power_w(gpu, group.power_cap_w)
    total = kernel.total_s + other
    if total <= 0:
        return gpu.idle_w
    return (kernel.compute_s * p_compute + kernel.memory_s * p_memory + other * gpu.idle_w) / total


def engine_power(
    gpu: GpuSpec, pool: GpuPool, group: EngineGroup, em: EngineModel, load: float, goodput: float
) -> tuple[float, float, float]:
    """(provisioned, expected peak, average) IT watts of one engine (GPUs plus node share):
    provisioned at its cap; the peak at its goodput (prefill at compute-bound power; decode
    at the power of its steps with the occupancy quantile resident: memory-bound weight reads
    when small, compute-bound GEMMs when large (POLCA, Patel et al. ASPLOS 2024)); the
    average at ``load``, idle between prompts and when no request is resident."""
    n = group.tp * group.pp
    node = pool.node_idle_power_w / pool.gpus_per_node
    prov = n * provisioned_power_w(gpu, pool, group.power_cap_w)
    p_compute, _ = busy_power_w(gpu, group.power_cap_w)
    role = group.role
    peak = avg = gpu.idle_w
    busy = min(1.0, load * em.mean_prefill_s / group.pp) if role is not EngineRole.DECODE else 0.0
    if role is not EngineRole.PREFILL:
        at_peak = em.latency(goodput).resident if goodput > 0 else 0.0
        n_q = poisson_quantile(at_peak, em.w.q) if at_peak > 0 else 0.0
        decode_peak = _stepping_w(gpu, group, em, max(n_q, 1.0))
        mean = em.latency(load).resident if load > 0 else 0.0
        stepping = (1.0 - math.exp(-mean)) if mean > 0 else 0.0
        decode_avg = stepping * _stepping_w(gpu, group, em, mean) + (1 - stepping) * gpu.idle_w
        peak, avg = decode_peak, decode_avg
    if role is not EngineRole.DECODE:
        peak = max(peak, p_compute)
        avg = busy * p_compute + (1.0 - busy) * avg
    return prov, n * (peak + node), n * (avg + node)


def capacity_power_w(
    gpu: GpuSpec, pool: GpuPool, group: EngineGroup, em: EngineModel, goodput: float
) -> float:
    """Average IT watts of one engine carrying its goodput (what the objectives count)."""
    return engine_power(gpu, pool, group, em, goodput, goodput)[2]


def hourly(cluster: Cluster, watts_by_site: dict[str, float]) -> tuple[float, float, float]:
    """(facility kWh, kg CO2, electricity USD) of one hour at ``watts_by_site`` IT power."""
    kwh = carbon = usd = 0.0
    for site_id, w in watts_by_site.items():
        fp = footprint(cluster.site(site_id), w * 3600.0)
        kwh += fp.facility_kwh
        carbon += fp.carbon_kg
        usd += fp.electricity_usd
    return kwh, carbon, usd


def evaluate_serving(
    service: InferenceService,
    model: ModelSpec,
    cfg: ServingConfig,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
) -> ServingMetrics:
    """Every figure of ``service`` served by the engines of ``cfg``."""
    warnings: list[str] = []
    groups: list[tuple[EngineGroup, GpuPool, GpuSpec, EngineModel, float]] = []
    for g in cfg.engines:
        pool = cluster.pool(g.pool)
        gpu = gpus[pool.gpu]
        if g.tp > pool.gpus_per_node:
            warnings.append(f"{g.role} engine on {g.pool}: TP {g.tp} spans nodes")
        if model.n_heads % g.tp:
            warnings.append(f"{g.role} engine: TP {g.tp} does not divide {model.n_heads} heads")
        em = engine_model(service, model, gpu, pool, g)
        groups.append((g, pool, gpu, em, goodput_rps(service, em)))
    sites = sorted({pool.site for _, pool, *_ in groups})
    if len(sites) > 1:
        warnings.append(f"engines span sites {sites}; a service runs in one site")
    prefill_cap = sum(g.count * cap for g, *_, cap in groups if g.role is not EngineRole.DECODE)
    decode_cap = sum(g.count * cap for g, *_, cap in groups if g.role is not EngineRole.PREFILL)
    rate = service.arrival_rate_rps
    bubbles = cfg.prefill_in_bubbles_rps
    out: list[EngineMetrics] = []
    prov = peak = avg = 0.0
    at_cap: dict[str, float] = {}
    at_demand: dict[str, float] = {}
    for g, pool, gpu, em, cap in groups:
        served = decode_cap if g.role is EngineRole.DECODE else prefill_cap
        # Prefill engines share what the bubbles leave; a colocated engine is loaded at its
        # share of the whole rate (its decode share; conservative for its prefill).
        demand = max(0.0, rate - bubbles) if g.role is EngineRole.PREFILL else rate
        load = demand * cap / served if served > 0 and cap > 0 else 0.0
        lat = em.latency(load) if load > 0 else em.latency(1e-9)
        p, k, a = engine_power(gpu, pool, g, em, load, cap)
        a_cap = capacity_power_w(gpu, pool, g, em, cap)
        prov += g.count * p
        peak += g.count * k
        avg += g.count * a
        at_cap[pool.site] = at_cap.get(pool.site, 0.0) + g.count * a_cap
        at_demand[pool.site] = at_demand.get(pool.site, 0.0) + g.count * a
        out.append(
            EngineMetrics(
                role=g.role.value,
                pool=g.pool,
                site=pool.site,
                gpu=gpu.id,
                tp=g.tp,
                pp=g.pp,
                count=g.count,
                power_cap_w=g.power_cap_w,
                goodput_rps=cap,
                load_rps=load,
                ttft_s=lat.ttft_s,
                tpot_s=lat.tpot_s,
                utilisation=lat.utilisation,
                resident_requests=lat.resident,
                kv_capacity_tokens=em.eng.kv_capacity_tokens,
                prefill_fit=(em.fit.a, em.fit.b, em.fit.c),
                provisioned_w=p,
                peak_w=k,
                average_w=a,
                capacity_w=a_cap,
            )
        )
    goodput = min(prefill_cap + bubbles, decode_cap)
    if goodput < rate * (1 - COVER_TOL):
        warnings.append(
            f"capacity {goodput:.3f} req/s under the SLO is below the demand {rate:g} req/s"
        )
    kwh, carbon, usd = hourly(cluster, at_cap)
    kwh_demand = hourly(cluster, at_demand)[0]
    rental = sum(g.n_gpus * pool.usd_per_gpu_hour for g, pool, *_ in groups)
    n_gpus = cfg.n_gpus
    return ServingMetrics(
        service=service.id,
        model=model.id,
        n_gpus=n_gpus,
        site=sites[0] if len(sites) == 1 else ",".join(sites),
        rate_rps=rate,
        prefill_capacity_rps=prefill_cap + bubbles,
        bubble_prefill_rps=bubbles,
        decode_capacity_rps=decode_cap,
        goodput_rps=goodput,
        goodput_per_gpu=goodput / n_gpus if n_gpus else 0.0,
        ttft_s=max((e.ttft_s for e in out if e.role != "decode" and e.count), default=0.0),
        tpot_s=max((e.tpot_s for e in out if e.role != "prefill" and e.count), default=0.0),
        engines=out,
        provisioned_w=prov,
        peak_w=peak,
        average_w=avg,
        energy_kwh_per_h=kwh,
        energy_kwh_per_h_at_demand=kwh_demand,
        carbon_kg_per_h=carbon,
        cost_usd_per_h=usd + rental,
        warnings=warnings,
    )
