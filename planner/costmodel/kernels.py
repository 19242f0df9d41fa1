"""Kernel-level time: GEMMs, attention, element-wise streams, under a power cap.

Roofline with measured efficiencies (Williams et al. 2009, "Roofline"):

    t_gemm = max( 2 m n k / (P * E(k) * c),  bytes / (B_hbm * e_hbm) ) + t_k
    E(k)   = E_max * k / (k + k_half)

``P`` is the dense peak at the precision, ``E_max``/``k_half`` the fitted GEMM efficiency
(``GpuEfficiency``), ``c`` the clock ratio under a power cap (:func:`clock_ratio`), ``t_k``
the per-kernel overhead. Attention kernels follow ``eff = eff_max * B / (B + B_half)`` with
``B`` query blocks of 128 rows (SM occupancy). Memory-bound kernels move ``bytes`` at
``B_hbm * e_hbm`` and do not slow with the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.spec.base import Precision
from planner.spec.hardware import GpuSpec

QUERY_BLOCK = 128
"""Rows of Q per attention thread block (FlashAttention-2/3 and cuDNN fused attention)."""


def bytes_per_element(precision: Precision) -> float:
    """Bytes of one GEMM operand element at a precision."""
    return {Precision.FP32: 4.0, Precision.TF32: 4.0, Precision.FP8: 1.0}.get(precision, 2.0)


@dataclass(frozen=True)
class KernelTime:
    """Time of kernels split by what bounds them (the split drives power and energy)."""

    compute_s: float = 0.0
    memory_s: float = 0.0
    launches: float = 0.0
    """Kernels launched (the host dispatches each one)."""

    @property
    def total_s(self) -> float:
        """Compute-bound plus memory-bound time."""
        return self.compute_s + self.memory_s

    def __add__(self, other: KernelTime) -> KernelTime:
        return KernelTime(
            self.compute_s + other.compute_s,
            self.memory_s + other.memory_s,
            self.launches + other.launches,
        )

    def scaled(self, factor: float) -> KernelTime:
        """Every part multiplied by ``factor``."""
        return KernelTime(self.compute_s * factor, self.memory_s * factor, self.launches * factor)


def clock_ratio(gpu: GpuSpec, power_cap_w: float | None) -> float:
    """Clock under a power cap relative to the uncapped (TDP-limited) clock.

    ``f / f0 = ((c - P_idle) / (P_load - P_idle)) ** (1 / alpha)`` for ``c < P_load``, else 1,
    with ``P_load = load_fraction_of_tdp * TDP`` (dynamic power ~ f^alpha; Zeus, You et al.
    NSDI 2023, observe 7-22% longer time at 60-70% caps, which alpha ~ 3 reproduces).
    """
    if power_cap_w is None:
        return 1.0
    cap = min(max(power_cap_w, gpu.power_cap_min_w), gpu.power_cap_max_w)
    p_load = gpu.power.load_fraction_of_tdp * gpu.tdp_w
    if cap >= p_load:
        return 1.0
    return float(((cap - gpu.idle_w) / (p_load - gpu.idle_w)) ** (1.0 / gpu.power.alpha))


def gemm_efficiency(gpu: GpuSpec, k: float, precision: Precision) -> float:
    """Fraction of dense peak for a GEMM with inner dimension ``k``: ``E_max k/(k+k_half)``."""
    e = gpu.efficiency
    if precision is Precision.FP8 and gpu.supports(Precision.FP8):
        return e.fp8_gemm_max * k / (k + e.fp8_gemm_k_half)
    return e.gemm_max * k / (k + e.gemm_k_half)


def gemm_time(
    gpu: GpuSpec,
    m: float,
    n: float,
    k: float,
    precision: Precision,
    clock: float = 1.0,
    count: float = 1.0,
) -> KernelTime:
    """Time of ``count`` GEMMs ``(m x k) @ (k x n)``; roofline of compute and HBM traffic."""
    if m <= 0 or n <= 0 or k <= 0 or count <= 0:
        return KernelTime()
    flops = 2.0 * m * n * k
    rate = gpu.peak_flops(precision) * gemm_efficiency(gpu, k, precision) * clock
    t_compute = flops / rate
    elem = bytes_per_element(precision)
    t_memory = (elem * (m * k + k * n) + 2.0 * m * n) / hbm_rate(gpu)
    overhead = gpu.efficiency.kernel_overhead_us * 1e-6
    if t_compute >= t_memory:
        return KernelTime(compute_s=count * (t_compute + overhead), launches=1.0)
    return KernelTime(memory_s=count * (t_memory + overhead), launches=1.0)


def hbm_rate(gpu: GpuSpec) -> float:
    """Achievable HBM bandwidth in bytes/s."""
    return gpu.hbm_bw_tb_s * 1e12 * gpu.efficiency.hbm


def stream_time(gpu: GpuSpec, n_bytes: float, kernels: float = 1.0) -> KernelTime:
    """Time of memory-bound kernels moving ``n_bytes`` in total (reads + writes)."""
    if n_bytes <= 0:
        return KernelTime()
    overhead = gpu.efficiency.kernel_overhead_us * 1e-6 * kernels
    return KernelTime(memory_s=n_bytes / hbm_rate(gpu) + overhead, launches=kernels)


def flash_attention_time(
    gpu: GpuSpec,
    flops: float,
    query_rows: float,
    heads: float,
    backward: bool,
    clock: float = 1.0,
) -> KernelTime:
    """Fused attention kernel executing ``flops`` over ``query_rows`` rows of ``heads`` heads.

    ``eff = eff_max * B / (B + B_half)`` with ``B = heads * query_rows / 128`` query blocks;
    ``eff_max`` is ``attention_fwd`` or ``attention_bwd`` (FlashAttention-2, Dao 2023;
    measured cuDNN fused attention on Hopper). The backward executes 2.5x the forward FLOPs
    (recomputes ``QK^T``; FlashAttention-2 Sec. 3.1.2).
    """
    if flops <= 0:
        return KernelTime()
    e = gpu.efficiency
    blocks = heads * query_rows / QUERY_BLOCK
    eff = (
        (e.attention_bwd if backward else e.attention_fwd)
        * blocks
        / (blocks + e.attention_blocks_half)
    )
    rate = gpu.peak_flops(Precision.BF16) * eff * clock
    return KernelTime(compute_s=flops / rate + e.kernel_overhead_us * 1e-6, launches=1.0)
