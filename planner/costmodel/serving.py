"""Serving terms of the cost model: prefill and decode engines, KV-cache capacity, KV
transfer and the queueing that turns them into latency percentiles (after DistServe, Zhong et
al. OSDI 2024).

An **engine** is one model replica on ``tp x pp`` GPUs of one pool (TP inside a node, PP
stages over the node fabric). Its latencies come from the same kernel roofline as training:

* prefill of a prompt of ``L`` tokens: every layer's forward kernels and TP all-reduces
  (:func:`planner.costmodel.inference.prefill_time_s`) plus ``pp - 1`` activation hops; it is
  summarised as ``a + b L + c L^2`` by least squares over the prompt lengths the service sees
  (DistServe Sec. 4.1: linear GEMM work, quadratic attention). A ``pp``-stage engine holds
  ``pp`` prompts in flight, so it serves at ``pp / t(L)``.
* one decode step of ``B`` requests holding ``K`` context tokens in all: per layer the
  weight GEMMs with ``m = B`` rows (memory-bound below the GEMM ridge: the weights are read
  once per step), the KV-cache read of ``K`` tokens, two TP all-reduces of ``B x h``; plus
  the LM head. A ``pp``-stage engine runs ``pp`` batches of ``B / pp`` in flight.
* KV capacity: ``GPU_MEMORY_UTILISATION`` of HBM minus the weights, over the KV bytes of a
  token (vLLM's paged allocation, Kwon et al. SOSP 2023).

Queueing (requests arrive as a Poisson process):

* prefill is FCFS M/G/1: the waiting time's distribution from the Pollaczek-Khinchine
  geometric sum of residual service times, computed numerically (:func:`wait_cdf`); TTFT =
  wait + own prefill, its percentile from that mixture.
* decode is continuous batching (Orca, Yu et al. OSDI 2022): requests in the engine form an
  M/G/infinity system whose occupancy is Poisson with mean ``N = lambda E[O] tau(N)``
  (Little), solved as a fixed point; a resident request holds its prompt plus on average
  ``E[O^2] / (2 E[O])`` generated tokens (size-biased residence). TPOT at percentile ``q``
  is the step time at the ``q`` quantile of the occupancy, plus the KV hand-off and the wait
  for the next step spread over the output tokens.
* colocated engines (prefill and decode on the same GPUs, prefill first as in vLLM): TTFT
  adds the residual decode step; TPOT is stretched by the prefills that arrive during a
  request's decode (a Poisson count at its quantile).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist

import numpy as np

from planner.costmodel import kernels
from planner.costmodel.comm import Link, all_reduce_time, group_link, p2p_time
from planner.costmodel.flops import ffn_matrices, total_params
from planner.costmodel.inference import prefill_time_s
from planner.costmodel.layer import ACT_BYTES
from planner.spec.base import Precision
from planner.spec.cluster import GpuPool
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.workload import LengthDist
from planner.units import GIB

GPU_MEMORY_UTILISATION = 0.9
"""Share of HBM a serving engine may use (vLLM ``gpu_memory_utilization`` default 0.9)."""
WORKSPACE_GIB = 2.0
"""Activation workspace and CUDA graphs of a serving engine (vLLM reserves its profiled
peak activation memory; ~1-3 GiB for 7-70B models at default batch limits)."""
LENGTH_POINTS = 48
"""Quantile points that discretise a length distribution."""


# -- length distributions ---------------------------------------------------------------


def length_samples(dist: LengthDist, points: int = LENGTH_POINTS) -> np.ndarray:
    """Equal-probability points of a token-length distribution: lognormal with the given mean
    and standard deviation (a point mass when ``std == 0``), clipped to ``[min, max]``."""
    if dist.std <= 0:
        return np.full(1, float(np.clip(dist.mean, dist.min, dist.max or math.inf)))
    sigma2 = math.log(1.0 + (dist.std / dist.mean) ** 2)
    mu = math.log(dist.mean) - sigma2 / 2.0
    nd = NormalDist(mu, math.sqrt(sigma2))
    q = [(i + 0.5) / points for i in range(points)]
    out = np.exp(np.array([nd.inv_cdf(p) for p in q]))
    clipped: np.ndarray = np.clip(
        np.round(out), dist.min, dist.max if dist.max is not None else np.inf
    )
    return clipped


def draw_lengths(dist: LengthDist, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random lengths from the same distribution as :func:`length_samples`."""
    if dist.std <= 0:
        return np.full(n, float(np.clip(dist.mean, dist.min, dist.max or math.inf)))
    sigma2 = math.log(1.0 + (dist.std / dist.mean) ** 2)
    mu = math.log(dist.mean) - sigma2 / 2.0
    out = np.round(rng.lognormal(mu, math.sqrt(sigma2), n))
    clipped: np.ndarray = np.clip(out, dist.min, dist.max if dist.max is not None else np.inf)
    return clipped


