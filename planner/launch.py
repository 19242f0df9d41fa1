"""Launch settings from a plan (solver-free): Megatron-LM arguments, a DeepSpeed config JSON,
torchrun host and rank files, a Slurm batch script, and vLLM lines for serving engines.

Every rank of a training configuration gets a slot (site, pool, node, GPU) from
:func:`planner.describe.describe_training`, in Megatron's rank order (tp-cp-dp-pp). Node
names are placeholders (``<pool>-<node index>``): map them to your machines. The launchers
(torchrun, Slurm) start one agent per node; torchrun numbers ranks node after node, so a plan
can be launched that way only when each node holds consecutive ranks (``JobLaunch.by_node``);
the rank file is the authority either way.

Names are checked by ``tests/test_export.py`` against the frameworks' own definitions:
Megatron-LM ``megatron/training/arguments.py`` (NVIDIA/Megatron-LM main, 2025, megatron-core
0.14-0.15), DeepSpeed's configuration JSON (deepspeed.ai/docs/config-json and
``deepspeed/runtime/config.py``), ``torch.distributed.run`` (PyTorch 2.x, checked on 2.11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from planner.catalog import Catalog, default_catalog
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.training import evaluate_training, split_layers
from planner.describe import describe_training
from planner.spec.base import AttentionImpl, FfnType, Precision, Recompute, Schedule
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.problem import Problem
from planner.spec.workload import TrainingJob

FORMATS = ("megatron", "deepspeed", "torchrun", "slurm", "vllm")
MASTER_PORT = 29500
MEGATRON_SOURCE = (
    "NVIDIA/Megatron-LM megatron/training/arguments.py (main, 2025: megatron-core 0.14-0.15)"
)
DEEPSPEED_SOURCE = "DeepSpeed configuration JSON (deepspeed.ai/docs/config-json)"
TORCHRUN_SOURCE = "torch.distributed.run (torchrun), PyTorch 2.x"
VLLM_SOURCE = "vLLM engine arguments (docs.vllm.ai v0.8.5: vllm serve)"
EXTRA_ARGS = (
    "add your data, tokenizer, optimizer and checkpoint arguments "
    "(--data-path, --tokenizer-type, --lr, --save, ...)"
)


@dataclass(frozen=True)
class RankSlot:
    """Where one rank runs and which parallel coordinates it has."""

    rank: int
    site: str
    pool: str
    node: int
    """Node index inside the pool."""
    gpu: int
    """GPU index inside the node."""
    stage: int
    dp: int
    tp: int
    cp: int
    power_cap_w: float | None

    @property
    def host(self) -> str:
        """Placeholder host name of the node."""
        return host_name(self.pool, self.node)


def host_name(pool: str, node: int) -> str:
    """``<pool>-<node index>``: a placeholder to map to a real machine."""
    return f"{pool}-{node:04d}"


@dataclass(frozen=True)
class NodeLaunch:
    """One node of a job: its ranks in order and the GPUs they use (same order)."""

    node_rank: int
    site: str
    pool: str
    node: int
    ranks: tuple[int, ...]
    gpus: tuple[int, ...]

    @property
    def host(self) -> str:
        return host_name(self.pool, self.node)

    @property
    def nproc(self) -> int:
        return len(self.ranks)


@dataclass
class JobLaunch:
    """One training configuration with everything the launchers need."""

    cfg: TrainingConfig
    job: TrainingJob
    model: ModelSpec
    metrics: TrainingMetrics
    detail: dict[str, Any]
    ranks: list[RankSlot]
    nodes: list[NodeLaunch]
    notes: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.cfg.tp * self.cfg.pp * self.cfg.dp * self.cfg.cp

    @property
    def global_batch(self) -> int:
        """Sequences per step as launched: micro-batch x micro-batches x DP."""
        return self.cfg.micro_batch * self.metrics.micro_batches * self.cfg.dp

    @property
    def by_node(self) -> bool:
        """Whether every node holds consecutive ranks, nodes in rank order (torchrun's
        numbering: node after node)."""
        flat = [r for n in self.nodes for r in n.ranks]
        return flat == list(range(self.world_size))

    @property
    def sites(self) -> list[str]:
        return list(dict.fromkeys(s["site"] for s in self.detail["stages"]))


def _slots(
    cfg: TrainingConfig, detail: dict[str, Any], gpus_per_node: dict[str, int]
) -> list[RankSlot]:
    """Rank slots of every stage row of :func:`describe_training` (GPU ``k`` of a row is the
    row's first GPU plus ``k`` in its pool)."""
    out = []
    block = cfg.tp * cfg.cp
    for row in detail["stages"]:
        gpn = gpus_per_node[row["pool"]]
        first, last = row["ranks"]
        start = row["nodes"][0] * gpn + row["first_gpu_in_node"]
        for k, rank in enumerate(range(first, last + 1)):
            g = start + k
            out.append(
                RankSlot(
                    rank=rank,
                    site=row["site"],
                    pool=row["pool"],
                    node=g // gpn,
                    gpu=g % gpn,
                    stage=rank // (block * cfg.dp),
                    dp=(rank // block) % cfg.dp,
                    tp=rank % cfg.tp,
                    cp=(rank // cfg.tp) % cfg.cp,
                    power_cap_w=row["power_cap_w"],
                )
            )
    return sorted(out, key=lambda s: s.rank)


def _nodes(slots: list[RankSlot]) -> list[NodeLaunch]:
    """Nodes in the order of their lowest rank, each with its ranks in order."""
    groups: dict[tuple[str, int], list[RankSlot]] = {}
    for s in slots:
        groups.setdefault((s.pool, s.node), []).append(s)
    ordered = sorted(groups.values(), key=lambda g: min(s.rank for s in g))
    return [
        NodeLaunch(
            i,
            g[0].site,
            g[0].pool,
            g[0].node,
            tuple(s.rank for s in sorted(g, key=lambda s: s.rank)),
            tuple(s.gpu for s in sorted(g, key=lambda s: s.rank)),
        )
        for i, g in enumerate(ordered)
    ]


def job_launches(problem: Problem, catalog: Catalog | None = None) -> list[JobLaunch]:
    """Every training configuration of ``problem.plan`` with its rank slots and nodes (GPUs
    handed out in plan order, as ``planner plan`` describes them)."""
    cat = catalog or default_catalog()
    if problem.plan is None:
        return []
    gpn = {p.id: p.gpus_per_node for p in problem.cluster.pools}
    offset: dict[str, int] = {}
    out = []
    for cfg in problem.plan.training:
        job = problem.workloads.training_job(cfg.job)
        model = cat.model(job.model)
        m = evaluate_training(job, model, cfg, problem.cluster, cat.gpus)
        detail = describe_training(cfg, m, problem, cat, offset)
        slots = _slots(cfg, detail, gpn)
        launch = JobLaunch(cfg, job, model, m, detail, slots, _nodes(slots))
        launch.notes.extend(_notes(launch))
        out.append(launch)
    return out


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def header(launch: JobLaunch) -> list[str]:
    """Plain-words summary: world size, rank order, and where the ranks run (sites)."""
    c, m = launch.cfg, launch.model
    lines = [
        f"job {c.job}: {m.name or m.id} on {launch.world_size} x {c.gpu}",
        f"world size {launch.world_size} = TP {c.tp} x PP {c.pp} x DP {c.dp} x CP {c.cp}"
        + (f" (EP {c.ep} inside DP x CP)" if c.ep > 1 else ""),
        f"rank order: {launch.detail['rank_order']}",
    ]
    sites = launch.sites
    if len(sites) > 1:
        lines.append(f"ranks span {len(sites)} sites: {', '.join(sites)}")
    for row in launch.detail["stages"]:
        layers = ", ".join(_span(a, b) for a, b in row["layers"])
        cap = f", cap {row['power_cap_w']:.0f} W" if row["power_cap_w"] else ""
        lines.append(
            f"  stage {row['stage']} (layers {layers}), DP replicas "
            f"{_span(*row['dp_replicas'])}: ranks {_span(*row['ranks'])} in site {row['site']}, "
            f"pool {row['pool']}, nodes {_span(*row['nodes'])}{cap}"
        )
    for x in launch.detail["wan_crossings"]:
        lines.append(
            f"  WAN crossing stage {x['from_stage']} -> {x['to_stage']}: "
            f"{' > '.join(x['sites'])}, {x['bw_gbps']:g} Gbps, RTT {x['rtt_ms']:g} ms, "
            f"{x['tcp_connections']} TCP connection(s) per transfer; only pipeline activations "
            "and their gradients cross it"
        )
    return lines


def _notes(launch: JobLaunch) -> list[str]:
    """What the launch settings cannot say, or say differently from the plan."""
    c, job, notes = launch.cfg, launch.job, []
    if launch.global_batch != job.global_batch_seqs:
        notes.append(
            f"global batch {job.global_batch_seqs} is not a multiple of micro_batch x DP; "
            f"launched with {launch.global_batch} sequences per step"
        )
    stage_sites: dict[int, set[str]] = {}
    for row in launch.detail["stages"]:
        stage_sites.setdefault(row["stage"], set()).add(row["site"])
    if any(len(s) > 1 for s in stage_sites.values()):
        notes.append(
            "data-parallel replicas of one stage sit in several sites: the gradient "
            "all-reduce crosses the WAN"
        )
    if launch.detail["wan_crossings"] and c.wan_sharing.value == "temporal":
        notes.append(
            "the plan's DP-cell rotation on WAN crossings (temporal sharing) is the planner's "
            "schedule, not a Megatron-LM feature: stock Megatron-LM sends every pipeline's "
            "transfer at once (fair sharing)"
        )
    if launch.detail["wan_crossings"]:
        notes.append(
            f"WAN transfers use {c.tcp_connections} TCP connection(s): with NCCL's socket "
            "transport, NCCL_SOCKET_NTHREADS x NCCL_NSOCKS_PERTHREAD sets them"
        )
    if c.schedule is Schedule.GPIPE and c.pp > 1:
        notes.append("Megatron-LM has no GPipe schedule: it runs 1F1B (same bubble, less memory)")
    caps = {s.power_cap_w for s in launch.ranks}
    if caps != {None}:
        notes.append(
            "power caps are not a framework setting: set them on each node before launch "
            "(nvidia-smi -i <gpus> -pl <watts>; per stage: "
            + ", ".join(
                f"{row['stage']}: {row['power_cap_w']:.0f} W" for row in _uniq_stages(launch)
            )
            + ")"
        )
    if not launch.by_node:
        notes.append(
            "some node holds non-consecutive ranks: torchrun and the Slurm script number ranks "
            "node after node and cannot launch this layout as is; use the rank file with a "
            "launcher that sets RANK per process"
        )
    return notes


def _uniq_stages(launch: JobLaunch) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for row in launch.detail["stages"]:
        seen.setdefault(row["stage"], row)
    return [r for r in seen.values() if r["power_cap_w"]]


def _layout_args(cfg: TrainingConfig, model: ModelSpec) -> list[tuple[str, str | None]]:
    """Virtual stages and uneven splits: even chunks need only the layers per virtual
    stage; any other split is spelled out as a pipeline layout (``E`` embedding, ``t``
    layers, ``L`` loss; chunk ``c`` on pipeline rank ``c % pp``, as in the cost model)."""
    chunks = cfg.layers_per_stage or split_layers(model.n_layers, cfg.pp * cfg.vpp)
    if len(set(chunks)) == 1:
        if cfg.vpp > 1:
            return [("--num-layers-per-virtual-pipeline-stage", str(chunks[0]))]
        return []
    parts = [f"t*{n}" if n > 1 else "t" * n for n in chunks]
    parts[0], parts[-1] = "E" + parts[0], parts[-1] + "L"
    return [("--pipeline-model-parallel-layout", "|".join(parts))]


def _architecture_args(model: ModelSpec) -> list[tuple[str, str | None]]:
    a: list[tuple[str, str | None]] = [
        ("--num-layers", str(model.n_layers)),
        ("--hidden-size", str(model.hidden_size)),
        ("--ffn-hidden-size", str(model.ffn_hidden_size)),
        ("--num-attention-heads", str(model.n_heads)),
    ]
    if model.kv_heads != model.n_heads:
        a += [("--group-query-attention", None), ("--num-query-groups", str(model.kv_heads))]
    if model.head_dim is not None and model.head_dim * model.n_heads != model.hidden_size:
        a.append(("--kv-channels", str(model.head_dim)))
    if model.ffn_type is FfnType.SWIGLU:
        # Llama-style blocks (the cost model's SwiGLU layer: RMSNorm, RoPE, no biases).
        a += [
            ("--swiglu", None),
            ("--normalization", "RMSNorm"),
            ("--position-embedding-type", "rope"),
            ("--disable-bias-linear", None),
        ]
    if not model.tied_embeddings:
        a.append(("--untie-embeddings-and-output-weights", None))
    moe = model.moe
    if moe is not None:
        a += [("--num-experts", str(moe.n_experts)), ("--moe-router-topk", str(moe.top_k))]
        if model.expert_ffn != model.ffn_hidden_size:
            a.append(("--moe-ffn-hidden-size", str(model.expert_ffn)))
        if moe.n_shared_experts:
            size = moe.n_shared_experts * model.expert_ffn
            a.append(("--moe-shared-expert-intermediate-size", str(size)))
        if moe.moe_layer_freq > 1:
            # The cost model's MoE layers are every freq-th one (the last of each group).
            pattern = [int(model.is_moe_layer(i)) for i in range(model.n_layers)]
            a.append(("--moe-layer-freq", str(pattern).replace(" ", "")))
    return a


def _memory_args(cfg: TrainingConfig) -> list[tuple[str, str | None]]:
    """Recompute, optimizer sharding and communication overlap."""
    a: list[tuple[str, str | None]] = []
    if cfg.recompute is Recompute.SELECTIVE:
        a.append(("--recompute-granularity", "selective"))
    elif cfg.recompute is Recompute.FULL:
        a += [
            ("--recompute-granularity", "full"),
            ("--recompute-method", "uniform"),
            ("--recompute-num-layers", "1"),
        ]
    if cfg.zero == 1:
        a.append(("--use-distributed-optimizer", None))
    elif cfg.zero >= 2:
        strategy = "optim_grads" if cfg.zero == 2 else "optim_grads_params"
        a += [
            ("--use-megatron-fsdp", None),
            ("--data-parallel-sharding-strategy", strategy),
            ("--ckpt-format", "fsdp_dtensor"),
        ]
    if cfg.overlap_dp_comm and cfg.dp * cfg.cp > 1:
        a.append(("--overlap-grad-reduce", None))
        if cfg.zero >= 1:
            a.append(("--overlap-param-gather", None))
    if cfg.overlap_tp_comm and cfg.tp > 1 and cfg.sequence_parallel:
        a.append(("--tp-comm-overlap", None))
    if not cfg.overlap_pp_comm and cfg.vpp > 1:
        a.append(("--no-overlap-p2p-communication", None))
    return a


def megatron_args(launch: JobLaunch) -> list[tuple[str, str | None]]:
    """Megatron-LM (``pretrain_gpt.py``) arguments of one job: ``(flag, value or None)``."""
    c, model, job = launch.cfg, launch.model, launch.job
    a: list[tuple[str, str | None]] = [
        ("--tensor-model-parallel-size", str(c.tp)),
        ("--pipeline-model-parallel-size", str(c.pp)),
        ("--context-parallel-size", str(c.cp)),
    ]
    if model.moe is not None:
        a.append(("--expert-model-parallel-size", str(c.ep)))
    if c.sequence_parallel and c.tp > 1:
        a.append(("--sequence-parallel", None))
    a += _layout_args(c, model)
    a += [
        ("--micro-batch-size", str(c.micro_batch)),
        ("--global-batch-size", str(launch.global_batch)),
    ]
    a += _memory_args(c)
    a += _architecture_args(model)
    a += [
        ("--seq-length", str(job.seq_len)),
        ("--max-position-embeddings", str(max(job.seq_len, model.max_seq_len or 0))),
    ]
    precision = c.precision or job.precision
    if precision is Precision.BF16:
        a.append(("--bf16", None))
    elif precision is Precision.FP16:
        a.append(("--fp16", None))
    elif precision is Precision.FP8:
        a += [("--bf16", None), ("--fp8-format", "hybrid")]
    backend = "flash" if c.attention is AttentionImpl.FLASH else "unfused"
    a.append(("--attention-backend", backend))
    if c.loss_fusion:
        a.append(("--cross-entropy-loss-fusion", None))
    if not c.grad_accumulation_fusion:
        a.append(("--no-gradient-accumulation-fusion", None))
    iters = math.ceil(job.tokens_to_train / (launch.global_batch * job.seq_len))
    a.append(("--train-iters", str(iters)))
    return a


def command_lines(argv: list[tuple[str, str | None]], indent: str = "  ") -> list[str]:
    """One ``flag value \\`` per line (the last without the backslash)."""
    parts = [f"{indent}{f} {v}" if v is not None else f"{indent}{f}" for f, v in argv]
    return [p + " \\" for p in parts[:-1]] + parts[-1:]


def megatron_text(launch: JobLaunch) -> str:
    """The Megatron-LM command line of one job with its summary as comments."""
    lines = [f"# {x}" for x in header(launch)]
    lines += [f"# note: {n}" for n in launch.notes]
    lines += [f"# Megatron-LM arguments as in {MEGATRON_SOURCE}", f"# {EXTRA_ARGS}"]
    lines.append("pretrain_gpt.py \\")
    lines += command_lines(megatron_args(launch))
    return "\n".join(lines) + "\n"


__all__ = [
    "FORMATS",
    "JobLaunch",
    "NodeLaunch",
    "RankSlot",
    "command_lines",
    "header",
    "job_launches",
    "megatron_args",
    "megatron_text",
]
