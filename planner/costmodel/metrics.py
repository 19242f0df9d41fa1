"""Result types of the cost model (plain pydantic; JSON-ready)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable result record."""

    model_config = ConfigDict(frozen=True)


class StageMemoryGiB(Frozen):
    """Memory per GPU of one pipeline device, GiB."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    reserved: float
    total: float
    capacity: float
    fits: bool


class DeviceMetrics(Frozen):
    """One pipeline device (a PP rank; all its TP/DP peers behave the same)."""

    device: int
    pool: str
    site: str
    gpu: str
    layers: list[int]
    """Layers of each of its virtual-stage chunks."""
    fwd_s: float
    """Forward time of one micro-batch (all chunks, exposed TP/CP/EP communication included)."""
    bwd_s: float
    """Backward (+ recompute) time of one micro-batch."""
    busy_s: float
    idle_s: float
    compute_s: float
    """Compute-bound kernel time per iteration (draws the loaded power)."""
    memory_s: float
    """Memory-bound kernel time per iteration, optimizer step included."""
    params: float
    """Parameters held per GPU (before ZeRO sharding)."""
    memory: StageMemoryGiB


class LinkUse(Frozen):
    """Traffic on one WAN path per iteration."""

    src_site: str
    dst_site: str
    bytes_per_iteration: float
    busy_s: float
    utilisation: float
    bw_gbps: float
    effective_gbps: float


class BoundaryUse(Frozen):
    """One chunk boundary of the pipeline: its one-way transfer per micro-batch."""

    chunk: int
    """Boundary between chunk ``chunk`` and ``chunk + 1`` (virtual stages in order)."""
    src_device: int
    dst_device: int
    link: str
    """``src>dst`` sites of a WAN path; empty inside a site."""
    transfer_s: float
    """One micro-batch's tensor, one way, latency included."""
    latency_s: float = 0.0
    """The part of ``transfer_s`` that is propagation (half the RTT on a WAN path)."""
    round_s: float
    """Shortest spacing of one pipeline's transfers on the link (its DP-cell rotation)."""
    stagger_s: float
    """Delay of the last pipeline of a DP-cell on this link."""


class TimeBreakdown(Frozen):
    """Where the iteration time goes (seconds; the parts add up to ``iteration_s``)."""

    compute_s: float
    """Forward + backward + recompute kernels of the slowest device over all micro-batches."""
    bubble_s: float
    """Pipeline fill/drain and waiting for slower stages or links."""
    exposed_comm_s: float
    """TP/CP/EP collectives and pipeline transfers left on the critical path."""
    dp_exposed_s: float
    optimizer_s: float
    overhead_s: float
    iteration_s: float


class EnergyMetrics(Frozen):
    """Power, energy and their footprints."""

    gpu_power_w: float
    """Average board power per GPU over an iteration."""
    it_power_w: float
    """All GPUs plus node overheads."""
    facility_power_w: float
    power_by_site_w: dict[str, float]
    energy_per_iteration_j: float
    """Facility energy (x PUE) per iteration."""
    energy_to_train_kwh: float
    carbon_to_train_kg: float
    water_to_train_l: float
    cost_to_train_usd: float
    cost_breakdown_usd: dict[str, float]


class ReliabilityMetrics(Frozen):
    """Failures, checkpoints and goodput of one training job (``costmodel.reliability``)."""

    mtbf_h: float
    """Mean time between interruptions of the whole job (inf when GPUs never fail)."""
    checkpoint_s: float
    """Time to write one checkpoint (weights + optimizer state)."""
    restart_s: float
    interval_s: float
    """Compute time between checkpoints in use (the stated one, else ``optimal_interval_s``)."""
    young_interval_s: float
    """Young (1974) first-order optimum ``sqrt(2 delta M)``."""
    optimal_interval_s: float
    """Daly (2006) higher-order optimum."""
    goodput_fraction: float
    """Expected share of wall time that advances training (checkpoints, lost work and
    restarts excluded)."""
    failures_to_train: float
    """Expected interruptions over the whole run."""
    wall_time_to_train_h: float
    """``time_to_train_h / goodput_fraction``."""
    goodput_tokens_per_s: float
    """``tokens_per_s * goodput_fraction``."""


class TrainingMetrics(Frozen):
    """Every figure of one training job under one configuration."""

    job: str
    model: str
    n_gpus: int
    config: dict[str, object]
    micro_batches: int
    iteration_time_s: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    mfu: float
    hfu: float
    model_flops_per_token: float
    bubble_fraction: float
    time_to_train_h: float
    breakdown: TimeBreakdown
    devices: list[DeviceMetrics]
    wan: list[LinkUse]
    energy: EnergyMetrics
    boundaries: list[BoundaryUse] = []
    """Every chunk boundary with its transfer (the simulator replays them)."""
    dp_cell_size: int | None = None
    """Pipelines per DP-cell on the WAN crossings (None when no pipeline crosses a WAN)."""
    fits_memory: bool
    warnings: list[str]
    reliability: ReliabilityMetrics | None = None
    """Failures and goodput (filled by ``evaluate_training``)."""


class EngineMetrics(Frozen):
    """One group of identical serving engines at the load the balancer gives each."""

    role: str
    pool: str
    site: str
    gpu: str
    tp: int
    pp: int
    count: int
    power_cap_w: float | None
    goodput_rps: float
    """Highest rate one engine sustains with the SLO percentiles met."""
    load_rps: float
    """Rate each engine carries (demand split in proportion to goodput)."""
    ttft_s: float
    """TTFT at the SLO percentile under that load (0 for decode engines)."""
    tpot_s: float
    """TPOT at the SLO percentile under that load (0 for prefill engines)."""
    utilisation: float
    """Prefill busy share (prefill, colocated) or KV-cache share at the percentile (decode)."""
    resident_requests: float
    """Mean requests in the decode batch."""
    kv_capacity_tokens: float
    prefill_fit: tuple[float, float, float]
    """``(a, b, c)`` of the prefill latency ``a + b L + c L^2`` seconds."""
    provisioned_w: float
    """IT watts of one engine at its cap (GPUs plus node share)."""
    peak_w: float
    """Expected peak IT draw of one engine (decode: memory-bound power)."""
    average_w: float
    """Average IT draw of one engine at its load."""
    capacity_w: float
    """Average IT draw of one engine at its goodput (the load the plan provisions for)."""


class ServingMetrics(Frozen):
    """Every figure of one inference service under one serving configuration."""

    service: str
    model: str
    n_gpus: int
    site: str
    rate_rps: float
    prefill_capacity_rps: float
    """Engines' prefill goodput plus the bubbles' share."""
    bubble_prefill_rps: float = 0.0
    """Prefill demand served in training bubbles (``ServingConfig.prefill_in_bubbles_rps``)."""
    decode_capacity_rps: float
    goodput_rps: float
    """Highest request rate the engines serve within the SLO (min of the two phases)."""
    goodput_per_gpu: float
    ttft_s: float
    """Worst engine TTFT percentile at its load."""
    tpot_s: float
    """Worst engine TPOT percentile at its load."""
    engines: list[EngineMetrics]
    provisioned_w: float
    peak_w: float
    average_w: float
    energy_kwh_per_h: float
    """Facility energy per hour with every engine at its goodput (x PUE): the figure the
    objectives count (linear in the engine counts)."""
    energy_kwh_per_h_at_demand: float
    """Facility energy per hour at the demand rate."""
    carbon_kg_per_h: float
    cost_usd_per_h: float
    """Electricity (engines at goodput) plus GPU rental per hour."""
    warnings: list[str]
