"""Activation memory against Korthikanti et al. 2022 (Eq. 1-2, Table 2) and model states."""

from __future__ import annotations

import pytest

from planner.costmodel.layer import LayerShape, layer_cost
from planner.costmodel.memory import in_flight_microbatches, model_state_bytes
from planner.spec.base import AttentionImpl, Optimizer, Recompute, Schedule


@pytest.fixture
def gpt(catalog):
    return catalog.model("korthikanti-gpt-22b")  # MHA, GELU, h 6144, a 64


@pytest.mark.parametrize("t", [1, 2, 8])
def test_tp_only_eager(catalog, gpt, t):
    s, b, h, a = 2048, 4, gpt.hidden_size, gpt.n_heads
    shape = LayerShape(
        gpt, catalog.gpu("a100"), b, s, tp=t, sequence_parallel=False, attention=AttentionImpl.EAGER
    )
    expected = s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    assert layer_cost(shape).activation_bytes == pytest.approx(expected)


def test_sequence_parallel_and_selective(catalog, gpt):
    s, b, h, a, t = 2048, 1, gpt.hidden_size, gpt.n_heads, 8
    gpu = catalog.gpu("a100")
    sp = LayerShape(gpt, gpu, b, s, tp=t, attention=AttentionImpl.EAGER)
    assert layer_cost(sp).activation_bytes == pytest.approx(s * b * h / t * (34 + 5 * a * s / h))
    sel = LayerShape(
        gpt, gpu, b, s, tp=t, attention=AttentionImpl.EAGER, recompute=Recompute.SELECTIVE
    )
    assert layer_cost(sel).activation_bytes == pytest.approx(s * b * h * 34 / t)
    full = LayerShape(gpt, gpu, b, s, tp=t, recompute=Recompute.FULL)
    assert layer_cost(full).activation_bytes == pytest.approx(2 * s * b * h / t)


def test_flash_keeps_no_score_matrix(catalog, gpt):
    shape = LayerShape(gpt, catalog.gpu("h100"), 1, 2048, tp=8)
    assert layer_cost(shape).activation_bytes == pytest.approx(2048 * 6144 * 34 / 8)


def test_recompute_costs_time(catalog, gpt):
    gpu = catalog.gpu("a100")
    base = layer_cost(LayerShape(gpt, gpu, 1, 2048, tp=8, attention=AttentionImpl.EAGER))
    full = layer_cost(
        LayerShape(gpt, gpu, 1, 2048, tp=8, attention=AttentionImpl.EAGER, recompute=Recompute.FULL)
    )
    sel = layer_cost(
        LayerShape(
            gpt, gpu, 1, 2048, tp=8, attention=AttentionImpl.EAGER, recompute=Recompute.SELECTIVE
        )
    )
    assert full.recompute == base.fwd
    assert 0 < sel.recompute.total_s < 0.5 * full.recompute.total_s


def test_model_states_by_zero_stage():
    p, dp = 1e9, 8
    assert model_state_bytes(p, dp, 0, Optimizer.ADAM) == (2e9, 4e9, 12e9)
    assert model_state_bytes(p, dp, 1, Optimizer.ADAM) == (2e9, 4e9, 12e9 / 8)
    assert model_state_bytes(p, dp, 2, Optimizer.ADAM) == (2e9, 4e9 / 8, 12e9 / 8)
    assert model_state_bytes(p, dp, 3, Optimizer.ADAM) == (2e9 / 8, 4e9 / 8, 12e9 / 8)


def test_in_flight_microbatches():
    assert in_flight_microbatches(Schedule.ONE_F_ONE_B, 8, 1, 64, 0) == 8
    assert in_flight_microbatches(Schedule.ONE_F_ONE_B, 8, 1, 64, 7) == 1
    assert in_flight_microbatches(Schedule.ONE_F_ONE_B, 8, 1, 4, 0) == 4
    assert in_flight_microbatches(Schedule.GPIPE, 8, 1, 64, 7) == 64
    # Interleaved, device 0: 2(p-1) + (v-1)p + 1 chunks of 1/v of its layers.
    assert in_flight_microbatches(Schedule.INTERLEAVED, 4, 2, 64, 0) == pytest.approx(
        (6 + 4 + 1) / 2
    )


def test_context_parallel_exchange_hides_behind_attention_only(catalog):
    from planner.costmodel import comm
    from planner.costmodel.layer import layer_comm_time

    m = catalog.model("llama3-8b")
    shape = LayerShape(m, catalog.gpu("h100"), 1, 32768, cp=4)
    c = layer_cost(shape)
    none = comm.Link(1e18, 0.0)
    slow = comm.Link(10e9, 1e-5)
    ring = 3 * comm.p2p_time(c.cp_kv_bytes, slow)
    fwd, bwd = layer_comm_time(c, shape, none, none, slow)
    assert fwd == pytest.approx(max(0.0, ring - c.attn_fwd_s))
    assert bwd == pytest.approx(max(0.0, 2 * ring - 2.5 * c.attn_fwd_s))
    assert c.attn_fwd_s < c.fwd.total_s
