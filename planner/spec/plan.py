"""A training configuration and its placement: the ``plan:`` section of an input."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from planner.spec.base import AttentionImpl, Precision, Recompute, Schedule, Spec, WanSharing


class StagePlacement(Spec):
    """A contiguous block of pipeline stages [first_stage, last_stage] on one GPU pool."""

    pool: str
    first_stage: int = Field(ge=0)
    last_stage: int = Field(ge=0)
    dp: int | None = Field(default=None, gt=0)
    """Data-parallel replicas of these stages in this pool (default: all of the job's DP)."""

    @model_validator(mode="after")
    def _ordered(self) -> StagePlacement:
        if self.last_stage < self.first_stage:
            raise ValueError(f"last_stage {self.last_stage} < first_stage {self.first_stage}")
        return self


class TrainingConfig(Spec):
    """Every knob of one training job's parallel configuration.

    ``overlap_*`` default to what Megatron-Core does when its overlap flags are set
    (``--overlap-grad-reduce --overlap-param-gather --tp-comm-overlap``).
    """

    job: str
    gpu: str
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    cp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    micro_batch: int = Field(default=1, gt=0)
    schedule: Schedule = Schedule.ONE_F_ONE_B
    vpp: int = Field(default=1, gt=0)
    """Virtual stages per device (interleaved schedule)."""
    recompute: Recompute = Recompute.NONE
    sequence_parallel: bool = True
    zero_stage: int = Field(default=1, ge=0, le=3)
    """0: replicated optimizer; 1: sharded optimizer state (Megatron distributed optimizer);
    2: + sharded gradients; 3: + sharded parameters (FSDP)."""
    fsdp: bool = False
    """Fully sharded data parallel (equivalent to ZeRO-3 with per-layer gathers)."""
    precision: Precision | None = None
    """Defaults to the job's precision."""
    attention: AttentionImpl = AttentionImpl.FLASH
    loss_fusion: bool = True
    """Fused vocab-parallel cross-entropy (Megatron-LM); False: separate FP32 PyTorch ops."""
    grad_accumulation_fusion: bool = True
    """Weight-gradient GEMMs accumulate into the FP32 buffer (Megatron
    ``--gradient-accumulation-fusion``); False: one add per parameter tensor per micro-batch."""
    host_ops_per_kernel: float = Field(default=1.0, gt=0)
    """Host dispatches per modelled kernel: 1 for fused layers (Megatron-Core), more for an
    unfused eager layer (separate bias adds, reshapes and views)."""
    overlap_tp_comm: bool = True
    overlap_dp_comm: bool = True
    overlap_pp_comm: bool = True
    layers_per_stage: list[int] | None = None
    """Uneven split; defaults to the most even split of layers over ``pp * vpp`` chunks."""
    placement: list[StagePlacement] = Field(default_factory=list)
    """Which pools host which stages; empty means all stages in the first allowed pool."""
    power_cap_w: float | None = Field(default=None, gt=0)
    """Board power cap of every GPU of the job (default: the GPU's maximum)."""
    stage_power_caps_w: list[float] | None = None
    """One cap per pipeline device (PP rank), overriding ``power_cap_w`` for that device's
    GPUs: non-critical stages run slower at no step-time cost (Perseus, Chung et al. SOSP
    2024; ``planner.stagecaps`` chooses them)."""
    tcp_connections: int = Field(default=1, gt=0)
    """Parallel TCP connections of one pipeline's transfer across a WAN crossing."""
    wan_sharing: WanSharing = WanSharing.TEMPORAL
    """How pipelines crossing one WAN path share it (``costmodel.wan``)."""
    dp_cell_size: int | None = Field(default=None, gt=0)
    """Pipelines per DP-cell under temporal sharing; default ``c*`` of ``costmodel.wan``."""

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.schedule is Schedule.INTERLEAVED and self.vpp < 2:
            raise ValueError("schedule 'interleaved' needs vpp >= 2")
        if self.schedule is not Schedule.INTERLEAVED and self.vpp != 1:
            raise ValueError(f"vpp {self.vpp} needs schedule 'interleaved'")
        if self.layers_per_stage is not None and len(self.layers_per_stage) != self.pp * self.vpp:
            raise ValueError(
                f"layers_per_stage has {len(self.layers_per_stage)} entries; "
                f"expected pp*vpp = {self.pp * self.vpp}"
            )
        if self.layers_per_stage is not None and any(n < 0 for n in self.layers_per_stage):
            raise ValueError("layers_per_stage entries must be >= 0")
        return self

    @model_validator(mode="after")
    def _stage_caps(self) -> TrainingConfig:
        caps = self.stage_power_caps_w
        if caps is not None and len(caps) != self.pp:
            raise ValueError(f"stage_power_caps_w has {len(caps)} entries; expected pp = {self.pp}")
        if caps is not None and any(c <= 0 for c in caps):
            raise ValueError("stage_power_caps_w entries must be > 0")
        return self

    def cap_w(self, device: int) -> float | None:
        """Power cap of the GPUs of pipeline device ``device`` (None: the GPU's maximum)."""
        if self.stage_power_caps_w is not None:
            return self.stage_power_caps_w[device]
        return self.power_cap_w

    @property
    def n_gpus(self) -> int:
        """GPUs used: TP x PP x DP x CP (EP reuses the DP x CP ranks)."""
        return self.tp * self.pp * self.dp * self.cp

    @property
    def zero(self) -> int:
        """Effective ZeRO stage (FSDP counts as 3)."""
        return 3 if self.fsdp else self.zero_stage


class EngineRole(StrEnum):
    """What a serving engine runs: prefill only, decode only, or both (colocated)."""

    PREFILL = "prefill"
    DECODE = "decode"
    COLOCATED = "colocated"


class EngineGroup(Spec):
    """``count`` identical serving engines of one role on one pool."""

    role: EngineRole
    pool: str
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    count: int = Field(default=1, ge=0)
    power_cap_w: float | None = Field(default=None, gt=0)

    @property
    def n_gpus(self) -> int:
        """GPUs of all the group's engines."""
        return self.tp * self.pp * self.count


class ServingConfig(Spec):
    """The engines of one inference service (all in one site)."""

    service: str
    engines: list[EngineGroup] = Field(min_length=1)
    prefill_in_bubbles_rps: float = Field(default=0.0, ge=0)
    """Prefill demand served in the pipeline bubbles of training job ``bubble_job``
    (BubbleTea); the engines' prefill capacity covers the rest."""
    bubble_job: str | None = None

    @property
    def n_gpus(self) -> int:
        return sum(g.n_gpus for g in self.engines)


class Plan(Spec):
    """Configurations given in an input (``plan:`` section) or produced by a solver."""

    training: list[TrainingConfig] = Field(default_factory=list)
    serving: list[ServingConfig] = Field(default_factory=list)