# -- engines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """One model replica on ``tp x pp`` GPUs of one pool."""

    model: ModelSpec
    gpu: GpuSpec
    tp: int
    pp: int
    tp_link: Link
    pp_link: Link
    precision: Precision = Precision.BF16
    power_cap_w: float | None = None

    @property
    def n_gpus(self) -> int:
        return self.tp * self.pp

    @cached_property
    def clock(self) -> float:
        return kernels.clock_ratio(self.gpu, self.power_cap_w)

    @cached_property
    def weight_bytes_per_gpu(self) -> float:
        """Weights held by one GPU (``tp x pp`` shards; embeddings with the end stages)."""
        elem = kernels.bytes_per_element(self.precision)
        return total_params(self.model) * elem / (self.tp * self.pp)

    @cached_property
    def kv_bytes_per_token(self) -> float:
        """K and V of one token on one GPU (BF16 cache)."""
        m = self.model
        return 2.0 * m.n_layers / self.pp * m.kv_heads * m.dh / self.tp * ACT_BYTES

    @cached_property
    def kv_capacity_tokens(self) -> float:
        """Context tokens the engine's KV cache holds (0 if the weights do not fit)."""
        free = (
            self.gpu.hbm_gib * GIB * GPU_MEMORY_UTILISATION
            - self.weight_bytes_per_gpu
            - WORKSPACE_GIB * GIB
        )
        return max(0.0, free / self.kv_bytes_per_token)

    # prefill ---------------------------------------------------------------------------

    def prefill_s(self, tokens: float) -> float:
        """Latency of prefilling one prompt (cost model, no fit)."""
        t = prefill_time_s(
            self.model,
            self.gpu,
            max(1, round(tokens)),
            self.tp,
            self.tp_link,
            self.precision,
            self.power_cap_w,
        )
        hop = p2p_time(tokens * self.model.hidden_size * ACT_BYTES / self.tp, self.pp_link)
        return t + (self.pp - 1) * hop

    # decode ----------------------------------------------------------------------------

    def _layer_step_s(self, batch: float, context: float, moe: bool) -> float:
        m, g, tp, c = self.model, self.gpu, self.tp, self.clock
        h, prec = m.hidden_size, self.precision
        t = kernels.gemm_time(g, batch, (m.n_heads + 2 * m.kv_heads) * m.dh / tp, h, prec, c)
        t += kernels.gemm_time(g, batch, h, m.n_heads * m.dh / tp, prec, c)
        mats = ffn_matrices(m)
        if moe and m.moe is not None:
            e, k = m.moe.n_experts, m.moe.top_k
            touched = e * (1.0 - (1.0 - k / e) ** batch)  # distinct experts a batch routes to
            rows = batch * k / touched
            f = m.expert_ffn
            expert = kernels.gemm_time(g, rows, f * (mats - 1) / tp, h, prec, c)
            expert += kernels.gemm_time(g, rows, h, f / tp, prec, c)
            t += expert.scaled(touched + m.moe.n_shared_experts)
            t += kernels.gemm_time(g, batch, e, h, prec, c)
        else:
            f = m.ffn_hidden_size
            t += kernels.gemm_time(g, batch, f * (mats - 1) / tp, h, prec, c)
            t += kernels.gemm_time(g, batch, h, f / tp, prec, c)
        # Attention reads every resident token's K and V once per step (memory-bound).
        t += kernels.stream_time(g, context * 2.0 * m.kv_heads / tp * m.dh * ACT_BYTES)
        # Norms, residual adds, activation, rotary: ~6 streams of the B x h activations.
        t += kernels.stream_time(g, 6.0 * 2.0 * batch * h * ACT_BYTES, kernels=6.0)
        comm = 2.0 * all_reduce_time(tp, batch * h * ACT_BYTES, self.tp_link)
        return t.total_s + comm

    def decode_step_s(self, batch: float, context: float) -> float:
        """One decode step of ``batch`` requests that hold ``context`` tokens in all, through
        every layer (the latency of one output token); ``batch`` may be fractional (means)."""
        if batch <= 0:
            return 0.0
        m = self.model
        dense = self._layer_step_s(batch, context, False)
        moe = self._layer_step_s(batch, context, True) if m.moe is not None else dense
        total = sum(moe if m.is_moe_layer(i) else dense for i in range(m.n_layers))
        head = kernels.gemm_time(
            self.gpu, batch, m.vocab_size / self.tp, m.hidden_size, self.precision, self.clock
        )
        hop = p2p_time(batch * m.hidden_size * ACT_BYTES, self.pp_link)
        return total + head.total_s + (self.pp - 1) * hop

    def engine_step_s(self, resident: float, context_per_request: float) -> float:
        """Time per output token when ``resident`` requests share the engine (``pp`` batches
        of ``resident / pp`` in flight)."""
        b = max(resident / self.pp, 1.0)
        return self.decode_step_s(b, b * context_per_request)


