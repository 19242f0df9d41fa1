"""Assemble one training iteration from per-device work: pipeline, pipeline transfers,
data-parallel communication, optimizer step, memory, energy and footprint."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.costmodel import comm, kernels, wan
from planner.costmodel.energy import device_energy, run_share
from planner.costmodel.flops import model_flops_per_token
from planner.costmodel.kernels import KernelTime
from planner.costmodel.layer import ACT_BYTES
from planner.costmodel.memory import (
    GRAD_BYTES,
    WEIGHT_BYTES,
    in_flight_microbatches,
    stage_memory,
)
from planner.costmodel.metrics import (
    BoundaryUse,
    DeviceMetrics,
    EnergyMetrics,
    LinkUse,
    StageMemoryGiB,
    TimeBreakdown,
    TrainingMetrics,
)
from planner.costmodel.pipeline import pipeline_time
from planner.costmodel.placement import Placement
from planner.spec.base import Schedule, WanSharing
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.workload import TrainingJob
from planner.topology import Path
from planner.units import GIB

OPTIMIZER_STEP_BYTES = 30.0
"""HBM traffic per parameter of a fused mixed-precision Adam step: read FP32 grad, master
weight and two moments (16 B); write master, moments (12 B) and the BF16 weight (2 B)."""


@dataclass
class DeviceWork:
    """Per-micro-batch work of one pipeline device."""

    index: int
    gpu: GpuSpec
    layers: list[int]
    fwd: KernelTime = field(default_factory=KernelTime)
    bwd: KernelTime = field(default_factory=KernelTime)
    comm_fwd_s: float = 0.0
    comm_bwd_s: float = 0.0
    host_fwd_s: float = 0.0
    """Time the GPU waits for the host to dispatch kernels (forward)."""
    host_bwd_s: float = 0.0
    flops: float = 0.0
    activation_bytes: float = 0.0
    dense_params: float = 0.0
    expert_params: float = 0.0

    @property
    def fwd_s(self) -> float:
        return self.fwd.total_s + self.comm_fwd_s + self.host_fwd_s

    @property
    def bwd_s(self) -> float:
        return self.bwd.total_s + self.comm_bwd_s + self.host_bwd_s

    @property
    def total_s(self) -> float:
        return self.fwd_s + self.bwd_s


@dataclass(frozen=True)
class Transfers:
    """Pipeline point-to-point costs of one iteration."""

    per_device_s: list[float]
    """Added to each device's per-micro-batch time when transfers are not overlapped."""
    period_s: float
    """Longest DP-cell round on a WAN path per micro-batch (a lower bound on the period)."""
    fill_s: float
    """First/last micro-batch transfers on every boundary, plus the DP-cell stagger."""
    wan: list[LinkUse]
    wan_bytes: float
    wan_usd: float
    cell_size: int | None
    """Pipelines per DP-cell on the WAN crossings (None without WAN crossings)."""
    boundaries: list[BoundaryUse]


def cell_size_for(cfg: TrainingConfig, path: Path) -> int:
    """The configuration's DP-cell size on ``path``: 1 for fair sharing, else the stated size
    or ``c*`` (``costmodel.wan.best_cell_size``)."""
    if cfg.wan_sharing is WanSharing.FAIR:
        return 1
    if cfg.dp_cell_size is not None:
        return min(cfg.dp_cell_size, cfg.dp)
    return wan.best_cell_size(cfg.dp, path.bw_gbps, path.bw_with_flows(cfg.tcp_connections))


def boundary_bytes_per_gpu(job: TrainingJob, model: ModelSpec, cfg: TrainingConfig) -> float:
    """Bytes one GPU sends across a stage boundary per micro-batch and direction:
    ``b s h / (cp t_sp)`` activations (Megatron scatters them over TP ranks with SP)."""
    sp_div = cfg.tp if cfg.sequence_parallel and cfg.tp > 1 else 1
    return cfg.micro_batch * job.seq_len / cfg.cp * model.hidden_size * ACT_BYTES / sp_div


