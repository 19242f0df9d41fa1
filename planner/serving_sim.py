"""Request-level simulation of a serving configuration: the independent check of the
analytic goodput (:mod:`planner.costmodel.serving`).

Requests arrive as a Poisson process with prompt and output lengths drawn from the service's
distributions. Every engine is a small state machine on one event heap:

* a prefill engine runs prompts FCFS; a ``pp``-stage engine admits a new prompt every
  ``t / pp`` and finishes each ``t`` after its start (``t`` from the engine's prefill fit);
* the dispatcher sends a prompt to the prefill-capable engine that would finish it first, and
  its KV cache (after the hand-off time) to the decode-capable engine with the most free KV
  cache (the same engine for colocated ones);
* a decode engine runs continuous batching (Orca): back-to-back steps over every resident
  request, each step as long as the cost model's decode step for that batch and context;
  requests join at step boundaries while the resident context plus their prompt fits the KV
  cache (paged allocation, vLLM; growth past the capacity is not preempted, so the simulator
  is optimistic only where the analytic model already refuses the rate), and leave after
  their last token;
* a colocated engine runs a waiting prefill before its next decode step (prefill first, as
  vLLM's default scheduler).

TTFT is prefill end minus arrival; TPOT is (last token - first token) / (output - 1). The
first ``warmup`` share of requests is discarded. A request attains the SLO when both its TTFT
and its TPOT meet the targets.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from planner.catalog import Catalog
from planner.costmodel.service import EngineModel, engine_model
from planner.costmodel.serving import MAX_BATCH, draw_lengths, kv_handoff_s
from planner.spec.cluster import Cluster
from planner.spec.plan import EngineRole, ServingConfig
from planner.spec.workload import InferenceService

CONTEXT_BUCKET = 64
"""Context tokens are rounded to this many when looking up a decode step's time."""


@dataclass
class _Req:
    arrival: float
    prompt: int
    output: int
    first: float = math.nan
    last: float = math.nan


