"""Kernel-time terms against hand-derived values."""

from __future__ import annotations

import pytest

from planner.costmodel import comm, kernels
from planner.costmodel.pipeline import bubble_fraction, pipeline_time
from planner.spec.base import Precision


def test_large_gemm_is_compute_bound(catalog):
    g = catalog.gpu("h100")
    e = g.efficiency
    m = n = k = 8192
    t = kernels.gemm_time(g, m, n, k, Precision.BF16)
    rate = 989.5e12 * e.gemm_max * k / (k + e.gemm_k_half)
    assert t.memory_s == 0
    assert t.compute_s == pytest.approx(2 * m * n * k / rate + e.kernel_overhead_us * 1e-6)


def test_skinny_gemm_is_memory_bound(catalog):
    g = catalog.gpu("h100")
    t = kernels.gemm_time(g, 8, 16384, 16384, Precision.BF16)
    assert t.compute_s == 0 and t.memory_s > 0
    bytes_moved = 2 * (8 * 16384 + 16384 * 16384) + 2 * 8 * 16384
    assert t.memory_s == pytest.approx(
        bytes_moved / (3.35e12 * g.efficiency.hbm) + g.efficiency.kernel_overhead_us * 1e-6
    )


def test_fp8_faster_than_bf16_on_hopper_not_on_ampere(catalog):
    h100, a100 = catalog.gpu("h100"), catalog.gpu("a100")
    shape = (8192, 8192, 8192)
    assert (
        kernels.gemm_time(h100, *shape, Precision.FP8).total_s
        < 0.7 * kernels.gemm_time(h100, *shape, Precision.BF16).total_s
    )
    assert kernels.gemm_time(a100, *shape, Precision.FP8).total_s == pytest.approx(
        kernels.gemm_time(a100, *shape, Precision.BF16).total_s
    )


def test_clock_ratio_under_caps(catalog):
    g = catalog.gpu("h100")
    assert kernels.clock_ratio(g, None) == 1.0
    assert kernels.clock_ratio(g, 700) == 1.0
    expected = ((455 - g.idle_w) / (700 - g.idle_w)) ** (1 / g.power.alpha)
    assert kernels.clock_ratio(g, 455) == pytest.approx(expected)
    # Zeus: a 60-70% cap costs 7-22% time on compute-bound work.
    assert 1.07 <= 1 / kernels.clock_ratio(g, 0.65 * 700) <= 1.22
    caps = [200, 300, 400, 500, 600, 700]
    ratios = [kernels.clock_ratio(g, c) for c in caps]
    assert ratios == sorted(ratios)


def test_collective_formulas():
    link = comm.Link(bw_bytes_s=100e9, latency_s=1e-5)
    size = 1e9
    assert comm.all_reduce_time(8, size, link) == pytest.approx(2 * 7 / 8 * size / 100e9 + 14e-5)
    assert comm.reduce_scatter_time(8, size, link) == pytest.approx(7 / 8 * size / 100e9 + 7e-5)
    assert comm.all_reduce_time(1, size, link) == 0.0
    assert comm.p2p_time(size, link) == pytest.approx(size / 100e9 + 1e-5)


def test_group_bandwidth_inside_and_across_nodes(catalog):
    g = catalog.gpu("h100")
    tp8 = comm.group_link(g, 8, 1, 8)
    assert tp8.kind == "nvlink"
    assert tp8.bw_bytes_s == pytest.approx(450e9 * g.efficiency.nvlink)
    # DP group of a TP=8 model: one member per node, one 400 Gb/s rail each.
    dp = comm.group_link(g, 48, 8, 8)
    assert dp.kind == "network"
    assert dp.bw_bytes_s == pytest.approx(50e9 * g.efficiency.network)
    # TP=2: four DP members share a node; the ring leaves the node through 4 rails.
    dp4 = comm.group_link(g, 48, 2, 8)
    assert dp4.bw_bytes_s == pytest.approx(
        min(450e9 * g.efficiency.nvlink, 4 * 50e9 * g.efficiency.network)
    )


def test_pipeline_bubbles():
    t, p, m = 1.0, 4, 16
    assert pipeline_time([t] * p, m, 1) == pytest.approx((m + p - 1) * t)
    assert pipeline_time([t] * p, m, 2) == pytest.approx(m * t + (p - 1) * t / 2)
    assert bubble_fraction(p, m, 1) == pytest.approx((p - 1) / (m + p - 1))
    # A slow link sets the steady-state period: the last micro-batch leaves its slot (m-1)
    # periods after the first and still crosses every device.
    assert pipeline_time([t] * p, m, 1, period_s=2.0) == pytest.approx((m - 1) * 2.0 + p * t)
    # Below the period a slower device does not lengthen the steady state.
    slow = pipeline_time([t, t, 1.5 * t, t], m, 1, period_s=2.0)
    assert slow == pytest.approx((m - 1) * 2.0 + 4.5 * t)
    # Uneven stages: the slowest stage paces the steady state.
    assert pipeline_time([1.0, 2.0, 1.0], 8, 1) == pytest.approx(8 * 2.0 + 2.0)
