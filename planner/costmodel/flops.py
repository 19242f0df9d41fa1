"""FLOPs and parameter counts of a decoder-only transformer.

Conventions (per token, forward pass, multiply-add = 2 FLOPs):

- attention projections: ``2 h (n_q + 2 n_kv) d`` (Q, K, V) + ``2 n_q d h`` (output),
  with ``n_q`` query heads, ``n_kv`` key/value heads (GQA, Ainslie et al. 2023) and head dim ``d``;
- attention core: ``4 s_kv n_q d`` (Q K^T and A V) where ``s_kv`` is the number of keys
  a query attends to: ``s`` for the *model-FLOPs* convention (Narayanan et al. 2021 Eq. 3,
  PaLM Appendix B count the full square) and ``(s + 1) / 2`` for what a causal kernel executes;
- feed-forward: ``4 h f`` (GELU, two matrices) or ``6 h f`` (SwiGLU, Shazeer 2020, three);
  MoE layers run ``top_k`` experts of width ``f_e`` plus a router ``2 h E`` (Fedus et al. 2022);
- LM head: ``2 h V``. Embedding lookups are not FLOPs.

Backward = 2 x forward (Narayanan et al. 2021, Sec. 5.1), so model FLOPs per token = 3 x forward.
"""

from __future__ import annotations

from planner.spec.base import FfnType
from planner.spec.model import ModelSpec


def attn_proj_flops(m: ModelSpec) -> float:
    """Forward FLOPs per token of the Q, K, V and output projections of one layer."""
    h, d = m.hidden_size, m.dh
    return 2.0 * h * (m.n_heads + 2 * m.kv_heads) * d + 2.0 * m.n_heads * d * h


def attn_core_flops(m: ModelSpec, s_kv: float) -> float:
    """Forward FLOPs per token of Q K^T and A V when each query sees ``s_kv`` keys."""
    return 4.0 * s_kv * m.n_heads * m.dh


def ffn_matrices(m: ModelSpec) -> int:
    """Weight matrices in one FFN: 2 for GELU, 3 for SwiGLU."""
    return 3 if m.ffn_type is FfnType.SWIGLU else 2


def ffn_flops(m: ModelSpec, layer: int) -> float:
    """Forward FLOPs per token of the FFN of layer ``layer`` (dense or MoE)."""
    h = m.hidden_size
    if m.moe is not None and m.is_moe_layer(layer):
        experts = m.moe.top_k + m.moe.n_shared_experts
        return 2.0 * ffn_matrices(m) * h * m.expert_ffn * experts + 2.0 * h * m.moe.n_experts
    return 2.0 * ffn_matrices(m) * h * m.ffn_hidden_size


def lm_head_flops(m: ModelSpec) -> float:
    """Forward FLOPs per token of the output projection to the vocabulary."""
    return 2.0 * m.hidden_size * m.vocab_size


def forward_flops_per_token(m: ModelSpec, seq_len: int, causal_executed: bool = False) -> float:
    """Forward FLOPs per token of the whole model.

    ``causal_executed=False`` gives the model-FLOPs convention (full ``s x s`` attention);
    ``True`` gives what a causal kernel executes (``(s + 1) / 2`` keys per query).
    """
    s_kv = (seq_len + 1) / 2.0 if causal_executed else float(seq_len)
    per_layer = sum(ffn_flops(m, i) for i in range(m.n_layers))
    per_layer += m.n_layers * (attn_proj_flops(m) + attn_core_flops(m, s_kv))
    return per_layer + lm_head_flops(m)


def model_flops_per_token(m: ModelSpec, seq_len: int) -> float:
    """Model FLOPs per trained token: 3 x forward, full attention square (MFU convention)."""
    return 3.0 * forward_flops_per_token(m, seq_len)


def layer_params(m: ModelSpec, layer: int) -> tuple[float, float]:
    """(dense, expert) parameters of one layer, norms included.

    Attention ``h (n_q + 2 n_kv) d + n_q d h``; FFN ``k h f`` per expert with ``k`` matrices;
    two norms of ``h`` each. Biases are ignored (under 0.1% at these widths).
    """
    h, d = m.hidden_size, m.dh
    attn = h * (m.n_heads + 2 * m.kv_heads) * d + m.n_heads * d * h
    norms = 2.0 * h
    if m.moe is not None and m.is_moe_layer(layer):
        expert = ffn_matrices(m) * h * m.expert_ffn * m.moe.n_experts
        shared = ffn_matrices(m) * h * m.expert_ffn * m.moe.n_shared_experts
        router = h * m.moe.n_experts
        return attn + norms + shared + router, float(expert)
    return attn + norms + ffn_matrices(m) * h * m.ffn_hidden_size, 0.0


def embedding_params(m: ModelSpec) -> tuple[float, float]:
    """(input embedding, output head) parameters; the head is 0 when tied."""
    emb = float(m.vocab_size * m.hidden_size)
    return emb, 0.0 if m.tied_embeddings else emb


def total_params(m: ModelSpec) -> float:
    """All parameters (dense + every expert + embeddings + final norm)."""
    layers = sum(sum(layer_params(m, i)) for i in range(m.n_layers))
    emb, head = embedding_params(m)
    return layers + emb + head + m.hidden_size


def active_params(m: ModelSpec) -> float:
    """Parameters a token passes through (MoE: ``top_k`` of ``n_experts``)."""
    total = total_params(m)
    if m.moe is None:
        return total
    unused = (m.moe.n_experts - m.moe.top_k) / m.moe.n_experts
    expert = sum(layer_params(m, i)[1] for i in range(m.n_layers))
    return total - unused * expert
