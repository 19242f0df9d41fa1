"""A small GPT trained on synthetic tokens, with Megatron-style TP, 1F1B PP and DP, to
measure step time and peak memory end to end (needs PyTorch; CUDA+NCCL, or CPU+gloo for
correctness checks).

Mixed precision as in Megatron-LM: BF16 weights and activations, FP32 gradient accumulation
buffer, FP32 master weights and Adam moments (2 + 4 + 12 bytes per parameter), ZeRO-0.
TP (Shoeybi et al. 2019): column-parallel QKV and FC1, row-parallel projection and FC2 with an
all-reduce, vocab-parallel embedding and LM head with a vocab-parallel cross-entropy; no
sequence parallelism. PP: 1F1B with blocking send/recv. DP: one all-reduce of the FP32
gradients after the last backward (no overlap). Attention: ``scaled_dot_product_attention``
(flash kernel on GPU), causal.

Run: ``python -m planner.calibrate.gpt OUT.json`` (spawns one process per GPU per config).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


@dataclass(frozen=True)
class GptShape:
    """Architecture of the test GPT (GPT-3 Medium/XL-like, Brown et al. 2020 Table 2.1)."""

    name: str
    n_layers: int
    hidden: int
    heads: int
    vocab: int = 51200
    seq: int = 2048


@dataclass(frozen=True)
class RunConfig:
    """One measured configuration."""

    model: GptShape
    tp: int = 1
    pp: int = 1
    dp: int = 1
    micro_batch: int = 1
    global_batch: int = 8
    recompute: bool = False
    steps: int = 8
    warmup: int = 3

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def micro_batches(self) -> int:
        return self.global_batch // (self.dp * self.micro_batch)


@dataclass
class Measured:
    """What one configuration measured (rank 0 of the last stage reports)."""

    config: dict[str, Any]
    step_s: list[float] = field(default_factory=list)
    median_step_s: float = 0.0
    peak_allocated_gib: list[float] = field(default_factory=list)
    """Per rank: ``torch.cuda.max_memory_allocated``."""
    peak_reserved_gib: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


# --- tensor-parallel building blocks -------------------------------------------------------


class _CopyToTp(torch.autograd.Function):
    """Identity forward, all-reduce backward (Megatron's ``f``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        g = g.contiguous()
        dist.all_reduce(g, group=ctx.group)
        return g, None


class _ReduceFromTp(torch.autograd.Function):
    """All-reduce forward, identity backward (Megatron's ``g``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        x = x.contiguous()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        return g, None


class _VocabParallelXent(torch.autograd.Function):
    """Cross-entropy over logits split by vocabulary across TP ranks (Megatron-LM)."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, start: int, group: Any
    ) -> torch.Tensor:
        logits = logits.float()
        local_max = logits.max(dim=-1).values
        if group is not None:
            dist.all_reduce(local_max, op=dist.ReduceOp.MAX, group=group)
        logits = logits - local_max.unsqueeze(-1)
        n = logits.shape[-1]
        mask = (target < start) | (target >= start + n)
        idx = (target - start).clamp(0, n - 1)
        picked = logits.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        picked = picked.masked_fill(mask, 0.0)
        exp = logits.exp()
        sum_exp = exp.sum(dim=-1)
        if group is not None:
            dist.all_reduce(picked, group=group)
            dist.all_reduce(sum_exp, group=group)
        loss = sum_exp.log() - picked
        softmax = exp / sum_exp.unsqueeze(-1)
        ctx.save_for_backward(softmax, idx, mask)
        return loss.mean()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        softmax, idx, mask = ctx.saved_tensors
        grad = softmax
        onehot = torch.zeros_like(grad).scatter_(-1, idx.unsqueeze(-1), 1.0)
        onehot = onehot * (~mask).unsqueeze(-1)
        grad = (grad - onehot) * (g / idx.numel())
        return grad.to(torch.bfloat16), None, None, None


