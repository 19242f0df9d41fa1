"""Time, FLOPs and activation memory of one transformer layer for one micro-batch on one GPU.

The layer is a list of kernels (Megatron-LM / Megatron-Core layout, Shoeybi et al. 2019):
norm -> QKV GEMM -> attention core -> output GEMM -> residual(+dropout) -> norm -> FC1 GEMM
-> activation -> FC2 GEMM -> residual(+dropout), each sharded by tensor parallelism ``t``
(column-parallel QKV/FC1, row-parallel output/FC2), with sequence parallelism sharding the
norms and residuals over ``t`` as well (Korthikanti et al. 2022, Sec. 4.2.2).

Backward of a GEMM ``(m x k) @ (k x n)`` is a data-gradient GEMM ``(m x n) @ (n x k)`` and a
weight-gradient GEMM ``(k x m) @ (m x n)``: 2x the forward FLOPs with other inner dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costmodel import comm, kernels
from planner.costmodel.flops import ffn_matrices
from planner.costmodel.kernels import KernelTime
from planner.spec.base import AttentionImpl, Precision, Recompute
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec

ACT_BYTES = 2.0
"""Bytes per activation element (BF16/FP16 activations in mixed precision)."""
MASK_BYTES = 1.0
"""Bytes per dropout-mask element (Korthikanti et al. 2022, Sec. 4.1)."""
NORM_BYTES_PER_ELEM = 4.0
"""A norm reads and writes each element once at 2 bytes."""
RESIDUAL_BYTES_PER_ELEM = 7.0
"""Dropout + residual add: read input and residual, write output (2 B each), write mask (1 B)."""
FP8_CAST_BYTES_PER_ELEM = 3.0
"""Casting a BF16 GEMM input to FP8: read 2 B, write 1 B (TransformerEngine)."""
BACKWARD_STREAM_FACTOR = 2.0
"""Element-wise backward kernels read the saved input and the incoming gradient and write the
outgoing gradient: ~2x the forward traffic."""


@dataclass(frozen=True)
class LayerShape:
    """Everything that fixes one layer's per-GPU work."""

    model: ModelSpec
    gpu: GpuSpec
    micro_batch: int
    seq_len: int
    tp: int = 1
    cp: int = 1
    ep: int = 1
    sequence_parallel: bool = True
    precision: Precision = Precision.BF16
    attention: AttentionImpl = AttentionImpl.FLASH
    recompute: Recompute = Recompute.NONE
    clock: float = 1.0

    @property
    def tokens(self) -> float:
        """Tokens of the micro-batch held by this GPU (``b s / cp``)."""
        return self.micro_batch * self.seq_len / self.cp

    @property
    def sp_div(self) -> int:
        """Divisor of replicated activations: ``t`` with sequence parallelism, else 1."""
        return self.tp if self.sequence_parallel else 1


@dataclass(frozen=True)
class LayerCost:
    """One layer, one micro-batch, one GPU."""

    fwd: KernelTime
    bwd: KernelTime
    recompute: KernelTime
    tp_bytes_fwd: float
    """Bytes of one TP collective (each of the layer's 2 forward collectives moves this)."""
    ep_bytes: float
    """Bytes each rank sends in one all-to-all (MoE dispatch or combine)."""
    cp_kv_bytes: float
    """K and V bytes a rank passes on per ring step of context parallelism."""
    flops_fwd: float
    flops_bwd: float
    flops_recompute: float
    activation_bytes: float
    """Activations kept for the backward pass of this micro-batch."""
    attn_fwd_s: float
    """Forward time of the attention core (the window that hides context-parallel K/V
    exchange)."""


def _gemm_fwd_bwd(
    s: LayerShape, m: float, n: float, k: float, count: float = 1.0
) -> tuple[KernelTime, KernelTime]:
    g, p, c = s.gpu, s.precision, s.clock
    fwd = kernels.gemm_time(g, m, n, k, p, c, count)
    bwd = kernels.gemm_time(g, m, k, n, p, c, count) + kernels.gemm_time(g, k, n, m, p, c, count)
    if p is Precision.FP8:
        cast = kernels.stream_time(g, FP8_CAST_BYTES_PER_ELEM * count * (m * k + n * k))
        fwd, bwd = fwd + cast, bwd + cast.scaled(2.0)
    return fwd, bwd


def _stream(s: LayerShape, elems: float, bytes_per_elem: float) -> tuple[KernelTime, KernelTime]:
    fwd = kernels.stream_time(s.gpu, elems * bytes_per_elem)
    return fwd, fwd.scaled(BACKWARD_STREAM_FACTOR)


