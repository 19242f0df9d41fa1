"""Validate the cost model against measured runs (schema ``planner-validation-runs/v1``).

Each run states a model, a GPU, a parallel configuration and a measured throughput. The run
becomes a one-pool cluster, a training job and a :class:`TrainingConfig`; the cost model
predicts tokens/s per GPU and the error is ``predicted / measured - 1``.

Fields a run leaves null (or omits) take these documented defaults:

==================  =========================================================================
field               default
==================  =========================================================================
micro_batch         1 (Megatron-LM/-Core scripts at these scales; Narayanan et al. 2021 Sec 5)
vpp                 1 (no interleaving unless stated)
precision           bf16 (fp16 and bf16 share every peak in the catalog)
recompute           none
gpus_per_node       8 (DGX/HGX nodes)
cp, ep              1
dp                  n_gpus / (tp * pp * cp)
sequence_parallel   per framework (below), only when tp > 1
zero_stage          per framework (below); ``fsdp: true`` means ZeRO-3
==================  =========================================================================

Framework defaults (``FRAMEWORK_DEFAULTS``) encode what each framework does unless told
otherwise: Megatron-LM as published in 2021-2022 (no sequence parallelism unless stated,
replicated optimizer, gradient all-reduce after the backward pass, attention scores
materialised: FlashAttention postdates Narayanan et al. 2021 and Korthikanti et al. 2022);
Megatron-Core / NeMo (sequence parallelism, distributed optimizer, TP/DP/PP communication
overlap, fused flash attention: the Megatron-LM README's H100 runs); PyTorch FSDP-style
frameworks (torchtitan, FSDP, DeepSpeed, llm-foundry: flash attention, overlapped sharded DP).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.catalog import Catalog, default_catalog
from planner.costmodel.training import evaluate_training
from planner.io import read_document
from planner.spec.base import AttentionImpl, Precision, Recompute, Schedule
from planner.spec.cluster import Cluster, GpuPool, Site
from planner.spec.model import ModelSpec, MoeSpec
from planner.spec.plan import TrainingConfig
from planner.spec.workload import TrainingJob

SCHEMA = "planner-validation-runs/v1"


@dataclass(frozen=True)
class FrameworkDefaults:
    """What a framework does when a run does not say."""

    sequence_parallel: bool
    zero_stage: int
    attention: AttentionImpl
    overlap_tp: bool
    overlap_dp: bool


_MEGATRON_CORE = FrameworkDefaults(True, 1, AttentionImpl.FLASH, True, True)
_FSDP_STYLE = FrameworkDefaults(False, 3, AttentionImpl.FLASH, False, True)
FRAMEWORK_DEFAULTS: dict[str, FrameworkDefaults] = {
    "megatron-lm": FrameworkDefaults(False, 0, AttentionImpl.EAGER, False, False),
    "megatron-core": _MEGATRON_CORE,
    "megatron": _MEGATRON_CORE,
    "nemo": _MEGATRON_CORE,
    "torchtitan": _FSDP_STYLE,
    "fsdp": _FSDP_STYLE,
    "pytorch-fsdp": _FSDP_STYLE,
    "llm-foundry": _FSDP_STYLE,
    "deepspeed": FrameworkDefaults(False, 1, AttentionImpl.FLASH, False, True),
}
DEFAULT_FRAMEWORK = _MEGATRON_CORE


@dataclass(frozen=True)
class RunResult:
    """One run's outcome: a prediction or a reason it was skipped."""

    id: str
    measured: float | None = None
    predicted: float | None = None
    skipped: str | None = None
    detail: dict[str, float] | None = None

    @property
    def rel_error(self) -> float | None:
        """``predicted / measured - 1``."""
        if self.measured is None or self.predicted is None:
            return None
        return self.predicted / self.measured - 1.0

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``planner validate --json``."""
        if self.skipped is not None:
            return {"id": self.id, "skipped": self.skipped}
        return {
            "id": self.id,
            "measured": self.measured,
            "predicted": self.predicted,
            "rel_error": self.rel_error,
        }


def _first(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def _model(raw: Any, catalog: Catalog) -> ModelSpec:
    if isinstance(raw, str):
        return catalog.model(raw)
    if not isinstance(raw, dict):
        raise ValueError("model must be a catalog name or a mapping")
    moe_raw = raw.get("moe")
    moe = None
    if isinstance(moe_raw, dict):
        moe = MoeSpec(
            n_experts=int(_first(moe_raw, "n_experts", "num_experts", "experts")),
            top_k=int(_first(moe_raw, "top_k", "topk", "experts_per_token", "router_topk")),
            expert_ffn_hidden_size=_first(
                moe_raw, "expert_ffn_hidden_size", "moe_ffn_hidden_size", "ffn_hidden_size"
            ),
            moe_layer_freq=int(_first(moe_raw, "moe_layer_freq", "layer_freq", default=1)),
            n_shared_experts=int(_first(moe_raw, "n_shared_experts", "shared_experts", default=0)),
        )
    ffn_type = str(_first(raw, "ffn_type", "activation", default="gelu")).lower()
    return ModelSpec(
        id=str(_first(raw, "id", "name", default="run-model")),
        n_layers=int(_first(raw, "n_layers", "num_layers")),
        hidden_size=int(_first(raw, "hidden_size", "d_model")),
        n_heads=int(_first(raw, "n_heads", "num_attention_heads")),
        n_kv_heads=_first(raw, "n_kv_heads", "num_key_value_heads", "num_query_groups"),
        head_dim=_first(raw, "head_dim", "kv_channels"),
        ffn_hidden_size=int(_first(raw, "ffn_hidden_size", "intermediate_size")),
        ffn_type="swiglu" if ffn_type in ("swiglu", "silu", "geglu") else "gelu",
        vocab_size=int(_first(raw, "vocab_size", "padded_vocab_size")),
        tied_embeddings=bool(_first(raw, "tied_embeddings", default=False)),
        moe=moe,
    )


def _recompute(raw: Any) -> Recompute:
    text = str(raw or "none").lower()
    if text in ("full", "block", "uniform", "full-block", "true"):
        return Recompute.FULL
    if text.startswith("sel") or text in ("partial", "attention"):
        return Recompute.SELECTIVE
    return Recompute.NONE


def _precision(raw: Any) -> Precision:
    text = str(raw or "bf16").lower()
    if "fp8" in text or "e4m3" in text:
        return Precision.FP8
    if text in ("fp32", "float32"):
        return Precision.FP32
    if text in ("tf32",):
        return Precision.TF32
    return Precision.FP16 if text in ("fp16", "float16", "half") else Precision.BF16


def run_problem(
    run: dict[str, Any], catalog: Catalog
) -> tuple[TrainingJob, ModelSpec, TrainingConfig, Cluster]:
    """Turn one measured run into (job, model, configuration, one-pool cluster)."""
    model = _model(run["model"], catalog)
    gpu = catalog.find_gpu(str(run.get("gpu")))
    if gpu is None:
        raise LookupError(
            f"unknown GPU {run.get('gpu')!r} (catalog: {', '.join(sorted(catalog.gpus))})"
        )
    par = run.get("parallel") or {}
    fw = FRAMEWORK_DEFAULTS.get(str(run.get("framework") or "").lower(), DEFAULT_FRAMEWORK)
    tp, pp = int(_first(par, "tp", default=1)), int(_first(par, "pp", default=1))
    cp, ep = int(_first(par, "cp", default=1)), int(_first(par, "ep", default=1))
    n_gpus = int(run.get("n_gpus") or 0)
    dp = int(_first(par, "dp", default=max(1, n_gpus // (tp * pp * cp))))
    vpp = int(_first(par, "vpp", default=1))
    fsdp = bool(_first(par, "fsdp", default=False))
    zero = 3 if fsdp else int(_first(par, "zero_stage", default=fw.zero_stage))
    sp = bool(_first(par, "sequence_parallel", default=fw.sequence_parallel)) and tp > 1
    seq = int(run["seq_len"])
    gb = int(_first(run, "global_batch_seqs", "global_batch", default=dp))
    precision = _precision(run.get("precision"))
    job = TrainingJob(
        id=str(run.get("id", "run")),
        model=model,
        seq_len=seq,
        global_batch_seqs=gb,
        tokens_to_train=float(seq * gb),
        precision=precision,
    )
    cfg = TrainingConfig(
        job=job.id,
        gpu=gpu.id,
        tp=tp,
        pp=pp,
        dp=dp,
        cp=cp,
        ep=ep,
        micro_batch=int(_first(run, "micro_batch", default=1)),
        schedule=Schedule.INTERLEAVED if vpp > 1 else Schedule.ONE_F_ONE_B,
        vpp=vpp,
        recompute=_recompute(run.get("recompute")),
        sequence_parallel=sp,
        zero_stage=min(zero, 3),
        fsdp=fsdp,
        precision=precision,
        attention=fw.attention,
        overlap_tp_comm=fw.overlap_tp,
        overlap_dp_comm=fw.overlap_dp,
    )
    per_node = int(run.get("gpus_per_node") or 8)
    cluster = Cluster(
        sites=[Site(id="site", power_budget_mw=1e6)],
        pools=[
            GpuPool(
                id="pool",
                site="site",
                gpu=gpu.id,
                nodes=math.ceil(cfg.n_gpus / per_node),
                gpus_per_node=per_node,
                intra_node_bw_gb_s=gpu.nvlink_bw_gb_s,
                inter_node_bw_gbps=gpu.nic_bw_gbps,
            )
        ],
    )
    if run.get("micro_batch") is None and pp == 1:
        cfg = default_micro_batch(job, model, cfg, cluster, catalog)
    return job, model, cfg, cluster


def default_micro_batch(
    job: TrainingJob, model: ModelSpec, cfg: TrainingConfig, cluster: Cluster, catalog: Catalog
) -> TrainingConfig:
    """Without pipeline parallelism nothing needs several micro-batches: take the largest
    micro-batch dividing the per-replica batch that fits in memory (what a tuned run does:
    fewer, larger micro-batches and a longer backward pass to hide the gradient reduction)."""
    per_replica = job.global_batch_seqs // cfg.dp
    for mb in sorted((d for d in range(1, per_replica + 1) if per_replica % d == 0), reverse=True):
        trial = cfg.model_copy(update={"micro_batch": mb})
        if evaluate_training(job, model, trial, cluster, catalog.gpus).fits_memory:
            return trial
    return cfg


def validate_run(run: dict[str, Any], catalog: Catalog | None = None) -> RunResult:
    """Predict one run; a run that cannot be predicted is skipped with its reason."""
    cat = catalog or default_catalog()
    run_id = str(run.get("id", "?"))
    measured = (run.get("measured") or {}).get("tokens_per_s_per_gpu")
    if measured is None:
        return RunResult(run_id, skipped="no measured.tokens_per_s_per_gpu")
    try:
        job, model, cfg, cluster = run_problem(run, cat)
        metrics = evaluate_training(job, model, cfg, cluster, cat.gpus)
    except (LookupError, ValueError, TypeError) as exc:
        return RunResult(run_id, float(measured), skipped=str(exc).splitlines()[0])
    b = metrics.breakdown
    detail = {
        "mfu": metrics.mfu,
        "iteration_s": metrics.iteration_time_s,
        "compute_s": b.compute_s,
        "bubble_s": b.bubble_s,
        "exposed_comm_s": b.exposed_comm_s,
        "dp_exposed_s": b.dp_exposed_s,
        "optimizer_s": b.optimizer_s,
    }
    return RunResult(run_id, float(measured), metrics.tokens_per_s_per_gpu, detail=detail)


def summarise(results: list[RunResult]) -> dict[str, float | int | None]:
    """n, skipped count, median / p90 / max of |rel_error|."""
    errs = sorted(abs(e) for r in results if (e := r.rel_error) is not None)

    def pct(q: float) -> float | None:
        if not errs:
            return None
        pos = q * (len(errs) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return errs[lo] + (errs[hi] - errs[lo]) * (pos - lo)

    return {
        "n": len(results),
        "n_skipped": sum(r.skipped is not None for r in results),
        "median_abs_rel_error": statistics.median(errs) if errs else None,
        "p90_abs_rel_error": pct(0.9),
        "max_abs_rel_error": errs[-1] if errs else None,
    }


def validate_file(path: str | Path, catalog: Catalog | None = None) -> list[RunResult]:
    """Predict every run of a ``planner-validation-runs/v1`` file."""
    doc = read_document(Path(path))
    runs = doc.get("runs")
    if not isinstance(runs, list):
        from planner.errors import InputProblem, PlannerInputError

        raise PlannerInputError(
            [
                InputProblem(
                    str(path),
                    "runs",
                    "missing or not a list",
                    "a list of runs (schema planner-validation-runs/v1)",
                )
            ]
        )
    return [validate_run(r if isinstance(r, dict) else {}, catalog) for r in runs]