def cross_site_reduce_s(
    grad_bytes: float, n_sites: int, bw_gbps: float, rtt_ms: float, pp: int
) -> tuple[float, float]:
    """(seconds, WAN bytes) of one stage's gradient reduction across ``n_sites`` sites after
    the in-site reduction: ``2 (n-1)/n`` of its gradients over the narrowest path, whose rate
    the ``pp`` stages share, plus one RTT per site hop of the ring."""
    wan_bytes = 2.0 * (n_sites - 1) / n_sites * grad_bytes
    bw = bw_gbps * 1e9 / 8.0 / pp
    return wan_bytes / bw + rtt_ms / 1e3 * (n_sites - 1), wan_bytes


def round_trip_period(
    cfg: TrainingConfig, times: list[float], boundaries: list[BoundaryUse]
) -> float:
    """Shortest steady-state period that a WAN round trip allows in 1F1B.

    Across a boundary ``a -> b`` the cycle F_a, F_b, B_b, B_a advances by ``w_a - w_b + 1 = 2``
    micro-batches (warm-ups ``w_d = pp - d - 1``), so ``2 P >= T_a + T_b + 2 t`` with ``t``
    the one-way transfer: ``P >= (T_a + T_b + 2 t) / 2``. With ``v`` interleaved chunks the
    cycle spans three periods and ``v`` transfers each way: ``(T_a + T_b + 2 v t) / 3``; the
    wrap-around from the last device to the first carries no such cycle. GPipe runs all
    forwards first: no term. Derived from the schedule and checked against the replay
    (``planner.simulate``)."""
    if cfg.schedule is Schedule.GPIPE:
        return 0.0
    out = 0.0
    for b in boundaries:
        if not b.link or b.dst_device < b.src_device:
            continue
        pair = times[b.src_device] + times[b.dst_device]
        if cfg.vpp == 1:
            out = max(out, (pair + 2.0 * b.transfer_s) / 2.0)
        else:
            out = max(out, (pair + 2.0 * cfg.vpp * b.transfer_s) / 3.0)
    return out


