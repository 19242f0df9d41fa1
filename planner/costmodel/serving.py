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
  (Little), solved as a fixed point, its spread widened by the batch's feedback on the step
  time (:class:`Occupancy`); a resident request holds its prompt plus on average
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
from planner.costmodel.kernels import KernelTime
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
MAX_BATCH = 256
"""Most requests one engine decodes at once (vLLM ``max_num_seqs`` default 256)."""
COVER_TOL = 1e-6
"""Relative tolerance of "capacity covers the demand" (formulations, checks and oracle)."""
PREFILL_POINTS = 16
"""Prompt lengths at which the cost model's prefill time is evaluated and interpolated."""


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
    def n_moe_layers(self) -> int:
        return self.model.n_moe_layers

    @cached_property
    def kv_heads_per_gpu(self) -> float:
        """KV heads one GPU holds: ``kv_heads / tp``, at least one (replicated below)."""
        return max(self.model.kv_heads / self.tp, 1.0)

    @cached_property
    def kv_bytes_per_token(self) -> float:
        """K and V of one token on one GPU (BF16 cache)."""
        m = self.model
        return 2.0 * m.n_layers / self.pp * self.kv_heads_per_gpu * m.dh * ACT_BYTES

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

    def layer_step(self, batch: float, context: float, moe: bool) -> tuple[KernelTime, float]:
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
        t += kernels.stream_time(g, context * 2.0 * self.kv_heads_per_gpu * m.dh * ACT_BYTES)
        # Norms, residual adds, activation, rotary: ~6 streams of the B x h activations.
        t += kernels.stream_time(g, 6.0 * 2.0 * batch * h * ACT_BYTES, kernels=6.0)
        comm = 2.0 * all_reduce_time(tp, batch * h * ACT_BYTES, self.tp_link)
        return t, comm

    def decode_step(self, batch: float, context: float) -> tuple[KernelTime, float]:
        """One decode step of ``batch`` requests that hold ``context`` tokens in all, through
        every layer: (kernel time split compute/memory-bound, communication and hop time).
        ``batch`` may be fractional (means)."""
        if batch <= 0:
            return KernelTime(), 0.0
        m = self.model
        dense = self.layer_step(batch, context, False)
        moe = self.layer_step(batch, context, True) if m.moe is not None else dense
        n_moe = self.n_moe_layers
        kernel = dense[0].scaled(m.n_layers - n_moe) + moe[0].scaled(n_moe)
        comm = dense[1] * (m.n_layers - n_moe) + moe[1] * n_moe
        kernel += kernels.gemm_time(
            self.gpu, batch, m.vocab_size / self.tp, m.hidden_size, self.precision, self.clock
        )
        # Each TP rank sends its 1/tp share of the activations over its own NIC.
        hop = p2p_time(batch * m.hidden_size * ACT_BYTES / self.tp, self.pp_link)
        return kernel, comm + (self.pp - 1) * hop

    def decode_step_s(self, batch: float, context: float) -> float:
        """Latency of one decode step (one output token of every request in the batch)."""
        kernel, other = self.decode_step(batch, context)
        return kernel.total_s + other

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
    """An engine on ``pool``: TP inside one node, PP stages over the node fabric.
    ``pp_link`` is one GPU's NIC: transfers between engines or stages go rank to rank."""
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
        nic,
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


@dataclass(frozen=True)
class PrefillTable:
    """The cost model's prefill latency at ``PREFILL_POINTS`` prompt lengths spanning the
    service's range, interpolated linearly (the latency the queueing formulas and the
    simulator use; within a fraction of a percent of the cost model for a quadratic)."""

    lengths: np.ndarray
    seconds: np.ndarray

    def __call__(self, tokens: float) -> float:
        return float(np.interp(tokens, self.lengths, self.seconds))

    def times(self, tokens: np.ndarray) -> np.ndarray:
        """Prefill latency of each prompt length."""
        out: np.ndarray = np.interp(tokens, self.lengths, self.seconds)
        return out


def prefill_table(eng: Engine, lengths: np.ndarray) -> PrefillTable:
    """The engine's prefill latency over the range of ``lengths``."""
    lo, hi = float(np.min(lengths)), float(np.max(lengths))
    pts = np.unique(np.round(np.linspace(lo, hi, PREFILL_POINTS)))
    return PrefillTable(pts, np.array([eng.prefill_s(float(x)) for x in pts]))


