"""Cost of one training job under one configuration and placement: the single source of truth.

``evaluate_training`` composes the terms of the sibling modules:

    T_d      = sum over the device's chunks and layers of (fwd + bwd + recompute kernels)
               + exposed TP/CP/EP communication + (FSDP) exposed per-micro-batch gathers
    t_pipe   = m * max(T_max, WAN occupancy per micro-batch) + (sum T_d - T_max)/v + fill
    t_iter   = t_pipe + exposed DP communication + optimizer step + step overhead
    tokens/s = B * s / t_iter;   MFU = model FLOPs/token * tokens/s / sum of dense peaks
    goodput  = tokens/s * f      (failures and checkpoints, ``costmodel.reliability``)

See docs/cost_model.md for every equation with its source.
"""

from __future__ import annotations

from dataclasses import replace

from planner.costmodel import kernels
from planner.costmodel.flops import embedding_params, layer_params
from planner.costmodel.iteration import DeviceWork, assemble
from planner.costmodel.layer import (
    ACT_BYTES,
    LayerCost,
    LayerShape,
    layer_comm_time,
    layer_cost,
)
from planner.costmodel.memory import GRAD_BYTES
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import Placement, resolve_placement
from planner.costmodel.reliability import training_reliability
from planner.spec.base import FfnType, Recompute
from planner.spec.cluster import Cluster
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.workload import TrainingJob

LOGIT_FWD_BYTES = 10.0
"""Per logit element, forward: read BF16 logits, write FP32 softmax, read it for the loss
(fused vocab-parallel cross-entropy, Megatron-LM ``cross_entropy.py``)."""
LOGIT_BWD_BYTES = 6.0
"""Per logit element, backward: read FP32 softmax, write BF16 gradient."""
LOGIT_PEAK_BYTES = 6.0
"""Per logit element, live at the peak with the fused loss: FP32 softmax + BF16 gradient."""
UNFUSED_LOGIT_BYTES = 38.0
"""Per logit element and direction, HBM traffic of an unfused FP32 cross-entropy (counted in
``calibrate/gpt.py``: forward cast 2+4, max 4, shift 4+4, exp 4+4, sum 4, softmax 4+4;
backward one-hot 4, mask 4+4, subtract 8+4, scale 4+4, cast 4+2)."""
UNFUSED_LOSS_KERNELS = 8.0
"""Kernels of that loss in each direction."""
UNFUSED_LOGIT_PEAK_BYTES = 18.0
"""Per logit element live at the peak of the unfused loss: BF16 logits, FP32 copy, shifted,
exp and softmax (forward) or softmax, one-hot, gradient and its BF16 cast (backward)."""
GRAD_ACCUM_BYTES = 10.0
"""Per parameter and micro-batch without gradient-accumulation fusion: read the BF16 gradient,
read and write the FP32 buffer."""


def param_tensors_per_layer(model: ModelSpec) -> int:
    """Parameter tensors of one layer: GPT (LayerNorm and linears with biases: 2 norms x 2 +
    QKV, projection, FC1, FC2 x 2 = 12); Llama-style (RMSNorm, no biases, fused QKV: 2 + 2 +
    3 = 7)."""
    return 12 if model.ffn_type is FfnType.GELU else 7