def _transfers(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    pl: Placement,
    n_chunks: int,
    m: int,
) -> Transfers:
    """Activations forward and their gradients backward across every chunk boundary.

    Per GPU and micro-batch ``b s h / (cp t_sp)`` elements cross a boundary each way
    (Megatron scatters the tensor over the TP ranks with sequence parallelism). Inside a site
    each GPU uses its own NIC. Across sites the ``dp`` pipelines share the WAN path in DP-cells
    (``costmodel.wan``): one pipeline's ``t c`` tensors form one transfer of ``V`` bytes at
    ``min(link, k * per_flow)`` for ``k`` TCP connections (Atlas, Palak et al. 2024).
    """
    per_gpu = boundary_bytes_per_gpu(job, model, cfg)
    per_dev = [0.0] * cfg.pp
    fill, stagger, wan_bytes, wan_usd = 0.0, 0.0, 0.0, 0.0
    rounds: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    cell: int | None = None
    bounds: list[BoundaryUse] = []
    for c in range(n_chunks - 1):
        a, b = c % cfg.pp, (c + 1) % cfg.pp
        path = pl.boundary_path(a, b)
        if path is None:
            raise ValueError(f"no WAN path between the pools of stages {a} and {b}")
        if path.kind == "wan":
            volume = per_gpu * cfg.tp * cfg.cp
            rate = path.bw_with_flows(cfg.tcp_connections)
            x = wan.crossing(volume, cfg.dp, path.bw_gbps, rate, cell_size_for(cfg, path))
            cell = x.cell_size
            key = (path.sites[0], path.sites[-1])
            busy, _, _, sent = rounds.get(key, (0.0, 0.0, 0.0, 0.0))
            rounds[key] = (
                busy + x.round_s,
                path.bw_gbps,
                x.rate_gbps * x.concurrent,
                sent + 2.0 * volume * cfg.dp * m,
            )
            stagger = max(stagger, x.stagger_s)
            t = x.transfer_s + path.latency_ms / 1e3
            bounds.append(
                BoundaryUse(
                    chunk=c,
                    src_device=a,
                    dst_device=b,
                    link=">".join(key),
                    transfer_s=t,
                    latency_s=path.latency_ms / 1e3,
                    round_s=x.round_s,
                    stagger_s=x.stagger_s,
                )
            )
            wan_bytes += 2.0 * volume * cfg.dp * m
            wan_usd += 2.0 * volume * cfg.dp * m / 1e9 * path.egress_usd_per_gb
        else:
            pool = pl.pool_of(a)
            same_node = path.kind == "same-pool" and cfg.tp * cfg.cp * cfg.dp < pool.gpus_per_node
            link = (
                pl.intra_stage_links(a).tp
                if same_node
                else comm.Link(
                    path.bw_gbps * 1e9 / 8.0 * pl.gpu_of(a).efficiency.network,
                    path.latency_ms / 1e3,
                    "network",
                )
            )
            t = comm.p2p_time(per_gpu, link)
            bounds.append(
                BoundaryUse(
                    chunk=c,
                    src_device=a,
                    dst_device=b,
                    link="",
                    transfer_s=t,
                    round_s=t,
                    stagger_s=0.0,
                )
            )
        fill += 2.0 * t
        if not cfg.overlap_pp_comm:
            per_dev[a] += t
            per_dev[b] += t
    period = max((r[0] for r in rounds.values()), default=0.0)
    uses = [
        LinkUse(
            src_site=src,
            dst_site=dst,
            bytes_per_iteration=sent,
            busy_s=2 * busy * m,
            utilisation=0.0,
            bw_gbps=bw_gbps,
            effective_gbps=eff_gbps,
        )
        for (src, dst), (busy, bw_gbps, eff_gbps, sent) in rounds.items()
    ]
    return Transfers(per_dev, period, fill + stagger, uses, wan_bytes, wan_usd, cell, bounds)


@dataclass(frozen=True)
class DataParallel:
    """Gradient synchronisation costs of one device."""

    per_microbatch_s: float
    """FSDP/ZeRO-3 exposed gathers and reductions added to every micro-batch."""
    end_s: float
    """Reduce-scatter/all-reduce after the last backward, before overlap."""
    start_s: float
    """Parameter all-gather before the first forward, before overlap."""
    wan_bytes: float
    wan_usd: float


