"""ModelSpec: an LLM architecture (the catalog entries in ``models/llms``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from planner.spec.base import FfnType, Spec


class MoeSpec(Spec):
    """Mixture-of-experts feed-forward: ``n_experts`` experts, each token routed to ``top_k``."""

    n_experts: int = Field(gt=1)
    top_k: int = Field(gt=0)
    expert_ffn_hidden_size: int | None = Field(default=None, gt=0)
    """FFN width of one expert; defaults to the model's ``ffn_hidden_size``."""
    moe_layer_freq: int = Field(default=1, gt=0)
    """Every ``moe_layer_freq``-th layer is MoE; the others are dense."""
    n_shared_experts: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _top_k_le_experts(self) -> MoeSpec:
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k {self.top_k} exceeds n_experts {self.n_experts}")
        return self


class ModelSpec(Spec):
    """A decoder-only transformer architecture."""

    id: str = "inline"
    name: str = ""
    n_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    n_kv_heads: int | None = Field(default=None, gt=0)
    """Key/value heads (grouped-query attention); defaults to ``n_heads`` (MHA)."""
    head_dim: int | None = Field(default=None, gt=0)
    """Defaults to ``hidden_size / n_heads``."""
    ffn_hidden_size: int = Field(gt=0)
    ffn_type: FfnType = FfnType.GELU
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool = False
    max_seq_len: int | None = Field(default=None, gt=0)
    moe: MoeSpec | None = None
    source: str = ""

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelSpec:
        if self.head_dim is None and self.hidden_size % self.n_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of n_heads {self.n_heads}"
            )
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.kv_heads}"
            )
        return self

    @property
    def kv_heads(self) -> int:
        """Key/value heads (``n_heads`` for multi-head attention)."""
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def dh(self) -> int:
        """Head dimension."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.n_heads

    @property
    def expert_ffn(self) -> int:
        """FFN width of one expert (or of the dense FFN)."""
        if self.moe is not None and self.moe.expert_ffn_hidden_size is not None:
            return self.moe.expert_ffn_hidden_size
        return self.ffn_hidden_size

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) has a MoE feed-forward block."""
        return self.moe is not None and (layer + 1) % self.moe.moe_layer_freq == 0

    @property
    def n_moe_layers(self) -> int:
        """Number of MoE layers."""
        return sum(self.is_moe_layer(i) for i in range(self.n_layers))