class Block(nn.Module):
    """Pre-LN transformer layer with TP-split attention heads and MLP."""

    def __init__(self, shape: GptShape, tp: int, group: Any) -> None:
        super().__init__()
        h, self.tp, self.group = shape.hidden, tp, group
        self.heads = shape.heads // tp
        self.head_dim = h // shape.heads
        self.ln1 = nn.LayerNorm(h)
        self.qkv = nn.Linear(h, 3 * h // tp)
        self.proj = nn.Linear(h // tp, h, bias=False)
        self.proj_bias = nn.Parameter(torch.zeros(h))
        self.ln2 = nn.LayerNorm(h)
        self.fc1 = nn.Linear(h, 4 * h // tp)
        self.fc2 = nn.Linear(4 * h // tp, h, bias=False)
        self.fc2_bias = nn.Parameter(torch.zeros(h))

    def _tp_in(self, x: torch.Tensor) -> torch.Tensor:
        return _CopyToTp.apply(x, self.group) if self.tp > 1 else x

    def _tp_out(self, x: torch.Tensor) -> torch.Tensor:
        return _ReduceFromTp.apply(x, self.group) if self.tp > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        y = self._tp_in(self.ln1(x))
        q, k, v = self.qkv(y).view(b, s, 3, self.heads, self.head_dim).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        a = a.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)
        x = x + self._tp_out(self.proj(a)) + self.proj_bias
        y = self._tp_in(self.ln2(x))
        y = self.fc2(F.gelu(self.fc1(y), approximate="tanh"))
        return x + self._tp_out(y) + self.fc2_bias


class Stage(nn.Module):
    """The layers of one pipeline stage (+ embedding on the first, + head on the last)."""

    def __init__(
        self,
        shape: GptShape,
        tp: int,
        tp_rank: int,
        pp: int,
        pp_rank: int,
        group: Any,
        recompute: bool,
    ) -> None:
        super().__init__()
        self.shape, self.tp, self.group, self.recompute = shape, tp, group, recompute
        self.first, self.last = pp_rank == 0, pp_rank == pp - 1
        per = shape.n_layers // pp
        self.blocks = nn.ModuleList(Block(shape, tp, group) for _ in range(per))
        self.vocab_start = tp_rank * shape.vocab // tp
        if self.first:
            self.embed = nn.Embedding(shape.vocab // tp, shape.hidden)
            self.pos = nn.Embedding(shape.seq, shape.hidden)
        if self.last:
            self.ln_f = nn.LayerNorm(shape.hidden)
            self.head = nn.Linear(shape.hidden, shape.vocab // tp, bias=False)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        n = self.shape.vocab // self.tp
        local = tokens - self.vocab_start
        mask = (local < 0) | (local >= n)
        x = self.embed(local.clamp(0, n - 1)) * (~mask).unsqueeze(-1)
        if self.tp > 1:
            x = _ReduceFromTp.apply(x, self.group)
        return x + self.pos.weight[: tokens.shape[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            if self.recompute and self.training:
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = self.ln_f(x)
        if self.tp > 1:
            x = _CopyToTp.apply(x, self.group)
        logits = self.head(x)
        group = self.group if self.tp > 1 else None
        return _VocabParallelXent.apply(logits, target, self.vocab_start, group)


# --- mixed-precision optimizer (Megatron layout) --------------------------------------------


class MixedAdam:
    """BF16 model weights, FP32 accumulated gradients, FP32 master weights and Adam moments."""

    def __init__(self, model: nn.Module, fused: bool) -> None:
        self.params = [p for p in model.parameters()]
        self.master = [p.detach().float().clone().requires_grad_(True) for p in self.params]
        self.main_grad = [torch.zeros_like(m) for m in self.master]
        self.opt = torch.optim.AdamW(self.master, lr=1e-4, fused=fused)

    def accumulate(self) -> None:
        """Move each BF16 gradient into the FP32 buffer (Megatron's main_grad)."""
        for p, g in zip(self.params, self.main_grad, strict=True):
            if p.grad is not None:
                g.add_(p.grad)
                p.grad = None

    def step(self, dp_group: Any, dp: int) -> None:
        if dp > 1:
            flat = torch.cat([g.view(-1) for g in self.main_grad])
            dist.all_reduce(flat, group=dp_group)
            flat /= dp
            offset = 0
            for g in self.main_grad:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
            del flat
        for m, g in zip(self.master, self.main_grad, strict=True):
            m.grad = g
        self.opt.step()
        with torch.no_grad():
            for p, m in zip(self.params, self.master, strict=True):
                p.copy_(m)
        for g in self.main_grad:
            g.zero_()


# --- one training step ------------------------------------------------------------------------


def _batch(cfg: RunConfig, device: torch.device, step: int, mb: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device="cpu").manual_seed(1000 * step + mb)
    tokens = torch.randint(0, cfg.model.vocab, (cfg.micro_batch, cfg.model.seq + 1), generator=g)
    tokens = tokens.to(device)
    return tokens[:, :-1], tokens[:, 1:]


def _train_step(
    cfg: RunConfig,
    stage: Stage,
    opt: MixedAdam,
    ranks: dict[str, Any],
    step: int,
    device: torch.device,
) -> float:
    """1F1B over ``m`` micro-batches; returns the mean loss on the last stage (else 0)."""
    m, pp, pp_rank = cfg.micro_batches, cfg.pp, ranks["pp_rank"]
    shape = (cfg.micro_batch, cfg.model.seq, cfg.model.hidden)
    inputs: list[torch.Tensor | None] = []
    outputs: list[torch.Tensor] = []
    losses: list[float] = []
    dp_rank = ranks["dp_rank"]
    # Sends are asynchronous (as Megatron's batched p2p): a blocking send in 1F1B deadlocks
    # when both neighbours send at once.
    pending: list[tuple[Any, torch.Tensor]] = []

    def send(t: torch.Tensor, dst: int) -> None:
        t = t.contiguous()
        pending.append((dist.isend(t, dst=dst), t))

    def forward(i: int) -> None:
        tokens, target = _batch(cfg, device, step, dp_rank * m + i)
        if stage.first:
            x_in = None
            x = stage.embed_tokens(tokens)
        else:
            x_in = torch.empty(shape, dtype=torch.bfloat16, device=device)
            dist.recv(x_in, src=ranks["prev"])
            x_in.requires_grad_(True)
            x = x_in
        y = stage(x)
        if stage.last:
            loss = stage.loss(y, target) / m
            losses.append(float(loss.detach()) * m)
            y = loss
        else:
            send(y.detach(), ranks["next"])
        inputs.append(x_in)
        outputs.append(y)

    def backward() -> None:
        x_in, y = inputs.pop(0), outputs.pop(0)
        if stage.last:
            y.backward()
        else:
            g = torch.empty(shape, dtype=torch.bfloat16, device=device)
            dist.recv(g, src=ranks["next"])
            y.backward(g)
        if x_in is not None:
            send(x_in.grad, ranks["prev"])
        opt.accumulate()

    warm = min(pp - pp_rank - 1, m)
    for i in range(warm):
        forward(i)
    for i in range(warm, m):
        forward(i)
        backward()
    for _ in range(warm):
        backward()
    for work, _ in pending:
        work.wait()
    opt.step(ranks["dp_group"], cfg.dp)
    return sum(losses) / len(losses) if losses else 0.0


def _groups(cfg: RunConfig, rank: int) -> dict[str, Any]:
    """Megatron rank order tp-dp-pp: rank = t + tp * (d + dp * p)."""
    tp_rank = rank % cfg.tp
    dp_rank = (rank // cfg.tp) % cfg.dp
    pp_rank = rank // (cfg.tp * cfg.dp)
    out: dict[str, Any] = {"tp_rank": tp_rank, "dp_rank": dp_rank, "pp_rank": pp_rank}
    for p in range(cfg.pp):
        for d in range(cfg.dp):
            members = [t + cfg.tp * (d + cfg.dp * p) for t in range(cfg.tp)]
            grp = dist.new_group(members)
            if rank in members:
                out["tp_group"] = grp
    for p in range(cfg.pp):
        for t in range(cfg.tp):
            members = [t + cfg.tp * (d + cfg.dp * p) for d in range(cfg.dp)]
            grp = dist.new_group(members)
            if rank in members:
                out["dp_group"] = grp
    stride = cfg.tp * cfg.dp
    out["prev"] = rank - stride if pp_rank > 0 else None
    out["next"] = rank + stride if pp_rank < cfg.pp - 1 else None
    return out


def _worker(rank: int, cfg: RunConfig, port: int, out_path: str) -> None:
    cuda = torch.cuda.is_available()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=cfg.world)
    device = torch.device(f"cuda:{rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    ranks = _groups(cfg, rank)
    torch.manual_seed(1234 + ranks["tp_rank"] * 17 + ranks["pp_rank"] * 101)
    stage = Stage(
        cfg.model,
        cfg.tp,
        ranks["tp_rank"],
        cfg.pp,
        ranks["pp_rank"],
        ranks.get("tp_group"),
        cfg.recompute,
    ).to(device=device, dtype=torch.bfloat16)
    opt = MixedAdam(stage, fused=cuda)
    times, losses = [], []
    for step in range(cfg.warmup + cfg.steps):
        if cuda:
            torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        loss = _train_step(cfg, stage, opt, ranks, step, device)
        if cuda:
            torch.cuda.synchronize()
        dist.barrier()
        if step >= cfg.warmup:
            times.append(time.perf_counter() - t0)
            losses.append(loss)
    alloc = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else 0.0
    reserved = torch.cuda.max_memory_reserved(device) / 2**30 if cuda else 0.0
    gathered: list[Any] = [None] * cfg.world
    dist.all_gather_object(gathered, (alloc, reserved, losses))
    if rank == cfg.world - 1:
        res = Measured(
            config={**asdict(cfg), "model": asdict(cfg.model)},
            step_s=times,
            median_step_s=statistics.median(times),
            peak_allocated_gib=[g[0] for g in gathered],
            peak_reserved_gib=[g[1] for g in gathered],
            loss=losses,
        )
        with open(out_path, "w", encoding="utf-8") as fh:
            json.dump(asdict(res), fh)
    dist.destroy_process_group()


def measure(cfg: RunConfig, port: int = 29511) -> dict[str, Any]:
    """Run one configuration in ``cfg.world`` processes and return its measurements."""
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        mp.spawn(_worker, args=(cfg, port, path), nprocs=cfg.world, join=True)
        with open(path, encoding="utf-8") as fh:
            return dict(json.load(fh))


GPT_350M = GptShape("gpt3-350m", n_layers=24, hidden=1024, heads=16)
GPT_1_3B = GptShape("gpt3-1.3b", n_layers=24, hidden=2048, heads=16)


def plan_of_runs(gpus: int) -> list[RunConfig]:
    """The configurations of the end-to-end validation (issue 4)."""
    runs = []
    for shape in (GPT_350M, GPT_1_3B):
        for mb in (1, 2, 4):
            runs.append(RunConfig(shape, micro_batch=mb, global_batch=8))
        runs.append(RunConfig(shape, micro_batch=4, global_batch=8, recompute=True))
        if gpus >= 2:
            runs.append(RunConfig(shape, dp=2, micro_batch=2, global_batch=16))
            runs.append(RunConfig(shape, tp=2, micro_batch=2, global_batch=8))
            runs.append(RunConfig(shape, pp=2, micro_batch=1, global_batch=8))
            runs.append(RunConfig(shape, pp=2, micro_batch=2, global_batch=16))
    return runs


def environment() -> dict[str, Any]:
    """GPU, driver and library versions of this run."""
    env: dict[str, Any] = {"torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpus"] = torch.cuda.device_count()
        env["cuda"] = torch.version.cuda
        env["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        try:
            import subprocess

            env["driver"] = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                .stdout.split("\n")[0]
                .strip()
            )
        except OSError:
            env["driver"] = "unknown"
    return env


def main(argv: list[str]) -> None:
    out = argv[1] if len(argv) > 1 else "e2e.json"
    only = argv[2] if len(argv) > 2 else ""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 2
    results = []
    runs = [c for c in plan_of_runs(gpus) if only in f"{c.model.name} pp{c.pp}"]
    for i, cfg in enumerate(runs):
        t0 = time.perf_counter()
        try:
            res = measure(cfg, port=29511 + i)
        except Exception as exc:  # one failed config must not lose the others
            res = {"config": {**asdict(cfg), "model": asdict(cfg.model)}, "error": repr(exc)}
        res["wall_s"] = time.perf_counter() - t0
        results.append(res)
        print(
            json.dumps({k: res.get(k) for k in ("median_step_s", "peak_allocated_gib", "error")}),
            cfg,
            flush=True,
        )
        with open(out, "w", encoding="utf-8") as fh:
            json.dump({"environment": environment(), "runs": results}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv)