def _attention_core(s: LayerShape) -> tuple[KernelTime, KernelTime, float, float]:
    """(fwd, bwd, executed fwd FLOPs, saved bytes per token) of the attention core."""
    m, b = s.model, s.micro_batch
    heads = m.n_heads / s.tp
    q_rows = s.seq_len / s.cp
    if s.attention is AttentionImpl.FLASH:
        s_kv = (s.seq_len + 1) / 2.0
        flops = 4.0 * b * q_rows * s_kv * heads * m.dh
        fwd = kernels.flash_attention_time(s.gpu, flops, b * q_rows, heads, False, s.clock)
        bwd = kernels.flash_attention_time(s.gpu, 2.5 * flops, b * q_rows, heads, True, s.clock)
        return fwd, bwd, flops, 0.0
    # Eager: scores materialised; QK^T and AV as batched GEMMs over the full square, a fused
    # scale-mask-softmax (read+write 2 B) and dropout (read 2 B, write 2 B + 1 B mask).
    batch = b * heads
    qk_f, qk_b = _gemm_fwd_bwd(s, q_rows, s.seq_len, m.dh, batch)
    av_f, av_b = _gemm_fwd_bwd(s, q_rows, m.dh, s.seq_len, batch)
    scores = batch * q_rows * s.seq_len
    sm_f, sm_b = _stream(s, scores, 4.0 + 5.0)
    flops = 4.0 * b * q_rows * s.seq_len * heads * m.dh
    saved_per_token = 5.0 * heads * s.seq_len  # softmax out 2 B + mask 1 B + dropout out 2 B
    return qk_f + av_f + sm_f, qk_b + av_b + sm_b, flops, saved_per_token


def _ffn(s: LayerShape, layer: int) -> tuple[KernelTime, KernelTime, float, float, float]:
    """(fwd, bwd, fwd FLOPs, saved bytes per token, all-to-all bytes) of the FFN block."""
    m, t, T = s.model, s.tp, s.tokens
    mats, h = ffn_matrices(m), m.hidden_size
    act_bytes = 6.0 if mats == 3 else 4.0  # SwiGLU reads 2 inputs; GELU reads 1
    gemm_in = kernels.bytes_per_element(s.precision) if s.precision is Precision.FP8 else ACT_BYTES
    if m.moe is None or not m.is_moe_layer(layer):
        f = m.ffn_hidden_size / t
        f1, b1 = _gemm_fwd_bwd(s, T, (mats - 1) * f, h)
        f2, b2 = _gemm_fwd_bwd(s, T, h, f)
        fa, ba = _stream(s, T * f, act_bytes)
        flops = 2.0 * T * mats * f * h
        saved = T * (gemm_in * h / s.sp_div + ACT_BYTES * (mats - 1) * f + gemm_in * f)
        return f1 + f2 + fa, b1 + b2 + ba, flops, saved, 0.0
    moe = m.moe
    local_experts = moe.n_experts / s.ep
    routed = T / s.sp_div * moe.top_k  # token copies this rank dispatches
    per_expert = T * moe.top_k / local_experts
    f = m.expert_ffn / t
    rf, rb = _gemm_fwd_bwd(s, T, moe.n_experts, h)
    f1, b1 = _gemm_fwd_bwd(s, per_expert, (mats - 1) * f, h, local_experts)
    f2, b2 = _gemm_fwd_bwd(s, per_expert, h, f, local_experts)
    fa, ba = _stream(s, T * moe.top_k * f, act_bytes)
    fp, bp = _stream(s, routed * h, 2.0 * 2.0 * ACT_BYTES)  # permute + unpermute, read + write
    fwd, bwd = rf + f1 + f2 + fa + fp, rb + b1 + b2 + ba + bp
    flops = 2.0 * T * (moe.top_k * mats * f * h + h * moe.n_experts)
    saved = T * moe.top_k * (gemm_in * h + ACT_BYTES * (mats - 1) * f + gemm_in * f)
    if moe.n_shared_experts:
        fs = m.expert_ffn * moe.n_shared_experts / t
        sf1, sb1 = _gemm_fwd_bwd(s, T, (mats - 1) * fs, h)
        sf2, sb2 = _gemm_fwd_bwd(s, T, h, fs)
        fwd, bwd = fwd + sf1 + sf2, bwd + sb1 + sb2
        flops += 2.0 * T * mats * fs * h
        saved += T * (ACT_BYTES * (mats - 1) * fs + gemm_in * fs)
    return fwd, bwd, flops, saved, routed * h * ACT_BYTES