@dataclass
class _Engine:
    em: EngineModel
    role: EngineRole
    prefill_free: float = 0.0
    """When the engine can admit its next prompt (prefill and colocated)."""
    queue: list[tuple[_Req, float]] = field(default_factory=list)
    """Prompts waiting (colocated) with their prefill time."""
    waiting: list[_Req] = field(default_factory=list)
    """Requests handed over but not yet admitted to the batch (KV full or mid-step)."""
    batch: dict[int, _Req] = field(default_factory=dict)
    left: dict[int, int] = field(default_factory=dict)
    """Steps a resident request still needs."""
    context: float = 0.0
    """KV tokens the resident requests hold."""
    stepping: bool = False
    step_cache: dict[tuple[int, int], float] = field(default_factory=dict)

    def step_s(self) -> float:
        b = len(self.batch)
        ctx = int(self.context // CONTEXT_BUCKET)
        key = (b, ctx)
        if key not in self.step_cache:
            per = (ctx + 0.5) * CONTEXT_BUCKET / max(b, 1)
            self.step_cache[key] = self.em.eng.engine_step_s(b, per)
        return self.step_cache[key]


@dataclass(frozen=True)
class SimResult:
    """Latency percentiles and SLO attainment of one simulated run."""

    rate_rps: float
    requests: int
    ttft_s: dict[str, float]
    tpot_s: dict[str, float]
    attainment: float
    """Share of requests meeting both the TTFT and the TPOT target."""
    ttft_attainment: float
    tpot_attainment: float

    def to_json(self) -> dict[str, object]:
        return {
            "rate_rps": self.rate_rps,
            "requests": self.requests,
            "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s,
            "attainment": self.attainment,
            "ttft_attainment": self.ttft_attainment,
            "tpot_attainment": self.tpot_attainment,
        }


def simulate_service(
    service: InferenceService,
    cfg: ServingConfig,
    cluster: Cluster,
    catalog: Catalog,
    rate_rps: float | None = None,
    requests: int = 4000,
    seed: int = 0,
    warmup: float = 0.1,
    bubble_ttft_s: list[float] | None = None,
) -> SimResult:
    """Replay ``requests`` Poisson arrivals at ``rate_rps`` (default: the service's rate).
    With a bubble credit (``cfg.prefill_in_bubbles_rps``) that share of the arrivals is
    prefilled in training bubbles: its TTFT is drawn from ``bubble_ttft_s`` (slot wait plus
    prefill, from :func:`planner.bubbles.slot_waits`), then it joins a decode engine."""
    model = catalog.model(service.model)
    rate = service.arrival_rate_rps if rate_rps is None else rate_rps
    engines: list[_Engine] = []
    for g in cfg.engines:
        pool = cluster.pool(g.pool)
        em = engine_model(service, model, catalog.gpus[pool.gpu], pool, g)
        engines.extend(_Engine(em, g.role) for _ in range(g.count))
    prefillers = [e for e in engines if e.role is not EngineRole.DECODE]
    decoders = [e for e in engines if e.role is not EngineRole.PREFILL]
    share = min(1.0, cfg.prefill_in_bubbles_rps / rate) if bubble_ttft_s else 0.0
    if (not prefillers and share < 1.0) or not decoders:
        raise ValueError(
            f"{cfg.service}: the engines need at least one prefill-capable and one "
            "decode-capable engine (prefill + decode, or colocated)"
        )
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, requests)
    prompts = draw_lengths(service.prompt_tokens, requests, rng).astype(int)
    outputs = np.maximum(draw_lengths(service.output_tokens, requests, rng).astype(int), 1)
    reqs = [
        _Req(float(t), int(p), int(o))
        for t, p, o in zip(np.cumsum(gaps), prompts, outputs, strict=True)
    ]
    heap: list[tuple[float, int, str, int, object]] = []
    seq = 0

    def push(t: float, kind: str, engine: int, payload: object = None) -> None:
        nonlocal seq
        heapq.heappush(heap, (t, seq, kind, engine, payload))
        seq += 1

    index = {id(e): i for i, e in enumerate(engines)}
    for r in reqs:
        push(r.arrival, "arrive", -1, r)

    def start_colocated(e: _Engine, now: float) -> None:
        """Start the next thing on an idle colocated engine: a prefill, else a decode step."""
        if e.stepping:
            return
        if e.queue:
            r, t = e.queue.pop(0)
            e.stepping = True
            push(now + t, "prefill_done", index[id(e)], r)
            return
        admit(e)
        if e.batch:
            e.stepping = True
            push(now + e.step_s(), "step_done", index[id(e)])

    def admit(e: _Engine) -> None:
        cap = e.em.eng.kv_capacity_tokens
        while e.waiting:
            r = e.waiting[0]
            full = len(e.batch) >= MAX_BATCH * e.em.eng.pp
            if e.batch and (full or e.context + r.prompt > cap):
                break
            e.waiting.pop(0)
            e.batch[id(r)] = r
            e.left[id(r)] = max(r.output - 1, 0)
            e.context += r.prompt
            if e.left[id(r)] == 0:
                _leave(e, r)

    def _leave(e: _Engine, r: _Req) -> None:
        del e.batch[id(r)]
        del e.left[id(r)]
        e.context -= r.prompt + (r.output - 1)

    def handoff(r: _Req, now: float, src: _Engine) -> None:
        if src.role is EngineRole.COLOCATED:
            src.waiting.append(r)
            return
        dst = max(decoders, key=lambda d: d.em.eng.kv_capacity_tokens - d.context)
        delay = kv_handoff_s(src.em.eng, dst.em.eng, r.prompt, dst.em.eng.pp_link)
        push(now + delay, "join", index[id(dst)], r)

    while heap:
        now, _, kind, ei, payload = heapq.heappop(heap)
        if kind == "arrive" and bubble_ttft_s and rng.random() < share:
            assert isinstance(payload, _Req)
            # Prefilled in a training bubble, then handed to the emptiest decode engine.
            first = now + float(bubble_ttft_s[int(rng.integers(len(bubble_ttft_s)))])
            payload.first = first
            dst = max(decoders, key=lambda d: d.em.eng.kv_capacity_tokens - d.context)
            if payload.output <= 1:
                payload.last = first
            else:
                push(first + dst.em.handoff_s, "join", index[id(dst)], payload)
        elif kind == "arrive":
            assert isinstance(payload, _Req)
            r = payload
            best, best_end, best_t = prefillers[0], math.inf, 0.0
            for e in prefillers:
                t = e.em.table(r.prompt)
                if e.role is EngineRole.COLOCATED:
                    backlog = sum(x for _, x in e.queue)
                    end = now + backlog + t + (e.step_s() if e.stepping else 0.0)
                else:
                    end = max(now, e.prefill_free) + t
                if end < best_end:
                    best, best_end, best_t = e, end, t
            if best.role is EngineRole.COLOCATED:
                best.queue.append((r, best_t))
                start_colocated(best, now)
            else:
                start = max(now, best.prefill_free)
                best.prefill_free = start + best_t / best.em.eng.pp
                push(start + best_t, "prefill_done", index[id(best)], r)
        elif kind == "prefill_done":
            assert isinstance(payload, _Req)
            r = payload
            e = engines[ei]
            r.first = now
            if r.output <= 1:
                r.last = now
            else:
                handoff(r, now, e)
            if e.role is EngineRole.COLOCATED:
                e.stepping = False
                start_colocated(e, now)
        elif kind == "join":
            assert isinstance(payload, _Req)
            r = payload
            e = engines[ei]
            e.waiting.append(r)
            if e.role is EngineRole.COLOCATED:
                start_colocated(e, now)
            elif not e.stepping:
                admit(e)
                if e.batch:
                    e.stepping = True
                    push(now + e.step_s(), "step_done", ei)
        elif kind == "step_done":
            e = engines[ei]
            e.stepping = False
            e.context += len(e.batch)
            for key in list(e.batch):
                e.left[key] -= 1
                if e.left[key] <= 0:
                    r = e.batch[key]
                    r.last = now
                    _leave(e, r)
            if e.role is EngineRole.COLOCATED:
                start_colocated(e, now)
            else:
                admit(e)
                if e.batch:
                    e.stepping = True
                    push(now + e.step_s(), "step_done", ei)
    return _summary(service, reqs[int(warmup * len(reqs)) :], rate)


