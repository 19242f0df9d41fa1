"""GPU datasheet and efficiency profile (the hardware catalog entries in ``models/gpus``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from planner.spec.base import Precision, Spec


class GpuEfficiency(Spec):
    """Achievable fractions of datasheet peaks: the cost model's calibration constants.

    Each value is a measurement or a fit with its provenance in ``sources``; the cost-model
    formulas read them from here and never hard-code them.
    """

    gemm_max: float = Field(gt=0, le=1)
    """Fraction of dense peak sustained by large GEMMs inside a training step."""
    gemm_k_half: float = Field(ge=0)
    """Inner dimension at which GEMM efficiency drops to half its large-K value
    (prologue/epilogue cost of each output tile): eff_k = k / (k + k_half)."""
    fp8_gemm_max: float = Field(gt=0, le=1)
    """Fraction of the FP8 dense peak sustained by large FP8 GEMMs."""
    fp8_gemm_k_half: float = Field(ge=0)
    """As ``gemm_k_half`` for FP8 GEMMs."""
    attention_fwd: float = Field(gt=0, le=1)
    attention_bwd: float = Field(gt=0, le=1)
    """Fraction of the 16-bit dense peak reached by large flash-attention forward / backward
    kernels (causal FLOPs counted once)."""
    attention_blocks_half: float = Field(ge=0)
    """Query blocks (batch x local heads x seq/128) at which attention efficiency is half its
    large-problem value: eff = eff_max * B / (B + B_half) (SM occupancy)."""
    hbm: float = Field(gt=0, le=1)
    """Fraction of HBM peak bandwidth reached by streaming (element-wise) kernels."""
    kernel_overhead_us: float = Field(ge=0)
    """Launch plus tail cost per kernel."""
    host_fwd_us: float = Field(ge=0)
    """Host (CPU) time to dispatch one forward kernel in eager PyTorch with autograd; when a
    layer's kernels are shorter than their dispatch, the GPU waits for the host."""
    host_bwd_us: float = Field(ge=0)
    """Host time of the autograd backward of one forward kernel."""
    nvlink: float = Field(gt=0, le=1)
    """Fraction of per-direction NVLink bandwidth reached as NCCL bus bandwidth."""
    network: float = Field(gt=0, le=1)
    """Fraction of NIC line rate reached as NCCL bus bandwidth between nodes."""
    collective_latency_us: float = Field(ge=0)
    """Fixed latency per collective step (alpha term of the alpha-beta model)."""
    tp_overlap: float = Field(ge=0, le=1)
    """Fraction of tensor-parallel communication hidden behind GEMMs when overlap is on."""
    dp_overlap: float = Field(ge=0, le=1)
    """Fraction of the overlap window (backward of the last micro-batch) that actually hides
    data-parallel traffic when overlap is on (stream contention, bucket granularity)."""
    step_overhead_s: float = Field(ge=0)
    """Per-iteration host overhead (data loading, logging, synchronisation)."""
    sources: dict[str, str] = Field(default_factory=dict)


class PowerModel(Spec):
    """How throughput follows the power cap (DVFS).

    Under a cap ``c`` below the uncapped draw ``P_load`` the clock scales as
    ``f/f0 = ((c - P_idle) / (P_load - P_idle)) ** (1 / alpha)`` and compute-bound time as 1/f.
    """

    load_fraction_of_tdp: float = Field(gt=0, le=1.2)
    """Board power drawn by a compute-bound training step, as a fraction of TDP."""
    alpha: float = Field(gt=1)
    """Exponent of dynamic power in clock (P_dyn ~ f ** alpha; ~3 when voltage tracks f)."""
    memory_bound_power_fraction: float = Field(gt=0, le=1)
    """Board power of memory-bound work (decode, element-wise) as a fraction of TDP."""
    sources: dict[str, str] = Field(default_factory=dict)


class GpuSpec(Spec):
    """One GPU type: datasheet numbers (each with its source) and efficiency constants."""

    id: str
    name: str
    vendor: str
    peak_tflops: dict[Precision, float]
    """Dense (no sparsity) peak TFLOP/s per precision."""
    hbm_gib: float = Field(gt=0)
    hbm_bw_tb_s: float = Field(gt=0)
    tdp_w: float = Field(gt=0)
    power_cap_min_w: float = Field(gt=0)
    power_cap_max_w: float = Field(gt=0)
    idle_w: float = Field(gt=0)
    nvlink_bw_gb_s: float = Field(gt=0)
    """NVLink (or Infinity Fabric) bandwidth per GPU, per direction, GB/s."""
    nic_bw_gbps: float = Field(gt=0)
    """Scale-out NIC bandwidth per GPU in a reference node, Gbit/s."""
    n_sm: int = Field(gt=0)
    """Streaming multiprocessors (compute units); informational (the GEMM model is smooth in
    m and n: cuBLAS picks tiles that hide wave quantisation, per the measured sweep)."""
    aliases: list[str] = Field(default_factory=list)
    efficiency: GpuEfficiency
    power: PowerModel
    sources: dict[str, str]

    @model_validator(mode="after")
    def _caps_ordered(self) -> GpuSpec:
        if not self.power_cap_min_w <= self.power_cap_max_w:
            raise ValueError(
                f"power_cap_min_w {self.power_cap_min_w} exceeds power_cap_max_w "
                f"{self.power_cap_max_w}"
            )
        if self.idle_w >= self.power_cap_max_w:
            raise ValueError("idle_w must be below power_cap_max_w")
        return self

    def peak_flops(self, precision: Precision) -> float:
        """Dense peak FLOP/s at a precision; FP8 falls back to 16-bit where unsupported."""
        if precision in self.peak_tflops:
            return self.peak_tflops[precision] * 1e12
        if precision is Precision.FP8:
            return self.peak_flops(Precision.BF16)
        if precision is Precision.BF16 and Precision.FP16 in self.peak_tflops:
            return self.peak_tflops[Precision.FP16] * 1e12
        raise KeyError(f"{self.id} has no peak for {precision}")

    def supports(self, precision: Precision) -> bool:
        """Whether the tensor cores run this precision natively."""
        return precision in self.peak_tflops