def engine(
    model: ModelSpec,
    gpu: GpuSpec,
    pool: GpuPool,
    tp: int,
    pp: int,
    precision: Precision = Precision.BF16,
    power_cap_w: float | None = None,
) -> Engine:
    """An engine on ``pool``: TP inside one node, PP stages over the node fabric."""
    tp_link = group_link(
        gpu,
        tp,
        1,
        pool.gpus_per_node,
        pool.intra_node_bw_gb_s,
        pool.inter_node_bw_gbps,
        pool.inter_node_latency_us,
    )
    nic = (pool.inter_node_bw_gbps or gpu.nic_bw_gbps) * 1e9 / 8.0 * gpu.efficiency.network
    pp_link = Link(
        nic * tp,
        gpu.efficiency.collective_latency_us * 1e-6 + pool.inter_node_latency_us * 1e-6,
        "network",
    )
    return Engine(model, gpu, tp, pp, tp_link, pp_link, precision, power_cap_w)


# -- prefill latency fit -----------------------------------------------------------------


@dataclass(frozen=True)
class PrefillFit:
    """``t(L) = a + b L + c L^2`` seconds (DistServe's prefill latency form)."""

    a: float
    b: float
    c: float
    max_rel_error: float
    """Worst relative error of the fit on the lengths it was fitted on."""

    def __call__(self, tokens: float) -> float:
        return self.a + self.b * tokens + self.c * tokens * tokens

    def times(self, tokens: np.ndarray) -> np.ndarray:
        """Prefill latency of each prompt length."""
        out: np.ndarray = self.a + self.b * tokens + self.c * tokens * tokens
        return out


def fit_prefill(eng: Engine, lengths: np.ndarray) -> PrefillFit:
    """Least-squares fit of the engine's prefill latency over ``lengths`` (weighted
    relatively, so short prompts count as much as long ones)."""
    pts = np.unique(np.concatenate([lengths, [lengths.min(), lengths.max()]]))
    if len(pts) > 12:
        pts = np.unique(np.quantile(pts, np.linspace(0.0, 1.0, 12)).round())
    t = np.array([eng.prefill_s(float(x)) for x in pts])
    if len(pts) < 3:
        # One or two lengths: a line through them (or a constant) is exact there.
        b = (t[-1] - t[0]) / (pts[-1] - pts[0]) if len(pts) == 2 else t[0] / pts[0]
        a = t[0] - b * pts[0]
        return PrefillFit(float(a), float(b), 0.0, 0.0)
    x = np.stack([np.ones_like(pts), pts, pts * pts], axis=1) / t[:, None]
    coef, *_ = np.linalg.lstsq(x, np.ones_like(pts), rcond=None)
    pred = coef[0] + coef[1] * pts + coef[2] * pts * pts
    err = float(np.max(np.abs(pred / t - 1.0)))
    return PrefillFit(float(coef[0]), float(coef[1]), float(coef[2]), err)


# -- queueing ------------------------------------------------------------------------------


GRID = 1024
"""Points of the waiting-time grid of :func:`wait_cdf`."""