def layer_cost(s: LayerShape, layer: int = 0) -> LayerCost:
    """Kernel times, FLOPs and saved activations of layer ``layer`` for one micro-batch."""
    m, t, T = s.model, s.tp, s.tokens
    h, d = m.hidden_size, m.dh
    hq, hkv = m.n_heads * d / t, m.kv_heads * d / t
    gemm_in = kernels.bytes_per_element(s.precision) if s.precision is Precision.FP8 else ACT_BYTES
    rows = T / s.sp_div  # rows held by norms and residuals
    nf, nb = _stream(s, rows * h, NORM_BYTES_PER_ELEM)
    rf, rb = _stream(s, rows * h, RESIDUAL_BYTES_PER_ELEM)
    qf, qb = _gemm_fwd_bwd(s, T, hq + 2 * hkv, h)
    of, ob = _gemm_fwd_bwd(s, T, h, hq)
    af, ab, attn_flops, attn_saved = _attention_core(s)
    ff, fb, ffn_flops_, ffn_saved, a2a = _ffn(s, layer)
    fwd = nf.scaled(2) + rf.scaled(2) + qf + of + af + ff
    bwd = nb.scaled(2) + rb.scaled(2) + qb + ob + ab + fb
    proj_flops = 2.0 * T * h * (hq + 2 * hkv) + 2.0 * T * hq * h
    flops_fwd = proj_flops + attn_flops + ffn_flops_
    attn_bwd_flops = 2.5 * attn_flops if s.attention is AttentionImpl.FLASH else 2.0 * attn_flops
    flops_bwd = 2.0 * (proj_flops + ffn_flops_) + attn_bwd_flops
    # Saved activations per token (generalised Korthikanti et al. 2022 Eq. 1-2):
    # two norm inputs, the QKV input, Q, K, V, the output-projection input, dropout masks.
    saved = T * (
        2 * ACT_BYTES * h / s.sp_div
        + gemm_in * h / s.sp_div
        + ACT_BYTES * (hq + 2 * hkv)
        + gemm_in * hq
        + 2 * MASK_BYTES * h / s.sp_div
    )
    saved += T * attn_saved + ffn_saved
    if s.recompute is Recompute.FULL:
        recompute, flops_re = fwd, flops_fwd
        saved = T * ACT_BYTES * h / s.sp_div  # only the layer input is kept
    elif s.recompute is Recompute.SELECTIVE and s.attention is AttentionImpl.EAGER:
        recompute, flops_re = af, attn_flops
        saved -= T * attn_saved
    else:
        recompute, flops_re = KernelTime(), 0.0
    kv_bytes = 2.0 * T * hkv * ACT_BYTES if s.cp > 1 else 0.0
    return LayerCost(
        fwd=fwd,
        bwd=bwd,
        recompute=recompute,
        tp_bytes_fwd=T * h * ACT_BYTES if t > 1 else 0.0,
        ep_bytes=a2a if s.ep > 1 else 0.0,
        cp_kv_bytes=kv_bytes,
        flops_fwd=flops_fwd,
        flops_bwd=flops_bwd,
        flops_recompute=flops_re,
        activation_bytes=saved,
        attn_fwd_s=af.total_s,
    )


def layer_comm_time(
    c: LayerCost,
    s: LayerShape,
    tp_link: comm.Link,
    ep_link: comm.Link,
    cp_link: comm.Link,
) -> tuple[float, float]:
    """(forward, backward) communication time of one layer on the critical path, before overlap.

    TP: two all-reduces (or all-gather + reduce-scatter pairs with sequence parallelism, the
    same volume) of ``b s h`` elements forward and two backward (Shoeybi et al. 2019, Fig. 4).
    EP: dispatch + combine all-to-all forward and backward. CP: ``cp - 1`` ring steps passing
    K and V forward (2x backward, K/V and their gradients), hidden behind the attention kernel
    where it is longer (Liu et al. 2023, Ring Attention).
    """
    tp = 2.0 * comm.all_reduce_time(s.tp, c.tp_bytes_fwd, tp_link)
    ep = 2.0 * comm.all_to_all_time(s.ep, c.ep_bytes * s.ep, ep_link) if s.ep > 1 else 0.0
    cp_f = (s.cp - 1) * comm.p2p_time(c.cp_kv_bytes, cp_link) if s.cp > 1 else 0.0
    cp_fwd = max(0.0, cp_f - c.attn_fwd_s)
    cp_bwd = max(0.0, 2.0 * cp_f - 2.5 * c.attn_fwd_s)
    return tp + ep + cp_fwd, tp + ep + cp_bwd
