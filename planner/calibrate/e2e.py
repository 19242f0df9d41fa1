"""Compare the cost model with the end-to-end runs of ``planner/calibrate/gpt.py``
(solver-free, no PyTorch): the measured step time and peak memory of each configuration
against the prediction for the same GPT, batch and parallel configuration.

The trainer's settings map onto a :class:`~planner.spec.plan.TrainingConfig`: ZeRO-0 (one
all-reduce of FP32 gradients), no sequence parallelism, no communication overlap, flash
attention (``scaled_dot_product_attention``), full recompute when checkpointing, an unfused
FP32 cross-entropy and no gradient-accumulation fusion. It has no data
loader, logging or gradient-norm work, so the comparison sets ``step_overhead_s`` to 0; every
other constant is the catalog's (or a calibrated profile's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.catalog import Catalog
from planner.costmodel.memory import RUNTIME_RESERVED_BYTES
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.training import evaluate_training
from planner.spec.base import AttentionImpl, FfnType, Recompute
from planner.spec.cluster import Cluster, GpuPool, Site
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.workload import TrainingJob
from planner.units import GIB

EAGER_OPS_PER_KERNEL = 1.5
"""Host dispatches per modelled kernel in ``gpt.Block.forward``: 13 kernel-launching ops
(two layer norms, QKV, attention, the head-merge copy, projection, FC1, GELU, FC2, two residual
adds, two bias adds) and 6 views at about a third of the dispatch cost, against the 10 kernels
the cost model counts per layer (counted from the code, not fitted)."""

DEVICE_NAMES = {"NVIDIA H200": "h200-sxm-141gb", "NVIDIA H100 80GB HBM3": "h100-sxm-80gb"}


@dataclass(frozen=True)
class Comparison:
    """One configuration: measured vs predicted."""

    name: str
    measured_step_s: float
    predicted_step_s: float
    measured_peak_gib: float
    predicted_peak_gib: float

    @property
    def step_error(self) -> float:
        return self.predicted_step_s / self.measured_step_s - 1.0

    @property
    def memory_error(self) -> float:
        return self.predicted_peak_gib / self.measured_peak_gib - 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured_step_s": self.measured_step_s,
            "predicted_step_s": self.predicted_step_s,
            "step_error": self.step_error,
            "measured_peak_gib": self.measured_peak_gib,
            "predicted_peak_gib": self.predicted_peak_gib,
            "memory_error": self.memory_error,
        }


def gpt_spec(shape: dict[str, Any]) -> ModelSpec:
    """The trainer's GPT: pre-LN, GELU MLP of 4h, untied embeddings, learned positions."""
    return ModelSpec(
        id=shape["name"] + "-e2e",
        n_layers=shape["n_layers"],
        hidden_size=shape["hidden"],
        n_heads=shape["heads"],
        ffn_hidden_size=4 * shape["hidden"],
        ffn_type=FfnType.GELU,
        vocab_size=shape["vocab"],
        tied_embeddings=False,
        max_seq_len=shape["seq"],
        source="planner/calibrate/gpt.py (GPT-3 Medium/XL shapes, Brown et al. 2020)",
    )


def run_name(cfg: dict[str, Any]) -> str:
    """``gpt3-350m tp1 pp1 dp1 mb2`` (+ `` recompute``)."""
    name = (
        f"{cfg['model']['name']} tp{cfg['tp']} pp{cfg['pp']} dp{cfg['dp']} mb{cfg['micro_batch']}"
    )
    return name + (" recompute" if cfg["recompute"] else "")


def predict(run: dict[str, Any], gpu_id: str, catalog: Catalog) -> TrainingMetrics:
    """The cost model's figures for one measured configuration."""
    cfg = run["config"]
    shape = cfg["model"]
    gpu = catalog.gpus[gpu_id]
    gpu = gpu.model_copy(
        update={"efficiency": gpu.efficiency.model_copy(update={"step_overhead_s": 0.0})}
    )
    site = Site(id="bench", power_budget_mw=1.0)
    pool = GpuPool(
        id="bench",
        site="bench",
        gpu=gpu_id,
        nodes=1,
        gpus_per_node=max(2, cfg["tp"] * cfg["pp"] * cfg["dp"]),
        intra_node_bw_gb_s=gpu.nvlink_bw_gb_s,
        inter_node_bw_gbps=gpu.nic_bw_gbps,
    )
    job = TrainingJob(
        id="e2e",
        model=gpt_spec(shape),
        seq_len=shape["seq"],
        global_batch_seqs=cfg["global_batch"],
        tokens_to_train=float(shape["seq"] * cfg["global_batch"]),
    )
    tc = TrainingConfig(
        job="e2e",
        gpu=gpu_id,
        tp=cfg["tp"],
        pp=cfg["pp"],
        dp=cfg["dp"],
        micro_batch=cfg["micro_batch"],
        recompute=Recompute.FULL if cfg["recompute"] else Recompute.NONE,
        sequence_parallel=False,
        zero_stage=0,
        attention=AttentionImpl.FLASH,
        host_ops_per_kernel=EAGER_OPS_PER_KERNEL,
        loss_fusion=False,
        grad_accumulation_fusion=False,
        overlap_tp_comm=False,
        overlap_dp_comm=False,
        overlap_pp_comm=False,
    )
    return evaluate_training(
        job, gpt_spec(shape), tc, Cluster(sites=[site], pools=[pool]), {gpu_id: gpu}
    )


def compare(path: str | Path, catalog: Catalog) -> list[Comparison]:
    """Measured vs predicted for every run of a ``gpt.py`` output file that completed."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    gpu_id = DEVICE_NAMES[doc["environment"]["gpu"]]
    out = []
    for run in doc["runs"]:
        if run.get("error"):
            continue
        m = predict(run, gpu_id, catalog)
        # Peak allocated memory excludes the CUDA context and library workspaces that the
        # cost model adds as a fixed reserve.
        predicted = max(d.memory.total for d in m.devices) - RUNTIME_RESERVED_BYTES / GIB
        out.append(
            Comparison(
                name=run_name(run["config"]),
                measured_step_s=run["median_step_s"],
                predicted_step_s=m.iteration_time_s,
                measured_peak_gib=max(run["peak_allocated_gib"]),
                predicted_peak_gib=predicted,
            )
        )
    return out