def wait_cdf(lam: float, service: np.ndarray, horizon: float) -> tuple[float, np.ndarray]:
    """``(dt, F)``: the FCFS M/G/1 waiting-time CDF ``F[j] = P(W <= j dt)`` on ``[0, horizon]``
    for arrival rate ``lam`` and equally likely service times ``service``.

    Pollaczek-Khinchine: ``W`` is a geometric sum (``P(K = k) = (1 - rho) rho^k``) of
    independent residual service times with density ``P(S > x) / E[S]`` (Kleinrock,
    "Queueing Systems" Vol. 1, Sec. 5.7). The convolutions are computed on the grid and
    truncated at ``horizon`` (all terms are non-negative, so the truncation is exact there)."""
    mean = float(np.mean(service))
    rho = lam * mean
    dt = horizon / GRID
    if rho >= 1.0:
        return dt, np.zeros(GRID + 1)
    x = (np.arange(GRID) + 0.5) * dt
    tail = np.mean(service[None, :] > x[:, None], axis=1)
    # Residual mass of [j dt, (j+1) dt), half at each end of the bin (unbiased), renormalised
    # so the discretisation loses no probability.
    resid = tail / max(float(tail.sum()), 1e-300)
    resid = 0.5 * (np.concatenate([resid, [0.0]]) + np.concatenate([[0.0], resid]))
    pmf = np.zeros(GRID + 1)
    pmf[0] = 1.0 - rho
    term = np.zeros(GRID + 1)
    term[0] = 1.0
    size = 1 << (2 * GRID + 2).bit_length()
    fr = np.fft.rfft(resid, size)
    weight = 1.0 - rho
    while True:
        term = np.fft.irfft(np.fft.rfft(term, size) * fr, size)[: GRID + 1]
        term = np.maximum(term, 0.0)
        weight *= rho
        pmf += weight * term
        if weight * term.sum() < 1e-7:
            break
    return dt, np.minimum(np.cumsum(pmf), 1.0)


def sojourn_quantile(lam: float, service: np.ndarray, q: float, extra: float = 0.0) -> float:
    """Quantile ``q`` (0-1) of ``W + S + extra`` for the FCFS M/G/1 queue of
    :func:`wait_cdf`, ``S`` one of ``service`` (the request's own), independent of ``W``;
    inf if the queue is unstable."""
    mean = float(np.mean(service))
    rho = lam * mean
    if rho >= 1.0:
        return math.inf
    s = service + extra
    horizon = float(np.max(s)) + 8.0 * mean / (1.0 - rho)
    dt, cdf = wait_cdf(lam, service, horizon)

    def below(t: float) -> float:
        j = np.floor((t - s) / dt).astype(int)
        return float(np.mean(np.where(j < 0, 0.0, cdf[np.minimum(j, GRID)])))

    if below(horizon) < q:
        return math.inf
    lo, hi = float(np.min(s)), horizon
    for _ in range(50):
        mid = (lo + hi) / 2.0
        if below(mid) >= q:
            hi = mid
        else:
            lo = mid
    return hi


def poisson_quantile(mean: float, q: float) -> float:
    """Smallest ``k`` with ``P(Poisson(mean) <= k) >= q`` (normal approximation above 200)."""
    if mean <= 0:
        return 0.0
    if mean > 200:
        return mean + NormalDist().inv_cdf(q) * math.sqrt(mean)
    p = cdf = math.exp(-mean)
    k = 0
    while cdf < q:
        k += 1
        p *= mean / k
        cdf += p
    return float(k)


@dataclass(frozen=True)
class Workload:
    """A service's demand as the queueing formulas see it."""

    prompt: np.ndarray
    """Equally likely prompt lengths."""
    output: np.ndarray
    """Equally likely output lengths."""
    q: float
    """SLO percentile as a fraction (0.9 for P90)."""

    @property
    def mean_output(self) -> float:
        return float(np.mean(self.output))

    @property
    def resident_context(self) -> float:
        """Mean context of a request resident in a decode engine: its prompt plus the
        size-biased half of its output, ``E[O^2] / (2 E[O])``."""
        o = self.output
        return float(np.mean(self.prompt) + np.mean(o * o) / (2.0 * np.mean(o)))


