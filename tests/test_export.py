"""`planner export`: every format for the plan of every instance, names checked against the
frameworks' own definitions, every rank placed once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner import load, plan
from planner.cli import app
from planner.launch import FORMATS, job_launches, megatron_args
from planner.launchers import deepspeed_config, render
from planner.spec.problem import Problem
from tests.conftest import ROOT

runner = CliRunner()

# Megatron-LM: flags defined in megatron/training/arguments.py of NVIDIA/Megatron-LM (main,
# 2025; megatron-core 0.14-0.15 line), read there: _add_network_size_args,
# _add_training_args, _add_mixed_precision_args, _add_distributed_args, _add_data_args,
# _add_moe_args, _add_transformer_engine_args, _add_checkpointing_args.
MEGATRON_FLAGS = {
    "--tensor-model-parallel-size",
    "--pipeline-model-parallel-size",
    "--pipeline-model-parallel-layout",
    "--num-layers-per-virtual-pipeline-stage",
    "--context-parallel-size",
    "--expert-model-parallel-size",
    "--sequence-parallel",
    "--micro-batch-size",
    "--global-batch-size",
    "--recompute-granularity",
    "--recompute-method",
    "--recompute-num-layers",
    "--use-distributed-optimizer",
    "--use-megatron-fsdp",
    "--data-parallel-sharding-strategy",
    "--ckpt-format",
    "--overlap-grad-reduce",
    "--overlap-param-gather",
    "--tp-comm-overlap",
    "--no-overlap-p2p-communication",
    "--num-layers",
    "--hidden-size",
    "--ffn-hidden-size",
    "--num-attention-heads",
    "--group-query-attention",
    "--num-query-groups",
    "--kv-channels",
    "--swiglu",
    "--normalization",
    "--position-embedding-type",
    "--disable-bias-linear",
    "--untie-embeddings-and-output-weights",
    "--num-experts",
    "--moe-router-topk",
    "--moe-ffn-hidden-size",
    "--moe-shared-expert-intermediate-size",
    "--moe-layer-freq",
    "--seq-length",
    "--max-position-embeddings",
    "--bf16",
    "--fp16",
    "--fp8-format",
    "--attention-backend",
    "--cross-entropy-loss-fusion",
    "--no-gradient-accumulation-fusion",
    "--train-iters",
}
# DeepSpeed: keys of the configuration JSON as documented at deepspeed.ai/docs/config-json
# (batch size, bf16/fp16, zero_optimization, activation_checkpointing, gradient_clipping,
# steps_per_print, wall_clock_breakdown) and the "pipeline" section read by
# deepspeed/runtime/config.py get_pipeline_config (DeepSpeed 0.14+).
DEEPSPEED_KEYS = {
    "train_batch_size": None,
    "train_micro_batch_size_per_gpu": None,
    "gradient_accumulation_steps": None,
    "gradient_clipping": None,
    "steps_per_print": None,
    "wall_clock_breakdown": None,
    "bf16": {"enabled"},
    "fp16": {"enabled"},
    "zero_optimization": {"stage", "overlap_comm", "contiguous_gradients"},
    "activation_checkpointing": {
        "partition_activations",
        "contiguous_memory_optimization",
        "cpu_checkpointing",
    },
    "pipeline": {"stages", "partition", "activation_checkpoint_interval"},
}
# torchrun: option strings of torch.distributed.run.get_args_parser(), PyTorch 2.11.
TORCHRUN_FLAGS = {"--nnodes", "--nproc-per-node", "--node-rank", "--master-addr", "--master-port"}
SBATCH_OPTIONS = {"--job-name", "--nodes", "--ntasks-per-node", "--gpus-per-node"}
# vLLM: `vllm serve` engine arguments (docs.vllm.ai, v0.8.5).
VLLM_FLAGS = {"--tensor-parallel-size", "--pipeline-parallel-size"}

INSTANCES = sorted((ROOT / "instances").glob("*.yaml"))


def _planned(path: Path) -> Problem | None:
    """The instance with its plan: its plan: section, else the greedy plan (training and
    services; fast), else milp's when greedy finds none."""
    problem = load(path)
    if problem.plan is not None:
        return problem
    result = plan(problem, backend="greedy")
    if result.plan is None:
        result = plan(problem, backend="milp")
    return None if result.plan is None else problem.model_copy(update={"plan": result.plan})


def _flags(text: str) -> list[str]:
    return re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text)


@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: p.stem)
def test_every_export_of_every_instance_plan(path: Path) -> None:
    problem = _planned(path)
    if problem is None:
        assert path.stem == "tiny-infeasible-405b"
        return
    assert problem.plan is not None
    launches = job_launches(problem)
    assert len(launches) == len(problem.plan.training)
    placed: set[tuple[str, int, int]] = set()
    for launch in launches:
        c = launch.cfg
        assert launch.world_size == c.tp * c.pp * c.dp * c.cp == c.n_gpus
        ranks = [s.rank for s in launch.ranks]
        assert sorted(ranks) == list(range(launch.world_size)), "every rank exactly once"
        gpus = {(s.pool, s.node, s.gpu) for s in launch.ranks}
        assert len(gpus) == launch.world_size and not gpus & placed, "one rank per GPU"
        placed |= gpus
        for s in launch.ranks:
            pool = problem.cluster.pool(s.pool)
            assert s.node < pool.nodes and s.gpu < pool.gpus_per_node
            assert s.rank == s.tp + c.tp * (s.cp + c.cp * (s.dp + c.dp * s.stage))
        args = dict(megatron_args(launch))
        assert set(args) <= MEGATRON_FLAGS
        sizes = [int(args[f"--{k}-parallel-size"]) for k in ("tensor-model", "pipeline-model")]
        assert sizes[0] * sizes[1] * c.dp * int(args["--context-parallel-size"]) == c.n_gpus
        assert (
            int(args["--global-batch-size"]) == c.micro_batch * c.dp * launch.metrics.micro_batches
        )
        ds = deepspeed_config(launch)
        for key, value in ds.items():
            assert key in DEEPSPEED_KEYS
            if isinstance(value, dict):
                assert set(value) <= (DEEPSPEED_KEYS[key] or set())
        assert ds["train_batch_size"] == (
            ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * c.dp
        )
    for fmt in FORMATS:
        files = {f.name: f.text for f in render(problem, fmt)}
        assert files
        for name, text in files.items():
            _check_file(name, text, launches)


def _check_file(name: str, text: str, launches: list) -> None:
    by_job = {lch.cfg.job: lch for lch in launches}
    job = next((j for j in by_job if name.startswith(j + ".")), "")
    if name.endswith(".megatron.sh"):
        assert set(_flags(text.split("pretrain_gpt.py")[1])) <= MEGATRON_FLAGS
    elif name.endswith(".deepspeed.json"):
        assert set(json.loads(text)) <= set(DEEPSPEED_KEYS)
    elif name.endswith(".ranks.tsv"):
        rows = [line.split("\t") for line in text.splitlines()[1:]]
        assert sorted(int(r[0]) for r in rows) == list(range(by_job[job].world_size))
    elif name.endswith(".hosts.tsv"):
        rows = [line.split("\t") for line in text.splitlines()[1:]]
        assert sum(int(r[2]) for r in rows) == by_job[job].world_size
        assert [int(r[1]) for r in rows] == list(range(len(rows)))
        if by_job[job].by_node:
            firsts = [int(r[6].split("-")[0].split(",")[0]) for r in rows]
            assert firsts == sorted(firsts)
    elif name.endswith(".torchrun.sh"):
        launcher = text.split("pretrain_gpt.py")[0]
        assert set(_flags(launcher.split("torchrun", 1)[1])) <= TORCHRUN_FLAGS
        assert set(_flags(text.split("pretrain_gpt.py")[1])) <= MEGATRON_FLAGS
    elif name.endswith(".sbatch"):
        directives = re.findall(r"^#SBATCH (\S+)", text, re.M)
        options = {d.split("=")[0] for d in directives if d != "hetjob"}
        assert options <= SBATCH_OPTIONS
        nodes = sum(int(d.split("=")[1]) for d in directives if d.startswith("--nodes="))
        assert nodes == len(by_job[job].nodes)
        launcher = text.split("srun", 1)[1].split("pretrain_gpt.py")[0]
        assert set(_flags(launcher)) - {"--het-group"} <= TORCHRUN_FLAGS
    elif name == "vllm.sh":
        lines = [line for line in text.splitlines() if line.startswith("vllm serve")]
        for line in lines:
            assert set(_flags(line)) <= VLLM_FLAGS
    else:
        assert name.endswith((".notes.txt", "serving.txt")), name


def test_uneven_split_is_a_megatron_layout() -> None:
    """32 layers over 3 stages: Megatron's layout string, parsed as Megatron parses it
    (megatron/core/transformer/pipeline_parallel_layer_layout.py), has 32 decoder layers on
    3 stages with the embedding first and the loss last."""
    problem = load(ROOT / "instances" / "quickstart.yaml")
    assert problem.plan is not None
    cfg = problem.plan.training[0].model_copy(update={"pp": 3, "dp": 8})
    problem = problem.model_copy(
        update={"plan": problem.plan.model_copy(update={"training": [cfg]})}
    )
    args = dict(megatron_args(job_launches(problem)[0]))
    layout = args["--pipeline-model-parallel-layout"]
    unrolled = re.sub(r"(.)\*(\d+)", lambda m: m.group(1) * int(m.group(2)), layout)
    stages = unrolled.split("|")
    assert len(stages) == 3 and sum(s.count("t") for s in stages) == 32
    assert unrolled.startswith("E") and unrolled.endswith("L")


def test_saved_plan_alone_exports(tmp_path: Path) -> None:
    """The quickstart: `planner plan --out plan.json`, then `planner export plan.json`."""
    saved = tmp_path / "plan.json"
    res = runner.invoke(
        app, ["plan", str(ROOT / "instances" / "quickstart.yaml"), "--out", str(saved)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(saved), "--to", "megatron"])
    assert res.exit_code == 0, res.output
    assert "--tensor-model-parallel-size 2" in res.output and "pretrain_gpt.py" in res.output
    res = runner.invoke(app, ["export", str(saved), "--to", "torchrun", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "llama3-8b-pretrain.ranks.tsv").exists()
    res = runner.invoke(app, ["evaluate", str(saved), "--json"])
    assert res.exit_code == 0, res.output


def test_export_without_a_plan_is_one_line() -> None:
    res = runner.invoke(
        app, ["export", str(ROOT / "instances" / "tiny-2site-slow-wan.yaml"), "--to", "slurm"]
    )
    assert res.exit_code == 2
    assert "no plan to export" in res.output and "Traceback" not in res.output


def test_multi_site_export_says_how_ranks_span_sites() -> None:
    problem = load(ROOT / "instances" / "geo-2site-llama70b.yaml")
    text = {f.name: f.text for f in render(problem, "slurm")}["llama3-70b-geo.sbatch"]
    assert "ranks span 2 sites" in text and "WAN crossing" in text
    assert "#SBATCH hetjob" in text
