"""FLOPs and parameter counts against hand-derived values."""

from __future__ import annotations

import pytest

from planner.costmodel import flops
from planner.spec.model import ModelSpec


def test_model_flops_match_megatron_formula(catalog):
    # Megatron-Core num_floating_point_operations for MHA + 4h GELU, untied embeddings:
    # 72 l h^2 (1 + s/(6h) + V/(12 l h)); the 7.1B row states 4.5500e10 FLOP/token.
    m = catalog.model("megatron-core-gpt-7.1b")
    s, n, h, v = 4096, m.n_layers, m.hidden_size, m.vocab_size
    expected = 72 * n * h**2 * (1 + s / (6 * h) + v / (12 * n * h))
    assert flops.model_flops_per_token(m, s) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(4.5500e10, rel=1e-4)


def test_gqa_projection_flops(catalog):
    m = catalog.model("llama3-8b")  # 32 query heads, 8 KV heads, head dim 128, h 4096
    q_kv = 2 * 4096 * (32 + 2 * 8) * 128
    out = 2 * 32 * 128 * 4096
    assert flops.attn_proj_flops(m) == q_kv + out


def test_swiglu_has_three_matrices(catalog):
    m = catalog.model("llama3-8b")
    assert flops.ffn_flops(m, 0) == 6 * 4096 * 14336


def test_causal_attention_executes_about_half():
    m = ModelSpec(n_layers=1, hidden_size=1024, n_heads=8, ffn_hidden_size=4096, vocab_size=1)
    full = flops.attn_core_flops(m, 2048)
    causal = flops.attn_core_flops(m, (2048 + 1) / 2)
    assert causal / full == pytest.approx(0.5, abs=1e-3)
    assert full == 4 * 2048 * 1024


@pytest.mark.parametrize(
    ("model", "billions", "tol"),
    [
        ("llama3-70b", 70.55, 0.005),
        ("llama3-405b", 405.8, 0.005),
        ("gpt3-175b", 174.6, 0.005),
        ("llama2-7b", 6.74, 0.005),
    ],
)
def test_parameter_counts(catalog, model, billions, tol):
    assert flops.total_params(catalog.model(model)) / 1e9 == pytest.approx(billions, rel=tol)


def test_mixtral_total_and_active(catalog):
    m = catalog.model("mixtral-8x7b")  # Jiang et al. 2024: 46.7B total, 12.9B active
    assert flops.total_params(m) / 1e9 == pytest.approx(46.7, rel=0.01)
    assert flops.active_params(m) / 1e9 == pytest.approx(12.9, rel=0.01)
    # Top-2 of 8 experts: the FFN FLOPs of two experts plus the router.
    assert flops.ffn_flops(m, 0) == 2 * 3 * 4096 * 14336 * 2 + 2 * 4096 * 8