def kv_handoff_s(eng_from: Engine, eng_to: Engine, prompt_tokens: float, link: Link) -> float:
    """KV cache of one prompt moved from a prefill to a decode engine: every layer's K and V,
    sent by the prefill engine's ``tp x pp`` GPUs in parallel over ``link`` (DistServe Sec.
    4.3: NVLink or the node fabric)."""
    if eng_from is eng_to:
        return 0.0
    total = eng_from.kv_bytes_per_token * eng_from.tp * eng_from.pp * prompt_tokens
    lanes = min(eng_from.n_gpus, eng_to.n_gpus)
    return total / (link.bw_bytes_s * lanes) + link.latency_s


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of an engine under a request rate (inf when unstable)."""

    rate_rps: float
    ttft_s: float
    tpot_s: float
    utilisation: float
    """Prefill busy share (prefill and colocated engines) or KV-cache share (decode)."""
    resident: float = 0.0
    """Mean requests resident in the decode batch."""


def prefill_latency(eng: Engine, fit: PrefillFit, w: Workload, rate: float) -> Latency:
    """TTFT percentile of a prefill engine serving ``rate`` requests/s (FCFS)."""
    s = fit.times(w.prompt)
    # A pp-stage engine admits a new prompt every t / pp; the prompt itself takes t.
    admit = s / eng.pp
    rho = rate * float(np.mean(admit))
    ttft = sojourn_quantile(rate, admit, w.q, 0.0) + float(np.mean(s - admit))
    return Latency(rate, ttft if rho < 1 else math.inf, 0.0, rho)


def _resident(eng: Engine, w: Workload, rate: float, stretch: float = 1.0) -> float:
    """Fixed point ``N = rate E[O] tau(N) stretch`` of a decode engine (inf if none)."""
    ctx = w.resident_context
    n = rate * w.mean_output * eng.engine_step_s(1.0, ctx) * stretch
    for _ in range(200):
        nxt = rate * w.mean_output * eng.engine_step_s(n, ctx) * stretch
        if abs(nxt - n) <= 1e-6 * max(1.0, n):
            return nxt
        if nxt > 1e7:
            return math.inf
        n = nxt
    return n if abs(nxt - n) <= 1e-3 * max(1.0, n) else math.inf


def decode_latency(eng: Engine, w: Workload, rate: float, handoff_s: float = 0.0) -> Latency:
    """TPOT percentile of a decode engine serving ``rate`` requests/s with continuous
    batching; unstable (inf) when the occupancy's quantile overflows the KV cache."""
    n = _resident(eng, w, rate)
    if not math.isfinite(n):
        return Latency(rate, 0.0, math.inf, math.inf)
    n_q = max(1.0, poisson_quantile(n, w.q))
    ctx = w.resident_context
    kv_share = n_q * ctx / eng.kv_capacity_tokens if eng.kv_capacity_tokens > 0 else math.inf
    step = eng.engine_step_s(n_q, ctx)
    # The first decode step waits for the hand-off and for the running step to end.
    tpot = step + (handoff_s + step / 2.0) / max(1.0, w.mean_output - 1.0)
    return Latency(rate, 0.0, tpot if kv_share <= 1.0 else math.inf, kv_share, n)


def colocated_latency(eng: Engine, fit: PrefillFit, w: Workload, rate: float) -> Latency:
    """TTFT and TPOT percentiles of an engine that runs both phases, prefill first."""
    s = fit.times(w.prompt)
    rho = rate * float(np.mean(s))
    if rho >= 1:
        return Latency(rate, math.inf, math.inf, rho)
    n = _resident(eng, w, rate, 1.0 / (1.0 - rho))
    if not math.isfinite(n):
        return Latency(rate, math.inf, math.inf, rho)
    ctx = w.resident_context
    n_q = max(1.0, poisson_quantile(n, w.q))
    step = eng.engine_step_s(n_q, ctx)
    if n_q * ctx > eng.kv_capacity_tokens:
        return Latency(rate, math.inf, math.inf, rho, n)
    ttft = sojourn_quantile(rate, s, w.q, step / 2.0)
    life = w.mean_output * step / (1.0 - rho)
    k_q = poisson_quantile(rate * life, w.q)
    tpot = step + k_q * float(np.mean(s)) / max(1.0, w.mean_output - 1.0)
    return Latency(rate, ttft, tpot, rho, n)


def max_rate(meets: Callable[[float], bool], hi: float, rel_tol: float = 1e-3) -> float:
    """Largest rate in ``(0, hi]`` at which ``meets(rate)`` holds (it is monotone: more load
    never lowers a latency percentile); 0 if none."""
    if not meets(hi * 1e-6):
        return 0.0
    lo = hi * 1e-6
    if meets(hi):
        return hi
    while hi - lo > rel_tol * hi:
        mid = math.sqrt(lo * hi) if hi / lo > 4 else (lo + hi) / 2.0
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return lo