def _data_parallel(cfg: TrainingConfig, pl: Placement, dev: DeviceWork) -> DataParallel:
    """Gradient reduction and parameter gathers of device ``dev``.

    ZeRO-0: all-reduce of FP32 gradients. ZeRO-1/2 (Megatron distributed optimizer):
    reduce-scatter of FP32 gradients + all-gather of BF16 weights. ZeRO-3/FSDP: per
    micro-batch all-gather of weights forward and backward + reduce-scatter of gradients
    (Rajbhandari et al. 2020, Sec. 7; Zhao et al. 2023, PyTorch FSDP). Dense weights reduce
    over DP x CP; expert weights over DP x CP / EP. With replicas in several sites the
    reduction is hierarchical: inside each site, then across sites over the WAN, whose
    bandwidth the ``pp`` stages share.
    """
    links = pl.intra_stage_links(dev.index)
    share = max(s for _, s in pl.shares[dev.index])
    n_dense = share * cfg.cp
    n_exp = max(1, n_dense // cfg.ep)
    groups = [(dev.dense_params, n_dense, links.dp), (dev.expert_params, n_exp, links.expert_dp)]
    per_mb = end = start = 0.0
    for params, n, link in groups:
        grads, weights = params * GRAD_BYTES, params * WEIGHT_BYTES
        if cfg.zero >= 3:
            per_mb += 2 * comm.all_gather_time(n, weights, link)
            per_mb += comm.reduce_scatter_time(n, grads, link)
        elif cfg.zero >= 1:
            end += comm.reduce_scatter_time(n, grads, link)
            start += comm.all_gather_time(n, weights, link)
        else:
            end += comm.all_reduce_time(n, grads, link)
    wan_bytes = wan_usd = 0.0
    sites = pl.sites_of(dev.index)
    if len(sites) > 1:
        total = (dev.dense_params + dev.expert_params) * GRAD_BYTES * cfg.tp * cfg.cp
        paths = [pl.site_path(sites[0], s) for s in sites[1:]]
        if any(p is None for p in paths):
            raise ValueError(f"no WAN path joins the sites {sites} of stage {dev.index}")
        bw = min(p.bw_with_flows(cfg.tcp_connections) for p in paths if p)
        rtt = max(p.latency_ms for p in paths if p) * 2
        t, wan_bytes = cross_site_reduce_s(total, len(sites), bw, rtt, cfg.pp)
        end += t
        wan_usd = wan_bytes / 1e9 * max(p.egress_usd_per_gb for p in paths if p)
    return DataParallel(per_mb, end, start, wan_bytes, wan_usd)


def _optimizer_s(cfg: TrainingConfig, dev: DeviceWork) -> float:
    """Fused Adam over this GPU's shard: ``OPTIMIZER_STEP_BYTES`` per parameter at HBM rate."""
    dense = dev.dense_params / (cfg.dp * cfg.cp if cfg.zero >= 1 else 1)
    expert = dev.expert_params / (max(1, cfg.dp * cfg.cp // cfg.ep) if cfg.zero >= 1 else 1)
    return kernels.stream_time(dev.gpu, (dense + expert) * OPTIMIZER_STEP_BYTES, 4).total_s


def _microbatches(job: TrainingJob, cfg: TrainingConfig, warnings: list[str]) -> int:
    per_pipeline = job.global_batch_seqs / (cfg.dp * cfg.micro_batch)
    m = max(1, round(per_pipeline))
    if abs(per_pipeline - m) > 1e-9:
        warnings.append(
            f"global batch {job.global_batch_seqs} is not a multiple of dp*micro_batch = "
            f"{cfg.dp * cfg.micro_batch}; using {m} micro-batches per pipeline"
        )
    return m


def _dp_exposed(cfg: TrainingConfig, devices: list[DeviceWork], dps: list[DataParallel]) -> float:
    """DP time left after overlap: device ``d`` finishes its last backward ``sum_{d'<d} B_d'``
    before device 0, so its reduction may run that much longer; the parameter all-gather of
    the next step hides behind the first forward (Megatron-Core overlap-grad-reduce and
    overlap-param-gather)."""
    exposed_end = exposed_start = 0.0
    slack_end = slack_start = 0.0
    for dev, dp in zip(devices, dps, strict=True):
        share = dev.gpu.efficiency.dp_overlap if cfg.overlap_dp_comm else 0.0
        exposed_end = max(exposed_end, dp.end_s - share * dev.bwd_s - slack_end)
        exposed_start = max(exposed_start, dp.start_s - share * dev.fwd_s - slack_start)
        slack_end += dev.bwd_s
        slack_start += dev.fwd_s
    return max(0.0, exposed_end) + max(0.0, exposed_start)


def assemble(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    pl: Placement,
    devices: list[DeviceWork],
    n_chunks: int,
) -> TrainingMetrics:
    """Iteration time, throughput, MFU, memory, energy and footprint from per-device work."""
    warnings: list[str] = []
    m = _microbatches(job, cfg, warnings)
    tr = _transfers(job, model, cfg, pl, n_chunks, m)
    dps = [_data_parallel(cfg, pl, d) for d in devices]
    for dev, dp in zip(devices, dps, strict=True):
        share = dev.gpu.efficiency.dp_overlap if cfg.overlap_dp_comm else 0.0
        hidden = share * (dev.fwd.total_s + dev.bwd.total_s)
        dev.comm_bwd_s += max(0.0, dp.per_microbatch_s - hidden) + tr.per_device_s[dev.index]
    times = [d.total_s for d in devices]
    period = max(tr.period_s, round_trip_period(cfg, times, tr.boundaries))
    t_pipe = pipeline_time(times, m, cfg.vpp, period, tr.fill_s)
    t_dp = _dp_exposed(cfg, devices, dps)
    t_opt = max(_optimizer_s(cfg, d) for d in devices)
    t_over = max(d.gpu.efficiency.step_overhead_s for d in devices)
    t_iter = t_pipe + t_dp + t_opt + t_over

    slow = max(devices, key=lambda d: d.total_s)
    compute_s = m * (slow.fwd.total_s + slow.bwd.total_s)
    comm_s = m * (slow.comm_fwd_s + slow.comm_bwd_s)
    breakdown = TimeBreakdown(
        compute_s=compute_s,
        bubble_s=max(0.0, t_pipe - compute_s - comm_s),
        exposed_comm_s=comm_s,
        dp_exposed_s=t_dp,
        optimizer_s=t_opt,
        overhead_s=t_over,
        iteration_s=t_iter,
    )
    tokens = job.global_batch_tokens
    n_gpus = cfg.n_gpus
    precision = cfg.precision or job.precision
    replicas = cfg.tp * cfg.cp * cfg.dp
    peak = sum(d.gpu.peak_flops(precision) * replicas for d in devices)
    mfpt = model_flops_per_token(model, job.seq_len)
    executed = sum(d.flops * m * replicas for d in devices)
    device_metrics = [
        _device_metrics(job, model, cfg, pl, d, m, t_iter, t_opt, warnings) for d in devices
    ]
    energy = _energy(job, cfg, pl, device_metrics, t_iter, tr, dps)
    wan = [
        u.model_copy(
            update={
                "utilisation": min(1.0, u.busy_s / t_iter),
            }
        )
        for u in tr.wan
    ]
    iterations = job.tokens_to_train / tokens
    return TrainingMetrics(
        job=job.id,
        model=model.id,
        n_gpus=n_gpus,
        config=cfg.model_dump(mode="json", exclude={"placement"}),
        micro_batches=m,
        iteration_time_s=t_iter,
        tokens_per_s=tokens / t_iter,
        tokens_per_s_per_gpu=tokens / t_iter / n_gpus,
        mfu=mfpt * tokens / t_iter / peak,
        hfu=executed / t_iter / peak,
        model_flops_per_token=mfpt,
        bubble_fraction=breakdown.bubble_s / t_iter,
        time_to_train_h=iterations * t_iter / 3600.0,
        breakdown=breakdown,
        devices=device_metrics,
        wan=wan,
        energy=energy,
        boundaries=tr.boundaries,
        dp_cell_size=tr.cell_size,
        fits_memory=all(d.memory.fits for d in device_metrics),
        warnings=warnings,
    )


def _device_metrics(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    pl: Placement,
    dev: DeviceWork,
    m: int,
    t_iter: float,
    t_opt: float,
    warnings: list[str],
) -> DeviceMetrics:
    in_flight = in_flight_microbatches(cfg.schedule, cfg.pp, cfg.vpp, m, dev.index)
    dense_dp = cfg.dp * cfg.cp
    # Transient buffers: the all-gathered layer input (sequence parallelism), its gradient,
    # and the pipeline send/receive tensors: ~4 x b s h elements.
    buffers = 4.0 * cfg.micro_batch * job.seq_len / cfg.cp * model.hidden_size * ACT_BYTES
    mem = stage_memory(
        dev.dense_params,
        dev.expert_params,
        dev.activation_bytes,
        in_flight,
        dense_dp,
        max(1, dense_dp // cfg.ep),
        cfg.zero,
        job.optimizer,
        buffers,
    )
    cap = dev.gpu.hbm_gib
    total = mem.total / GIB
    if total > cap:
        warnings.append(
            f"stage {dev.index} needs {total:.1f} GiB per GPU; {dev.gpu.id} has {cap:.1f} GiB "
            f"(out of memory by {total - cap:.1f} GiB)"
        )
    busy = m * dev.total_s + t_opt
    compute = m * (dev.fwd.compute_s + dev.bwd.compute_s)
    pool = pl.pool_of(dev.index)
    return DeviceMetrics(
        device=dev.index,
        pool=pool.id,
        site=pool.site,
        gpu=dev.gpu.id,
        layers=dev.layers,
        fwd_s=dev.fwd_s,
        bwd_s=dev.bwd_s,
        busy_s=busy,
        idle_s=max(0.0, t_iter - busy),
        compute_s=compute,
        memory_s=m * (dev.fwd.memory_s + dev.bwd.memory_s) + t_opt,
        params=dev.dense_params + dev.expert_params,
        memory=StageMemoryGiB(
            weights=mem.weights / GIB,
            gradients=mem.gradients / GIB,
            optimizer=mem.optimizer / GIB,
            activations=mem.activations / GIB,
            buffers=mem.buffers / GIB,
            reserved=mem.reserved / GIB,
            total=total,
            capacity=cap,
            fits=total <= cap,
        ),
    )


def _energy(
    job: TrainingJob,
    cfg: TrainingConfig,
    pl: Placement,
    device_metrics: list[DeviceMetrics],
    t_iter: float,
    tr: Transfers,
    dps: list[DataParallel],
) -> EnergyMetrics:
    """Power per site and the energy, carbon, water and money of the whole run: the sum of
    ``energy.run_share`` over every device and pool it occupies."""
    iterations = job.tokens_to_train / job.global_batch_tokens
    per_replica = cfg.tp * cfg.cp
    site_w: dict[str, float] = {}
    totals = {"kwh": 0.0, "kg": 0.0, "l": 0.0, "usd": 0.0, "rent": 0.0, "board_w": 0.0}
    for dm in device_metrics:
        gpu, cap = pl.gpu_of(dm.device), cfg.cap_w(dm.device)
        for pool_id, share in pl.shares[dm.device]:
            pool = pl.pools[pool_id]
            site = pl.cluster.site(pool.site)
            n = share * per_replica
            rs = run_share(gpu, pool, site, n, dm.compute_s, dm.memory_s, t_iter, iterations, cap)
            site_w[pool.site] = site_w.get(pool.site, 0.0) + rs.it_j_per_iteration / t_iter
            board, _ = device_energy(gpu, pool, dm.compute_s, dm.memory_s, t_iter, cap)
            totals["board_w"] += n * board / t_iter
            totals["kwh"] += rs.facility_kwh
            totals["kg"] += rs.carbon_kg
            totals["l"] += rs.water_l
            totals["usd"] += rs.electricity_usd
            totals["rent"] += rs.gpu_rental_usd
    by_site = {k: v * pl.cluster.site(k).pue for k, v in site_w.items()}
    facility_w = sum(by_site.values())
    egress_usd = (tr.wan_usd + sum(d.wan_usd for d in dps)) * iterations
    return EnergyMetrics(
        gpu_power_w=totals["board_w"] / cfg.n_gpus,
        it_power_w=sum(site_w.values()),
        facility_power_w=facility_w,
        power_by_site_w=by_site,
        energy_per_iteration_j=facility_w * t_iter,
        energy_to_train_kwh=totals["kwh"],
        carbon_to_train_kg=totals["kg"],
        water_to_train_l=totals["l"],
        cost_to_train_usd=totals["usd"] + totals["rent"] + egress_usd,
        cost_breakdown_usd={
            "electricity": totals["usd"],
            "gpu_rental": totals["rent"],
            "wan_egress": egress_usd,
        },
    )