def split_layers(n_layers: int, chunks: int) -> list[int]:
    """Most even split of ``n_layers`` over ``chunks``; the remainder goes to early chunks so
    the last stage, which carries the LM head, gets the fewest."""
    base, extra = divmod(n_layers, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


def host_wait(
    lc: LayerCost, comm_fwd_s: float, comm_bwd_s: float, gpu: GpuSpec, ops_per_kernel: float
) -> tuple[float, float]:
    """(forward, backward) time one layer's GPU waits for the host to dispatch its kernels.

    Eager PyTorch issues each kernel from the CPU; the GPU runs ahead only while its queue
    is fed, so a layer takes ``max(GPU time, host time)``. Host time: ``host_fwd_us`` per
    forward kernel, ``host_bwd_us`` per forward kernel for its autograd backward, and the
    recomputed forward again at ``host_fwd_us`` (measured by ``calibrate/bench.py``)."""
    e = gpu.efficiency
    n_fwd = lc.fwd.launches * ops_per_kernel
    host_f = n_fwd * e.host_fwd_us * 1e-6
    host_b = (n_fwd * e.host_bwd_us + lc.recompute.launches * ops_per_kernel * e.host_fwd_us) * 1e-6
    gpu_f = lc.fwd.total_s + comm_fwd_s
    gpu_b = lc.bwd.total_s + lc.recompute.total_s + comm_bwd_s
    return max(0.0, host_f - gpu_f), max(0.0, host_b - gpu_b)


def _shape(
    model: ModelSpec, job: TrainingJob, cfg: TrainingConfig, gpu: GpuSpec, device: int
) -> LayerShape:
    """Layer shape on pipeline device ``device``, whose clock follows its own power cap."""
    return LayerShape(
        model=model,
        gpu=gpu,
        micro_batch=cfg.micro_batch,
        seq_len=job.seq_len,
        tp=cfg.tp,
        cp=cfg.cp,
        ep=cfg.ep,
        sequence_parallel=cfg.sequence_parallel and cfg.tp > 1,
        precision=cfg.precision or job.precision,
        attention=cfg.attention,
        recompute=cfg.recompute,
        clock=kernels.clock_ratio(gpu, cfg.cap_w(device)),
    )


def _device_work(
    model: ModelSpec, job: TrainingJob, cfg: TrainingConfig, pl: Placement, chunk_layers: list[int]
) -> list[DeviceWork]:
    """Kernel time, exposed intra-stage communication, FLOPs and activations per device."""
    devices = [DeviceWork(d, pl.gpu_of(d), []) for d in range(cfg.pp)]
    starts = [sum(chunk_layers[:c]) for c in range(len(chunk_layers))]
    cache: dict[tuple[str, float, bool], tuple[LayerCost, float, float]] = {}
    for c, n in enumerate(chunk_layers):
        dev = devices[c % cfg.pp]
        dev.layers.append(n)
        shape = _shape(model, job, cfg, dev.gpu, dev.index)
        kinds: dict[bool, tuple[int, int]] = {}
        for layer in range(starts[c], starts[c] + n):
            flag = model.is_moe_layer(layer)
            count, first = kinds.get(flag, (0, layer))
            kinds[flag] = (count + 1, first)
        for flag, (count, layer) in kinds.items():
            key = (dev.gpu.id, shape.clock, flag)
            if key not in cache:
                lc = layer_cost(shape, layer)
                links = pl.intra_stage_links(dev.index)
                cf, cb = layer_comm_time(lc, shape, links.tp, links.ep, links.cp)
                expose = 1.0
                if cfg.overlap_tp_comm and shape.sequence_parallel:
                    expose = 1.0 - dev.gpu.efficiency.tp_overlap
                cache[key] = (lc, cf * expose, cb * expose)
            lc, cf, cb = cache[key]
            dev.fwd += lc.fwd.scaled(count)
            dev.bwd += (lc.bwd + lc.recompute).scaled(count)
            cb_all = cb + (cf if cfg.recompute is Recompute.FULL else 0.0)
            dev.comm_fwd_s += cf * count
            dev.comm_bwd_s += cb_all * count
            wait_f, wait_b = host_wait(lc, cf, cb_all, dev.gpu, cfg.host_ops_per_kernel)
            dev.host_fwd_s += wait_f * count
            dev.host_bwd_s += wait_b * count
            if not cfg.grad_accumulation_fusion:
                dense, expert = layer_params(model, layer)
                local = dense / cfg.tp + expert / (cfg.tp * cfg.ep)
                n_tensors = param_tensors_per_layer(model)
                acc = kernels.stream_time(dev.gpu, local * GRAD_ACCUM_BYTES, n_tensors)
                host = n_tensors * dev.gpu.efficiency.host_fwd_us * 1e-6
                dev.bwd += acc.scaled(count)
                dev.host_bwd_s += max(0.0, host - acc.total_s) * count
            dev.flops += (lc.flops_fwd + lc.flops_bwd + lc.flops_recompute) * count
            dev.activation_bytes += lc.activation_bytes * count
            dense, expert = layer_params(model, layer)
            dev.dense_params += dense / cfg.tp * count
            dev.expert_params += expert / (cfg.tp * cfg.ep) * count
    _add_embedding_and_head(model, job, cfg, devices[0], devices[(len(chunk_layers) - 1) % cfg.pp])
    return devices


def _add_embedding_and_head(
    model: ModelSpec, job: TrainingJob, cfg: TrainingConfig, first: DeviceWork, last: DeviceWork
) -> None:
    """Embedding lookup on the first device; final norm, LM head and loss on the last."""
    tokens = cfg.micro_batch * job.seq_len / cfg.cp
    h, vocab = model.hidden_size, model.vocab_size / cfg.tp
    emb, head = embedding_params(model)
    first.fwd += kernels.stream_time(first.gpu, tokens * h * ACT_BYTES)
    first.bwd += kernels.stream_time(first.gpu, tokens * h * (ACT_BYTES + GRAD_BYTES))
    first.dense_params += emb / cfg.tp
    shape = _shape(model, job, cfg, last.gpu, last.index)
    g, p, clk = last.gpu, shape.precision, shape.clock
    last.fwd += kernels.gemm_time(g, tokens, vocab, h, p, clk)
    if cfg.loss_fusion:
        loss_f = kernels.stream_time(g, tokens * vocab * LOGIT_FWD_BYTES)
        loss_b = kernels.stream_time(g, tokens * vocab * LOGIT_BWD_BYTES)
        peak = LOGIT_PEAK_BYTES
    else:
        n, k = tokens * vocab * UNFUSED_LOGIT_BYTES, UNFUSED_LOSS_KERNELS
        loss_f = loss_b = kernels.stream_time(g, n, k)
        peak = UNFUSED_LOGIT_PEAK_BYTES
    last.fwd += loss_f
    last.bwd += kernels.gemm_time(g, tokens, h, vocab, p, clk)
    last.bwd += kernels.gemm_time(g, h, vocab, tokens, p, clk)
    last.bwd += loss_b
    last.flops += 3 * 2.0 * tokens * h * vocab
    last.activation_bytes += tokens * vocab * peak
    last.dense_params += (head if head else (emb if cfg.pp > 1 else 0.0)) / cfg.tp + h


def evaluate_training(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
) -> TrainingMetrics:
    """Every figure of ``job`` trained with ``cfg`` on ``cluster``.

    ``gpus`` maps each GPU type id used by the cluster's pools to its spec. Raises
    :class:`~planner.costmodel.placement.PlacementError` when the configuration cannot be
    placed (missing pool, too few GPUs, stages left unplaced).
    """
    pl = resolve_placement(cfg, cluster, gpus)
    chunk_layers = list(cfg.layers_per_stage or split_layers(model.n_layers, cfg.pp * cfg.vpp))
    key = _work_key(model, job, cfg, pl)
    if key not in _WORK:
        if len(_WORK) > _WORK_LIMIT:
            _WORK.clear()
        gpus_held = [pl.gpu_of(d) for d in range(cfg.pp)]
        _WORK[key] = (gpus_held, _device_work(model, job, cfg, pl, chunk_layers))
    devices = [replace(d, layers=list(d.layers)) for d in _WORK[key][1]]
    m = assemble(job, model, cfg, pl, devices, len(chunk_layers))
    rel = training_reliability(m, model, job.optimizer, cluster.reliability)
    return m.model_copy(update={"reliability": rel})


_WORK: dict[tuple[object, ...], tuple[list[GpuSpec], list[DeviceWork]]] = {}
"""Memo of per-device work. Keys name each GPU spec by ``id()``; the entry holds the specs
themselves, so an id cannot be reused by another spec while its entry lives."""
_WORK_LIMIT = 20_000
_NOT_IN_WORK = {
    "dp",
    "placement",
    "tcp_connections",
    "wan_sharing",
    "dp_cell_size",
    "zero_stage",
    "fsdp",
    "overlap_dp_comm",
    "overlap_pp_comm",
    "job",
    "gpu",
}


def _work_key(
    model: ModelSpec, job: TrainingJob, cfg: TrainingConfig, pl: Placement
) -> tuple[object, ...]:
    """What per-device work depends on: the architecture, the sequence, the configuration
    except DP, ZeRO and placement, and each device's GPU spec (by identity) and node fabric
    (memo key)."""
    fields = tuple((k, str(v)) for k, v in cfg if k not in _NOT_IN_WORK)
    devices = tuple(
        (
            id(pl.gpu_of(d)),
            pl.pool_of(d).gpus_per_node,
            pl.pool_of(d).intra_node_bw_gb_s,
            pl.pool_of(d).inter_node_bw_gbps,
            pl.pool_of(d).inter_node_latency_us,
        )
        for d in range(cfg.pp)
    )
    return (model, job.seq_len, job.precision, fields, devices)