def _summary(service: InferenceService, reqs: list[_Req], rate: float) -> SimResult:
    ttft = np.array([r.first - r.arrival for r in reqs])
    tpot = np.array([(r.last - r.first) / (r.output - 1) if r.output > 1 else 0.0 for r in reqs])
    t_ok = ttft <= service.slo.ttft_ms / 1e3
    p_ok = tpot <= service.slo.tpot_ms / 1e3
    pct = {f"p{q}": float(np.percentile(ttft, q)) for q in (50, 90, 99)}
    pct_tpot = {f"p{q}": float(np.percentile(tpot, q)) for q in (50, 90, 99)}
    return SimResult(
        rate_rps=rate,
        requests=len(reqs),
        ttft_s=pct,
        tpot_s=pct_tpot,
        attainment=float(np.mean(t_ok & p_ok)),
        ttft_attainment=float(np.mean(t_ok)),
        tpot_attainment=float(np.mean(p_ok)),
    )


def simulated_goodput(
    service: InferenceService,
    cfg: ServingConfig,
    cluster: Cluster,
    catalog: Catalog,
    hi_rps: float,
    requests: int = 3000,
    seed: int = 0,
    rel_tol: float = 0.02,
) -> float:
    """Highest rate (bisection up to ``hi_rps``) at which the simulated TTFT and TPOT
    percentiles both meet the SLO (the simulator's goodput of ``cfg``)."""
    q = service.slo.percentile / 100.0

    def ok(rate: float) -> bool:
        res = simulate_service(service, cfg, cluster, catalog, rate, requests, seed)
        return res.ttft_attainment >= q and res.tpot_attainment >= q

    lo, hi = 0.0, hi_rps
    if ok(hi):
        return hi
    while hi - lo > rel_tol * hi:
        mid = (lo + hi) / 2.0
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo
