"""The files of an export (solver-free): torchrun host and rank files, Slurm batch scripts, a
DeepSpeed config, vLLM engine lines, and :func:`render`, which turns a plan into the files of
one export format.

torchrun starts one agent per node (``--nnodes``, ``--nproc-per-node``, ``--node-rank``,
``--master-addr``, ``--master-port``) and numbers ranks node after node; the host file lists
every node with its node rank, process count and GPUs (``CUDA_VISIBLE_DEVICES``, in rank
order, so local rank ``i`` runs on the ``i``-th listed GPU). The Slurm script starts one such
agent per node (``--ntasks-per-node=1``); a job over several pools becomes a heterogeneous job
with one component per pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from planner.catalog import Catalog, default_catalog
from planner.launch import (
    DEEPSPEED_SOURCE,
    MASTER_PORT,
    TORCHRUN_SOURCE,
    VLLM_SOURCE,
    JobLaunch,
    NodeLaunch,
    command_lines,
    header,
    job_launches,
    megatron_args,
    megatron_text,
)
from planner.spec.base import Precision, Recompute, Schedule
from planner.spec.problem import Problem

SERVING_SKIPPED = (
    "serving configurations are not part of this format; `planner export --to vllm` writes "
    "their engine lines"
)


@dataclass(frozen=True)
class ExportFile:
    """One file of an export: its name (inside ``--out``) and text."""

    name: str
    text: str


def hosts_tsv(launch: JobLaunch) -> str:
    """One line per node: host, node rank, processes, GPUs (rank order), site, pool, ranks."""
    lines = ["host\tnode_rank\tnproc_per_node\tcuda_visible_devices\tsite\tpool\tranks"]
    for n in launch.nodes:
        gpus = ",".join(map(str, n.gpus))
        ranks = f"{n.ranks[0]}-{n.ranks[-1]}" if n.ranks == _run(n) else ",".join(map(str, n.ranks))
        lines.append(f"{n.host}\t{n.node_rank}\t{n.nproc}\t{gpus}\t{n.site}\t{n.pool}\t{ranks}")
    return "\n".join(lines) + "\n"


def _run(n: NodeLaunch) -> tuple[int, ...]:
    return tuple(range(n.ranks[0], n.ranks[0] + n.nproc))


def ranks_tsv(launch: JobLaunch) -> str:
    """One line per rank: where it runs and its parallel coordinates."""
    node_of = {r: (n.node_rank, i) for n in launch.nodes for i, r in enumerate(n.ranks)}
    lines = ["rank\tsite\tpool\thost\tnode\tgpu\tnode_rank\tlocal_rank\tstage\tdp\tcp\ttp"]
    for s in launch.ranks:
        node_rank, local = node_of[s.rank]
        lines.append(
            f"{s.rank}\t{s.site}\t{s.pool}\t{s.host}\t{s.node}\t{s.gpu}\t{node_rank}\t{local}"
            f"\t{s.stage}\t{s.dp}\t{s.cp}\t{s.tp}"
        )
    return "\n".join(lines) + "\n"


def torchrun_argv(launch: JobLaunch, nproc: str, node_rank: str, master: str) -> str:
    """The torchrun line of one node (values may be shell variables)."""
    return (
        f"torchrun --nnodes {len(launch.nodes)} --nproc-per-node {nproc} "
        f"--node-rank {node_rank} --master-addr {master} --master-port {MASTER_PORT}"
    )


def torchrun_script(launch: JobLaunch) -> str:
    """A script to run on every node: ``bash JOB.torchrun.sh NODE_RANK`` reads its row of
    ``JOB.hosts.tsv`` and starts torchrun with the Megatron-LM arguments."""
    lines = ["#!/usr/bin/env bash", *(f"# {x}" for x in header(launch))]
    lines += [f"# note: {n}" for n in launch.notes]
    lines += [
        f"# torchrun flags as in {TORCHRUN_SOURCE}; MASTER_ADDR: the node of rank 0",
        f"# usage on each node: bash {launch.cfg.job}.torchrun.sh NODE_RANK",
        "set -euo pipefail",
        'HOSTS="$(dirname "$0")/' + launch.cfg.job + '.hosts.tsv"',
        "read -r NPROC GPUS < <(awk -F'\\t' -v r=\"$1\" 'NR > 1 && $2 == r {print $3, $4}' "
        '"$HOSTS")',
        "export CUDA_VISIBLE_DEVICES=$GPUS CUDA_DEVICE_MAX_CONNECTIONS=1",
        torchrun_argv(launch, "$NPROC", "$1", launch.nodes[0].host) + " \\",
        "  pretrain_gpt.py \\",
        *command_lines(megatron_args(launch), "    "),
    ]
    return "\n".join(lines) + "\n"


def _components(launch: JobLaunch) -> list[list[NodeLaunch]] | None:
    """Runs of consecutive nodes (in node-rank order) of one pool: the components of a
    heterogeneous Slurm job, or None when a pool's nodes are not consecutive."""
    runs: list[list[NodeLaunch]] = []
    for n in launch.nodes:
        if runs and runs[-1][0].pool == n.pool:
            runs[-1].append(n)
        else:
            runs.append([n])
    pools = [r[0].pool for r in runs]
    return runs if len(pools) == len(set(pools)) else None


def slurm_script(launch: JobLaunch) -> str:
    """An ``sbatch`` script starting one torchrun agent per node, node rank = task id."""
    job = launch.cfg.job
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job}"]
    parts = _components(launch)
    notes = list(launch.notes)
    if parts is None:
        parts = [launch.nodes]
        notes.append(
            "a pool's nodes are not consecutive in node-rank order: one Slurm component per "
            "pool cannot keep torchrun's numbering; start the nodes with the torchrun files"
        )
    for i, part in enumerate(parts):
        if i:
            lines.append("#SBATCH hetjob")
        lines += [
            f"#SBATCH --nodes={len(part)}",
            "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --gpus-per-node={max(n.nproc for n in part)}",
        ]
    lines += [f"# {x}" for x in header(launch)]
    if len(parts) > 1:
        lines.append(
            "# one heterogeneous-job component per pool, in node-rank order: "
            + "; ".join(f"{k}: pool {p[0].pool} (site {p[0].site})" for k, p in enumerate(parts))
        )
    if len(launch.sites) > 1:
        notes.append(
            "the job spans several sites: the heterogeneous job needs one Slurm cluster (or "
            "federation) that reaches every site; otherwise start each site's nodes with the "
            "torchrun files against the same MASTER_ADDR"
        )
    lines += [f"# note: {n}" for n in notes]
    nodelist = "SLURM_JOB_NODELIST_HET_GROUP_0" if len(parts) > 1 else "SLURM_JOB_NODELIST"
    lines += [
        "set -euo pipefail",
        f'export MASTER_ADDR=$(scontrol show hostnames "${nodelist}" | head -n 1)',
        f"export MASTER_PORT={MASTER_PORT} CUDA_DEVICE_MAX_CONNECTIONS=1",
    ]
    nprocs = [n.nproc for n in launch.nodes]
    nproc, prefix = str(nprocs[0]), ""
    if len(set(nprocs)) > 1:
        # Processes per node rank, picked inside each task (SLURM_PROCID is per task).
        nproc = "${NPROCS[$SLURM_PROCID]}"
        prefix = "NPROCS=(" + " ".join(map(str, nprocs)) + "); "
    het = f" --het-group=0-{len(parts) - 1}" if len(parts) > 1 else ""
    inner = prefix + torchrun_argv(launch, nproc, "$SLURM_PROCID", "$MASTER_ADDR")
    lines.append(f"srun{het} bash -c '{inner} \\")
    args = command_lines(megatron_args(launch), "    ")
    args[-1] += "'"
    lines += ["  pretrain_gpt.py \\", *args]
    return "\n".join(lines) + "\n"


def deepspeed_config(launch: JobLaunch) -> dict[str, Any]:
    """A DeepSpeed config JSON (Megatron-DeepSpeed style: TP and CP come from the training
    script; the config holds batch, precision, ZeRO, activation checkpointing, pipeline)."""
    c, job = launch.cfg, launch.job
    precision = c.precision or job.precision
    doc: dict[str, Any] = {
        "train_batch_size": launch.global_batch,
        "train_micro_batch_size_per_gpu": c.micro_batch,
        "gradient_accumulation_steps": launch.metrics.micro_batches,
        "bf16": {"enabled": precision in (Precision.BF16, Precision.FP8)},
        "fp16": {"enabled": precision is Precision.FP16},
        "zero_optimization": {
            "stage": c.zero,
            "overlap_comm": c.overlap_dp_comm,
            "contiguous_gradients": True,
        },
        "gradient_clipping": 1.0,
        "steps_per_print": 10,
        "wall_clock_breakdown": False,
    }
    if c.recompute is not Recompute.NONE:
        doc["activation_checkpointing"] = {
            "partition_activations": c.tp > 1,
            "contiguous_memory_optimization": False,
            "cpu_checkpointing": False,
        }
    if c.pp > 1:
        doc["pipeline"] = {
            "stages": c.pp,
            "partition": "uniform",
            "activation_checkpoint_interval": 1 if c.recompute is Recompute.FULL else 0,
        }
    return doc


def deepspeed_notes(launch: JobLaunch) -> list[str]:
    """What the DeepSpeed config cannot hold."""
    c = launch.cfg
    notes = [
        f"train_batch_size = micro-batch {c.micro_batch} x gradient_accumulation_steps "
        f"{launch.metrics.micro_batches} x data-parallel size {c.dp}",
        f"tensor parallel {c.tp}, context parallel {c.cp} and the model come from the training "
        "script (Megatron-DeepSpeed arguments), not this file",
    ]
    if c.pp > 1 and c.zero >= 2:
        notes.append(
            f"DeepSpeed's pipeline engine supports ZeRO stage 0-1 only; the plan uses {c.zero}"
        )
    if c.recompute is Recompute.SELECTIVE:
        notes.append(
            "selective recompute (attention only) is a Megatron setting; DeepSpeed's activation "
            "checkpointing recomputes whole layers"
        )
    if c.schedule is Schedule.INTERLEAVED:
        notes.append("DeepSpeed's pipeline engine has no interleaved schedule; it runs 1F1B")
    return notes + launch.notes


def vllm_lines(problem: Problem, catalog: Catalog | None = None) -> list[str]:
    """One ``vllm serve`` line per engine group of ``problem.plan.serving``."""
    cat = catalog or default_catalog()
    if problem.plan is None or not problem.plan.serving:
        return ["# no serving configurations in the plan"]
    out = [f"# engine flags as in {VLLM_SOURCE}"]
    for cfg in problem.plan.serving:
        svc = problem.workloads.service(cfg.service)
        model = cat.model(svc.model)
        name = model.id
        for g in cfg.engines:
            if g.count == 0:
                continue
            pool = problem.cluster.pool(g.pool)
            cap = f", power cap {g.power_cap_w:.0f} W" if g.power_cap_w else ""
            out.append(
                f"# service {svc.id}: {g.count} x {g.role.value} engine on pool {g.pool} "
                f"(site {pool.site}, {g.tp * g.pp} GPU(s) each{cap})"
            )
            out.append(
                f"vllm serve <weights of {name}> --tensor-parallel-size {g.tp} "
                f"--pipeline-parallel-size {g.pp}"
            )
        roles = {g.role.value for g in cfg.engines}
        if "prefill" in roles and "decode" in roles:
            out.append(
                "# prefill and decode run on separate engines (disaggregated): vLLM's KV-cache "
                "hand-off between them is configured separately (--kv-transfer-config) and is "
                "not generated here"
            )
    return out


def render(problem: Problem, fmt: str, catalog: Catalog | None = None) -> list[ExportFile]:
    """The files of export format ``fmt`` (see :data:`planner.launch.FORMATS`) for every
    configuration of ``problem.plan``."""
    if fmt == "vllm":
        return [ExportFile("vllm.sh", "\n".join(vllm_lines(problem, catalog)) + "\n")]
    out = []
    for launch in job_launches(problem, catalog):
        job = launch.cfg.job
        if fmt == "megatron":
            out.append(ExportFile(f"{job}.megatron.sh", megatron_text(launch)))
        elif fmt == "deepspeed":
            out.append(
                ExportFile(f"{job}.deepspeed.json", json.dumps(deepspeed_config(launch), indent=2))
            )
            notes = [f"# {DEEPSPEED_SOURCE}", *(f"# {n}" for n in deepspeed_notes(launch))]
            out.append(ExportFile(f"{job}.deepspeed.notes.txt", "\n".join(notes) + "\n"))
        elif fmt == "torchrun":
            out += [
                ExportFile(f"{job}.hosts.tsv", hosts_tsv(launch)),
                ExportFile(f"{job}.ranks.tsv", ranks_tsv(launch)),
                ExportFile(f"{job}.torchrun.sh", torchrun_script(launch)),
            ]
        elif fmt == "slurm":
            out.append(ExportFile(f"{job}.sbatch", slurm_script(launch)))
        else:
            raise ValueError(f"unknown export format {fmt!r}")
    if problem.plan is not None and problem.plan.serving and fmt != "vllm":
        out.append(ExportFile("serving.txt", f"# {SERVING_SKIPPED}\n"))
    return out


__all__ = [
    "ExportFile",
    "deepspeed_config",
    "deepspeed_notes",
    "hosts_tsv",
    "ranks_tsv",
    "render",
    "slurm_script",
    "torchrun_script",
    "vllm_lines",
]
