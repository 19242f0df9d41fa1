"""Prefill-as-a-service in training pipeline bubbles (after BubbleTea, Palak et al. 2024).

From the replayed iteration (``planner.simulate``) each pipeline device's idle windows are
known. An eligible inference service (``prefill_in_bubbles: true``) runs whole prefills in
them: its weights, sharded over the stage's TP group, plus one prompt's KV cache must fit in
the memory training leaves free on that GPU; every prefill must end ``guard`` seconds before
the device's next training operation starts, so training is never delayed (checked by
:func:`prefills_fit`). Every DP replica of a stage sees the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.catalog import Catalog
from planner.costmodel.inference import (
    kv_cache_bytes_per_gpu,
    prefill_time_s,
    weights_bytes_per_gpu,
)
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import resolve_placement
from planner.simulate import Timeline
from planner.spec.cluster import Cluster
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import Problem
from planner.spec.workload import InferenceService
from planner.units import GIB

GUARD_S = 0.002
"""Margin between a prefill's end and the next training operation (kernel launch jitter)."""


@dataclass(frozen=True)
class Slot:
    """One prefill placed in a bubble of ``device``."""

    device: int
    start: float
    end: float


@dataclass
class Harvest:
    """What the bubbles of one iteration give one service."""

    service: str
    prefill_s: float
    """Prefill time of one prompt on the fastest eligible stage's GPUs."""
    eligible_devices: list[int]
    slots: list[Slot] = field(default_factory=list)
    iteration_s: float = 0.0
    replicas: int = 1
    """Identical pipelines (DP replicas) whose bubbles all host prefills."""
    utilisation_without: float = 0.0
    utilisation_with: float = 0.0
    capacity_rps: float = 0.0
    demand_covered: float = 0.0
    ttft_wait_s: dict[str, float] = field(default_factory=dict)
    """Added time to first token, waiting for a bubble: P50, P90, P99."""

    def to_json(self) -> dict[str, object]:
        return {
            "service": self.service,
            "prefill_s": self.prefill_s,
            "eligible_devices": self.eligible_devices,
            "prefills_per_iteration": len(self.slots) * self.replicas,
            "capacity_rps": self.capacity_rps,
            "demand_covered": self.demand_covered,
            "utilisation_without": self.utilisation_without,
            "utilisation_with": self.utilisation_with,
            "ttft_wait_s": self.ttft_wait_s,
        }


def idle_windows(timeline: Timeline, device: int) -> list[tuple[float, float]]:
    """Gaps between a device's training operations within the pipeline phase."""
    out, t = [], 0.0
    for _, start, end in sorted(timeline.ops[device], key=lambda x: x[1]):
        if start > t:
            out.append((t, start))
        t = max(t, end)
    if timeline.pipeline_s > t:
        out.append((t, timeline.pipeline_s))
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


def harvest(
    cfg: TrainingConfig,
    metrics: TrainingMetrics,
    timeline: Timeline,
    service: InferenceService,
    model: ModelSpec,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
    guard_s: float = GUARD_S,
) -> Harvest:
    """Place the service's prefills (at its mean prompt length) into the iteration's bubbles."""
    pl = resolve_placement(cfg, cluster, gpus)
    prompt = round(service.prompt_tokens.mean)
    tp = cfg.tp
    need = weights_bytes_per_gpu(model, tp) + kv_cache_bytes_per_gpu(model, prompt, tp)
    times: dict[int, float] = {}
    for d, dm in enumerate(metrics.devices):
        spare = (dm.memory.capacity - dm.memory.total) * GIB
        if service.allowed_sites is not None and dm.site not in service.allowed_sites:
            continue
        if spare >= need:
            link = pl.intra_stage_links(d).tp
            times[d] = prefill_time_s(model, pl.gpu_of(d), prompt, tp, link, service.precision)
    t_ref = min(times.values(), default=0.0)
    h = Harvest(service.id, t_ref, sorted(times), iteration_s=timeline.iteration_s, replicas=cfg.dp)
    for d, t1 in times.items():
        # The window after a device's last operation is where its gradient reduction
        # overlaps (``iteration._dp_exposed``): left to training.
        last = max((e for _, _, e in timeline.ops[d]), default=0.0)
        for start, end in (w for w in idle_windows(timeline, d) if w[0] < last):
            t = start
            while t + t1 + guard_s <= end:
                h.slots.append(Slot(d, t, t + t1))
                t += t1
    busy = [timeline.busy_s(d) for d in range(cfg.pp)]
    it = timeline.iteration_s
    h.utilisation_without = sum(busy) / (cfg.pp * it)
    extra = {d: 0.0 for d in range(cfg.pp)}
    for s in h.slots:
        extra[s.device] += s.end - s.start
    h.utilisation_with = sum(b + extra[d] for d, b in enumerate(busy)) / (cfg.pp * it)
    h.capacity_rps = len(h.slots) * cfg.dp / it
    h.demand_covered = min(1.0, h.capacity_rps / service.arrival_rate_rps)
    h.ttft_wait_s = _waits(h, it)
    return h


