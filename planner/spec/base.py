"""Base class and shared enums for every input spec."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    """Frozen, strict base for input specs: unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Precision(StrEnum):
    """Numeric precision of the matrix multiplies (training math, not storage)."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"


class FfnType(StrEnum):
    """Feed-forward block: two-matrix GELU MLP or three-matrix gated SwiGLU."""

    GELU = "gelu"
    SWIGLU = "swiglu"


class WanSharing(StrEnum):
    """How data-parallel pipelines share a WAN path: all at once, or in DP-cell rotations."""

    FAIR = "fair"
    TEMPORAL = "temporal"


class Schedule(StrEnum):
    """Pipeline schedule."""

    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"


class Recompute(StrEnum):
    """Activation recomputation (Korthikanti et al. 2022)."""

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


class AttentionImpl(StrEnum):
    """Attention kernel: fused flash attention, or eager (scores materialised in HBM)."""

    FLASH = "flash"
    EAGER = "eager"


class Optimizer(StrEnum):
    """Optimizer; decides the bytes of state per parameter."""

    ADAM = "adam"
    SGD = "sgd"
