"""Candidate configurations of a training job and their reference figures on an unlimited
single pool (solver-free)."""

from __future__ import annotations

import itertools
import math

from planner.costmodel.flops import total_params
from planner.costmodel.kernels import clock_ratio
from planner.costmodel.memory import model_state_bytes
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import PlacementError
from planner.costmodel.training import evaluate_training
from planner.spec.base import Precision, Recompute, Schedule
from planner.spec.cluster import Cluster, GpuPool, Site
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.workload import TrainingJob
from planner.units import GIB

TP_SIZES = (1, 2, 4, 8)
MICRO_BATCHES = (1, 2, 4, 8)
CAP_FRACTIONS = (1.0, 0.8, 0.6)
"""Power caps tried, as fractions of the GPU's maximum cap: Zeus (You et al. NSDI 2023)
finds the energy-optimal H100/A100 caps at 60-80% of the maximum."""
LONG_SEQUENCE = 32768
"""Context parallelism is enumerated from this sequence length (Megatron-Core CP guidance)."""
RECOMPUTES = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)


def pp_options(n_layers: int) -> list[int]:
    """Powers of two and small divisors of the layer count, with at least two layers per
    stage and at most 32 stages (Megatron-LM runs at scale use PP <= 16)."""
    top = min(32, max(1, n_layers // 2))
    opts = {p for p in (1, 2, 4, 8, 16, 32) if p <= top}
    opts |= {p for p in range(2, min(top, 16) + 1) if n_layers % p == 0}
    return sorted(opts)


def cap_levels(gpu: GpuSpec) -> list[float | None]:
    caps: list[float | None] = [None]
    for f in CAP_FRACTIONS[1:]:
        caps.append(max(gpu.power_cap_min_w, round(f * gpu.power_cap_max_w)))
    return list(dict.fromkeys(caps))


def lowest_cap(gpu: GpuSpec) -> float:
    """The lowest power cap the enumeration tries on ``gpu``."""
    caps = [c for c in cap_levels(gpu) if c is not None]
    return min(caps) if caps else gpu.power_cap_max_w


def states_fit(
    model: ModelSpec, job: TrainingJob, gpu: GpuSpec, tp: int, pp: int, dp: int, cp: int, ep: int
) -> bool:
    """Quick lower bound: weights, gradients and optimizer state alone must fit (ZeRO-1)."""
    params = total_params(model) / (tp * pp)
    w, g, o = model_state_bytes(params, dp * cp, 1, job.optimizer)
    return (w + g + o) / GIB < gpu.hbm_gib


def reference_cluster(template: GpuPool, n_gpus: int) -> Cluster:
    nodes = math.ceil(n_gpus / template.gpus_per_node)
    site = Site(id="_reference", power_budget_mw=1e9, pue=1.0)
    pool = template.model_copy(update={"id": "_reference", "site": site.id, "nodes": nodes})
    return Cluster(sites=[site], pools=[pool])


def evaluate_quietly(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
) -> TrainingMetrics | None:
    try:
        return evaluate_training(job, model, cfg, cluster, gpus)
    except (PlacementError, ValueError):
        return None


def raw_configs(
    job: TrainingJob,
    model: ModelSpec,
    gpu: GpuSpec,
    template: GpuPool,
    max_gpus: int,
    stats: dict[str, int],
) -> list[TrainingConfig]:
    """Every candidate of ``job`` on pools like ``template`` whose model states fit (recompute
    not chosen yet: :func:`_reference` picks the cheapest that fits)."""
    out = []
    batch = job.global_batch_seqs
    cps = [1] + ([2, 4, 8] if job.seq_len >= LONG_SEQUENCE else [])
    eps = [1] if model.moe is None else [e for e in (1, 2, 4, 8) if model.moe.n_experts % e == 0]
    levels = cap_levels(gpu)
    for tp, cp, pp, mb in itertools.product(
        TP_SIZES, cps, pp_options(model.n_layers), MICRO_BATCHES
    ):
        if (
            tp * cp > template.gpus_per_node
            or model.n_heads % tp
            or model.kv_heads % min(tp, model.kv_heads)
        ):
            continue
        for dp in range(1, batch // mb + 1):
            n = tp * cp * pp * dp
            if batch % (dp * mb) or n > max_gpus:
                continue
            if (job.max_gpus is not None and n > job.max_gpus) or (
                job.min_gpus is not None and n < job.min_gpus
            ):
                continue  # outside the job's GPU quota
            scheds = [(Schedule.ONE_F_ONE_B, 1)]
            # Megatron's interleaved schedule needs micro-batches in multiples of pp.
            if pp > 1 and model.n_layers % (2 * pp) == 0 and (batch // (dp * mb)) % pp == 0:
                scheds.append((Schedule.INTERLEAVED, 2))
            for ep in eps:
                if (dp * cp) % ep:
                    continue
                stats["enumerated"] += len(scheds) * len(levels)
                if not states_fit(model, job, gpu, tp, pp, dp, cp, ep):
                    stats["pruned_memory"] += len(scheds) * len(levels)
                    continue
                for (sched, vpp), cap in itertools.product(scheds, levels):
                    out.append(
                        TrainingConfig(
                            job=job.id,
                            gpu=gpu.id,
                            tp=tp,
                            pp=pp,
                            dp=dp,
                            cp=cp,
                            ep=ep,
                            micro_batch=mb,
                            schedule=sched,
                            vpp=vpp,
                            power_cap_w=cap,
                            sequence_parallel=tp > 1,
                        )
                    )
    return out


def roofline_s(
    job: TrainingJob, flops_per_token: float, cfg: TrainingConfig, gpu: GpuSpec
) -> float:
    """A lower bound on the iteration time: every executed FLOP (``flops_per_token``: 3x the
    causal forward) at the best kernel efficiency the GPU reaches at this cap."""
    precision = cfg.precision or job.precision
    eff = gpu.efficiency
    top = max(eff.gemm_max, eff.attention_fwd, eff.attention_bwd)
    if precision is Precision.FP8 and eff.fp8_gemm_max is not None:
        top = max(top, eff.fp8_gemm_max)
    rate = cfg.n_gpus * gpu.peak_flops(precision) * top * clock_ratio(gpu, cfg.power_cap_w)
    return job.global_batch_tokens * flops_per_token / rate


class References:
    """Reference figures of candidates on an unlimited single pool, memoising the cheapest
    recompute that fits (memory does not depend on the power cap)."""

    def __init__(
        self,
        job: TrainingJob,
        model: ModelSpec,
        template: GpuPool,
        gpus: dict[str, GpuSpec],
        stats: dict[str, int],
    ) -> None:
        self.job, self.model, self.template, self.gpus, self.stats = (
            job,
            model,
            template,
            gpus,
            stats,
        )
        self.recompute: dict[str, Recompute | None] = {}

    def __call__(self, cfg: TrainingConfig) -> tuple[TrainingConfig, TrainingMetrics] | None:
        ref = reference_cluster(self.template, cfg.n_gpus)
        key = cfg.model_copy(update={"power_cap_w": None}).model_dump_json()
        if key not in self.recompute:
            found = cheapest_fitting(self.job, self.model, cfg, ref, self.gpus)
            self.recompute[key] = found[0].recompute if found else None
            if found is not None and cfg.power_cap_w is None:
                return found
        rc = self.recompute[key]
        if rc is None:
            self.stats["pruned_memory"] += 1
            return None
        placed = cfg.model_copy(update={"recompute": rc})
        m = evaluate_quietly(self.job, self.model, placed, ref, self.gpus)
        return None if m is None else (placed, m)


def cheapest_fitting(
    job: TrainingJob,
    model: ModelSpec,
    base: TrainingConfig,
    ref: Cluster,
    gpus: dict[str, GpuSpec],
) -> tuple[TrainingConfig, TrainingMetrics] | None:
    for rc in RECOMPUTES:
        cfg = base.model_copy(update={"recompute": rc})
        m = evaluate_quietly(job, model, cfg, ref, gpus)
        if m is not None and m.fits_memory:
            return cfg, m
    return None