def slot_waits(h: Harvest, iteration_s: float) -> list[float]:
    """Wait from arrival to the next prefill slot, for arrivals spread evenly over an
    iteration (iterations repeat; demand below capacity)."""
    starts = sorted(s.start for s in h.slots)
    if not starts:
        return []
    waits = []
    for k in range(2000):
        t = iteration_s * k / 2000
        nxt = next((s for s in starts if s >= t), starts[0] + iteration_s)
        waits.append(nxt - t)
    return waits


def _waits(h: Harvest, iteration_s: float) -> dict[str, float]:
    waits = slot_waits(h, iteration_s)
    return {f"p{q}": _percentile(waits, q) for q in (50, 90, 99)} if waits else {}


BUBBLE_LOAD = 0.8
"""Share of the harvested prefill capacity a plan may credit to a service: arrivals are not
evenly spread, so slots near full would queue (the wait figures assume demand below
capacity)."""


@dataclass(frozen=True)
class Credit:
    """Prefill demand a service may send to one training job's bubbles."""

    service: str
    job: str
    rps: float
    harvest: Harvest
    ttft_s: float
    """TTFT at the service's percentile for a request served in a bubble (wait + prefill)."""


def bubble_credit(
    problem: Problem, plan: Plan, catalog: Catalog, service: InferenceService
) -> Credit | None:
    """The best prefill credit for ``service`` from the bubbles of ``plan``'s training jobs:
    each job's iteration replayed (:mod:`planner.simulate`), its bubbles filled with the
    service's prefills (:func:`harvest`), kept if a bubble-served request meets the TTFT
    target at the service's percentile; the credit is ``BUBBLE_LOAD`` of the capacity,
    at most the demand. None if no job qualifies."""
    from planner.costmodel.training import evaluate_training
    from planner.simulate import simulate

    if not service.prefill_in_bubbles:
        return None
    model = catalog.model(service.model)
    best: Credit | None = None
    for cfg in plan.training:
        job = problem.workloads.training_job(cfg.job)
        m = evaluate_training(job, catalog.model(job.model), cfg, problem.cluster, catalog.gpus)
        tl = simulate(cfg, m)
        h = harvest(cfg, m, tl, service, model, problem.cluster, catalog.gpus)
        waits = slot_waits(h, tl.iteration_s)
        if not waits or h.capacity_rps <= 0:
            continue
        ttft = _percentile(waits, service.slo.percentile) + h.prefill_s
        if ttft > service.slo.ttft_ms / 1e3:
            continue
        rps = min(BUBBLE_LOAD * h.capacity_rps, service.arrival_rate_rps)
        if best is None or rps > best.rps:
            best = Credit(service.id, cfg.job, rps, h, ttft)
    return best


def prefills_fit(h: Harvest, timeline: Timeline, guard_s: float = GUARD_S) -> bool:
    """True if every prefill ends ``guard_s`` before its device's next training operation and
    overlaps none: the replayed iteration is then unchanged by the prefills."""
    for s in h.slots:
        for _, start, end in timeline.ops[s.device]:
            if s.start < end and start < s.end + guard_s:
                return False
    return True