def fit_prefill(table: PrefillTable) -> PrefillFit:
    """Least-squares fit of ``a + b L + c L^2`` to the cost model's prefill latency at the
    table's lengths (weighted relatively, so short prompts count as much as long ones)."""
    pts, t = table.lengths, table.seconds
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


GRID = 2048
"""Points of the waiting-time grid of :func:`wait_cdf`."""


def wait_cdf(lam: float, service: np.ndarray, horizon: float) -> tuple[float, np.ndarray]:
    """``(dt, F)``: the FCFS M/G/1 waiting-time CDF ``F[j] = P(W <= j dt)`` on ``[0, horizon]``
    for arrival rate ``lam`` and equally likely service times ``service``.

    Pollaczek-Khinchine: ``W`` is a geometric sum (``P(K = k) = (1 - rho) rho^k``) of
    independent residual service times with density ``P(S > x) / E[S]`` (Kleinrock,
    "Queueing Systems" Vol. 1, Sec. 5.7). The convolutions are computed on the grid and
    summed in the Fourier domain on a grid padded far beyond ``horizon``."""
    mean = float(np.mean(service))
    rho = lam * mean
    dt = horizon / GRID
    if rho >= 1.0:
        return dt, np.zeros(GRID + 1)
    start = np.arange(GRID) * dt
    # Exact residual mass of [j dt, (j+1) dt): the integral of P(S > x) / E[S] over the bin,
    # put half at each end of the bin (unbiased to first order).
    mass = np.mean(np.clip(service[None, :] - start[:, None], 0.0, dt), axis=1) / mean
    resid = 0.5 * (np.concatenate([mass, [0.0]]) + np.concatenate([[0.0], mass]))
    # Geometric sum in the Fourier domain: (1 - rho) / (1 - rho R). The grid is padded 16x,
    # so only the mass of W beyond 16 horizons (negligible) could wrap around.
    size = 1 << (16 * (GRID + 1)).bit_length()
    spectrum = (1.0 - rho) / (1.0 - rho * np.fft.rfft(resid, size))
    pmf = np.maximum(np.fft.irfft(spectrum, size)[: GRID + 1], 0.0)
    return dt, np.minimum(np.cumsum(pmf), 1.0)


def sojourn_quantile(
    lam: float,
    service: np.ndarray,
    q: float,
    extra: float = 0.0,
    own: np.ndarray | None = None,
) -> float:
    """Quantile ``q`` (0-1) of ``W + T + extra`` for the FCFS M/G/1 queue of
    :func:`wait_cdf` with service times ``service``, where ``T`` is the request's own time
    (``own``, aligned with ``service``; default the service time itself), independent of
    the wait; inf if the queue is unstable."""
    mean = float(np.mean(service))
    rho = lam * mean
    if rho >= 1.0:
        return math.inf
    s = (service if own is None else own) + extra
    wait = lam * float(np.mean(service * service)) / (2.0 * (1.0 - rho))
    horizon = float(np.max(s)) + 10.0 * wait + 4.0 * float(np.max(service))
    for _ in range(8):
        dt, cdf = wait_cdf(lam, service, horizon)

        def below(t: float, dt: float = dt, cdf: np.ndarray = cdf) -> float:
            j = np.floor((t - s) / dt).astype(int)
            return float(np.mean(np.where(j < 0, 0.0, cdf[np.minimum(j, GRID)])))

        if below(horizon) >= q:
            break
        horizon *= 2.0
    else:
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
    return float(poisson_quantiles(np.array([mean]), q)[0])


def poisson_points(mean: float, probs: np.ndarray) -> np.ndarray:
    """Quantiles of one Poisson(``mean``) at each of ``probs`` (normal above 200)."""
    if mean <= 0:
        return np.zeros_like(probs)
    if mean > 200:
        z = np.array([NormalDist().inv_cdf(float(p)) for p in probs])
        out: np.ndarray = mean + z * math.sqrt(mean)
        return out
    top = int(mean + 12.0 * math.sqrt(mean) + 30)
    pmf = math.exp(-mean) * np.concatenate([[1.0], np.cumprod(mean / np.arange(1, top + 1))])
    cdf = np.cumsum(pmf)
    found: np.ndarray = np.searchsorted(cdf, probs - 1e-12).astype(float)
    return found


