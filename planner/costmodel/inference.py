"""Inference terms of the cost model: the prefill of one prompt (compute-bound) and the
memory it needs. Serving (decode, KV cache, queueing) builds on these (issue 6)."""

from __future__ import annotations

from planner.costmodel import kernels
from planner.costmodel.comm import Link
from planner.costmodel.flops import total_params
from planner.costmodel.layer import ACT_BYTES, LayerShape, layer_comm_time, layer_cost
from planner.spec.base import Precision
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec


def prefill_time_s(
    model: ModelSpec,
    gpu: GpuSpec,
    prompt_tokens: int,
    tp: int,
    tp_link: Link,
    precision: Precision = Precision.BF16,
    power_cap_w: float | None = None,
) -> float:
    """Time to prefill one prompt of ``prompt_tokens`` on ``tp`` GPUs: every layer's forward
    kernels and TP all-reduces (the training layer model with one sequence, no recompute),
    plus the LM head of the last token. Prefill is compute-bound (DistServe, Zhong et al.
    2024), which the GEMM roofline captures."""
    shape = LayerShape(
        model=model,
        gpu=gpu,
        micro_batch=1,
        seq_len=prompt_tokens,
        tp=tp,
        sequence_parallel=tp > 1,
        precision=precision,
        clock=kernels.clock_ratio(gpu, power_cap_w),
    )
    total = 0.0
    cache: dict[bool, float] = {}
    for layer in range(model.n_layers):
        moe = model.is_moe_layer(layer)
        if moe not in cache:
            lc = layer_cost(shape, layer)
            comm_f, _ = layer_comm_time(lc, shape, tp_link, tp_link, tp_link)
            cache[moe] = lc.fwd.total_s + comm_f
        total += cache[moe]
    head = kernels.gemm_time(
        gpu, 1, model.vocab_size / tp, model.hidden_size, precision, shape.clock
    )
    return total + head.total_s


def weights_bytes_per_gpu(model: ModelSpec, tp: int) -> float:
    """BF16 weights of the whole model split over ``tp`` GPUs."""
    return total_params(model) * ACT_BYTES / tp


def kv_cache_bytes_per_gpu(model: ModelSpec, tokens: int, tp: int) -> float:
    """K and V of ``tokens`` tokens over all layers, split over ``tp`` GPUs (BF16)."""
    return 2.0 * model.n_layers * model.kv_heads * model.dh * tokens * ACT_BYTES / tp