def poisson_quantiles(means: np.ndarray, q: float) -> np.ndarray:
    """:func:`poisson_quantile` of every mean (vectorised: the pmf recurrence
    ``p_k = p_{k-1} mean / k`` on a shared grid of ``k``; normal approximation above 200)."""
    means = np.asarray(means, dtype=float)
    out = np.zeros_like(means)
    big = means > 200
    out[big] = means[big] + NormalDist().inv_cdf(q) * np.sqrt(means[big])
    small = (means > 0) & ~big
    if np.any(small):
        lam = means[small]
        top = int(np.max(lam) + 12.0 * np.sqrt(np.max(lam)) + 30)
        k = np.arange(1, top + 1)
        ratio = lam[:, None] / k[None, :]
        pmf = np.exp(-lam)[:, None] * np.concatenate(
            [np.ones((lam.size, 1)), np.cumprod(ratio, axis=1)], axis=1
        )
        cdf = np.cumsum(pmf, axis=1)
        out[small] = np.argmax(cdf >= q - 1e-12, axis=1)
    return out


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
    sent rank to rank by the smaller engine's GPUs in parallel, each over its own ``link``
    (one GPU's NIC; DistServe Sec. 4.3: NVLink or the node fabric)."""
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


def prefill_latency(eng: Engine, table: PrefillTable, w: Workload, rate: float) -> Latency:
    """TTFT percentile of a prefill engine serving ``rate`` requests/s (FCFS). A ``pp``-stage
    engine admits a new prompt every ``t / pp``; the prompt itself takes ``t``."""
    s = table.times(w.prompt)
    admit = s / eng.pp
    rho = rate * float(np.mean(admit))
    ttft = sojourn_quantile(rate, admit, w.q, 0.0, own=s)
    return Latency(rate, ttft if rho < 1 else math.inf, 0.0, rho)


@dataclass(frozen=True)
class Occupancy:
    """Requests resident in a decode engine: the fixed point ``N = rate E[O] tau(N) s`` and
    how much its feedback widens the Poisson spread.

    A batch that grows makes every step slower, which keeps requests longer and grows the
    batch: with loop gain ``g = rate E[O] s dtau/dN`` the fluctuations are amplified by
    ``1 / (1 - g)`` in variance (a linearised birth-death process), and the engine has no
    steady state once ``g >= 1``. Quantiles are the Poisson ones spread by that factor."""

    mean: float
    amplification: float

    def points(self, probs: np.ndarray) -> np.ndarray:
        """Occupancy at each probability (at least one request)."""
        base = poisson_points(self.mean, probs)
        spread = self.mean + (base - self.mean) * math.sqrt(self.amplification)
        out: np.ndarray = np.maximum(1.0, spread)
        return out

    def quantile(self, q: float) -> float:
        return float(self.points(np.array([q]))[0])


def occupancy(eng: Engine, w: Workload, rate: float, stretch: float = 1.0) -> Occupancy | None:
    """The decode occupancy at ``rate`` (``stretch``: time per step over the step itself,
    ``1 / (1 - rho)`` when prefills interleave); None if the engine has no steady state."""
    ctx = w.resident_context
    gain = rate * w.mean_output * stretch

    def tau(n: float) -> float:
        return eng.engine_step_s(n, ctx)

    n = gain * tau(1.0)
    for _ in range(200):
        nxt = gain * tau(n)
        if nxt > 1e7:
            return None
        if abs(nxt - n) <= 1e-6 * max(1.0, n):
            n = nxt
            break
        n = nxt
    else:
        return None
    h = max(1e-3, 1e-3 * n)
    loop = gain * (tau(n + h) - tau(max(n - h, 0.0))) / (n + h - max(n - h, 0.0))
    if loop >= 1.0:
        return None
    return Occupancy(n, 1.0 / (1.0 - loop))


OCCUPANCY_POINTS = 24
"""Quantile points of the occupancy in the TPOT mixture."""


def _tpot_quantile(
    eng: Engine, w: Workload, occ: Occupancy, tpot: Callable[[float, np.ndarray], np.ndarray]
) -> float:
    """Quantile ``w.q`` of a request's TPOT over the occupancy and the output length:
    ``tpot(step, outputs)`` gives the TPOT of each output length at one step time."""
    probs = (np.arange(OCCUPANCY_POINTS) + 0.5) / OCCUPANCY_POINTS
    ctx = w.resident_context
    outputs = w.output[w.output > 1]
    if outputs.size == 0:
        return 0.0
    points = occ.points(probs).tolist()
    steps = {n: eng.engine_step_s(n, ctx) for n in set(points)}
    values = np.concatenate([tpot(steps[n], outputs) for n in points])
    return float(np.quantile(values, w.q))


OVERFLOW_SHARE = 0.1
"""Share of the SLO's tail allowed to overflow the KV cache or the batch limit: a full
engine queues new requests behind it, which delays many more than the overflow itself."""


def _batch_fits(eng: Engine, w: Workload, occ: Occupancy) -> tuple[bool, float]:
    """Whether the occupancy, at quantile ``1 - OVERFLOW_SHARE (1 - q)``, fits the KV cache
    and the batch limit, and the KV share it takes."""
    n_q = occ.quantile(1.0 - OVERFLOW_SHARE * (1.0 - w.q))
    kv = n_q * w.resident_context / eng.kv_capacity_tokens if eng.kv_capacity_tokens > 0 else 1e9
    return kv <= 1.0 and n_q <= MAX_BATCH * eng.pp, kv


def decode_latency(eng: Engine, w: Workload, rate: float, handoff_s: float = 0.0) -> Latency:
    """TPOT percentile of a decode engine serving ``rate`` requests/s with continuous
    batching; unstable (inf) without a steady state or when the occupancy overflows the KV
    cache or the batch limit. A request's first decode step also waits for the KV hand-off
    and for the running step to end, spread over its own ``O - 1`` tokens."""
    occ = occupancy(eng, w, rate)
    if occ is None:
        return Latency(rate, 0.0, math.inf, math.inf)
    ok, kv = _batch_fits(eng, w, occ)
    if not ok:
        return Latency(rate, 0.0, math.inf, kv, occ.mean)

    def tpot(step: float, outputs: np.ndarray) -> np.ndarray:
        out: np.ndarray = step + (handoff_s + step / 2.0) / (outputs - 1.0)
        return out

    return Latency(rate, 0.0, _tpot_quantile(eng, w, occ, tpot), kv, occ.mean)


def colocated_latency(eng: Engine, table: PrefillTable, w: Workload, rate: float) -> Latency:
    """TTFT and TPOT percentiles of an engine that runs both phases, prefill first: a prompt
    waits for the running decode step and the prompts ahead of it; a request's decode is
    stalled by the prompts that arrive during it (a Poisson count at its quantile)."""
    s = table.times(w.prompt)
    rho = rate * float(np.mean(s))
    if rho >= 1:
        return Latency(rate, math.inf, math.inf, rho)
    occ = occupancy(eng, w, rate, 1.0 / (1.0 - rho))
    if occ is None:
        return Latency(rate, math.inf, math.inf, rho)
    ok, _ = _batch_fits(eng, w, occ)
    if not ok:
        return Latency(rate, math.inf, math.inf, rho, occ.mean)
    n_q = occ.quantile(w.q)
    ttft = sojourn_quantile(rate, s, w.q, eng.engine_step_s(n_q, w.resident_context) / 2.0)
    mean_s = float(np.mean(s))
    mean_s2 = float(np.mean(s * s))
    z = NormalDist().inv_cdf(w.q)

    def tpot(step: float, outputs: np.ndarray) -> np.ndarray:
        life = (outputs - 1.0) * step / (1.0 - rho)
        # Prefill time that lands in a request's decode: a compound Poisson sum (count at
        # rate x life, sizes from the prompt lengths), at its quantile: the count's quantile
        # times the mean size, or the normal approximation, whichever is larger.
        count = rate * life
        spread = z * np.sqrt(count * mean_s2)
        stalled = np.maximum(poisson_quantiles(count, w.q) * mean_s, count * mean_s + spread)
        out: np.ndarray = step + (stalled + step / 2.0) / (outputs - 1.0)
        return out

    return Latency(rate, ttft, _tpot_quantile(eng, w, occ, tpot), rho, occ.mean)


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
