"""GPU micro-benchmarks for the cost model's efficiency constants (needs PyTorch + CUDA).

Measures, on the local GPUs: dense GEMM throughput over transformer-like shapes (BF16, FP8
where supported), causal attention forward/backward (flash and cuDNN SDPA backends), HBM
streaming bandwidth, per-kernel launch overhead, board power/clock idle and while a GEMM loop
runs (read only via nvidia-smi; nothing is changed), and with two GPUs NCCL all-reduce and
point-to-point bandwidth vs message size. Writes one JSON document (the raw input of
``planner calibrate --from-raw``). Imports nothing from planner, so it runs where only
PyTorch is installed.
Usage: python planner/calibrate/bench.py OUT.json
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import time

import torch


def timed(fn, iters: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


def gemm_sweep(dtype: torch.dtype) -> list[dict]:
    rows = []
    dims = [1024, 2048, 4096, 8192, 16384]
    for m in [2048, 4096, 8192, 16384]:
        for n in dims:
            for k in dims:
                a = torch.randn(m, k, device="cuda", dtype=dtype)
                b = torch.randn(k, n, device="cuda", dtype=dtype)
                flops = 2.0 * m * n * k
                iters = max(3, min(50, int(2e13 / flops)))
                t = timed(functools.partial(torch.matmul, a, b), iters=iters)
                rows.append({"m": m, "n": n, "k": k, "time_s": t, "tflops": flops / t / 1e12})
    return rows


def fp8_sweep() -> list[dict]:
    rows = []
    if not hasattr(torch, "_scaled_mm"):
        return rows
    dims = [2048, 4096, 8192, 16384]
    one = torch.tensor(1.0, device="cuda")
    for m in [4096, 8192, 16384]:
        for n in dims:
            for k in dims:
                a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
                b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn).t()
                flops = 2.0 * m * n * k
                fn = functools.partial(
                    torch._scaled_mm, a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16
                )
                try:
                    t = timed(fn, iters=max(3, min(50, int(4e13 / flops))))
                except Exception as exc:
                    return [*rows, {"error": repr(exc)}]
                rows.append({"m": m, "n": n, "k": k, "time_s": t, "tflops": flops / t / 1e12})
    return rows


def _fwd_bwd(fwd, g) -> None:
    fwd().backward(g)


def attention_sweep() -> list[dict]:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    for backend in [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]:
        for s in [2048, 4096, 8192]:
            for heads in [8, 16, 32, 64]:
                b, d = 1, 128
                q, k, v = (
                    torch.randn(
                        b, heads, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True
                    )
                    for _ in range(3)
                )
                fwd = functools.partial(F.scaled_dot_product_attention, q, k, v, is_causal=True)
                try:
                    with sdpa_kernel([backend]):
                        t_f = timed(fwd)
                        g = torch.randn_like(fwd())
                        t_fb = timed(functools.partial(_fwd_bwd, fwd, g))
                except Exception as exc:
                    rows.append({"backend": str(backend), "s": s, "error": repr(exc)[:200]})
                    break
                causal_fwd_flops = 4.0 * b * heads * s * s * d / 2
                rows.append(
                    {
                        "backend": str(backend),
                        "s": s,
                        "heads": heads,
                        "head_dim": d,
                        "fwd_s": t_f,
                        "bwd_s": t_fb - t_f,
                        "fwd_tflops": causal_fwd_flops / t_f / 1e12,
                        "bwd_tflops": 2.5 * causal_fwd_flops / max(t_fb - t_f, 1e-9) / 1e12,
                    }
                )
    return rows


def hbm() -> dict:
    n = 1 << 30
    x = torch.empty(n, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    t_copy = timed(lambda: y.copy_(x), iters=30)
    a = torch.randn(1 << 28, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    t_add = timed(lambda: a + b, iters=30)
    return {"copy_bytes_s": 2 * n / t_copy, "add_bytes_s": 3 * a.numel() * 2 / t_add}


def launch_overhead() -> dict:
    x = torch.zeros(1, device="cuda")

    def many():
        for _ in range(1000):
            x.add_(1.0)

    t = timed(many, iters=5)
    return {"tiny_kernel_s": t / 1000}


def _tiny_chain(x, layers):
    for lin in layers:
        x = x + torch.nn.functional.gelu(lin(x))
    return x


def host_overhead() -> dict:
    """Host time per dispatched op in eager PyTorch with autograd: a forward+backward through
    a chain of tiny layers (linear + GELU + add: 3 ops forward, ~6 backward) whose GPU kernels
    are far shorter than their dispatch, so the wall time is the host's."""
    n = 200
    layers = [torch.nn.Linear(64, 64, device="cuda", dtype=torch.bfloat16) for _ in range(n)]
    x = torch.randn(8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    def fwd() -> None:
        _tiny_chain(x, layers)

    def fwd_bwd() -> None:
        _tiny_chain(x, layers).sum().backward()

    t_f = timed(fwd, iters=10)
    t_fb = timed(fwd_bwd, iters=10)
    return {
        "layers": n,
        "fwd_ops": 3 * n,
        "fwd_s": t_f,
        "fwd_bwd_s": t_fb,
        "fwd_us_per_op": t_f / (3 * n) * 1e6,
        "bwd_us_per_layer": (t_fb - t_f) / n * 1e6,
    }


def power_probe() -> dict:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    samples: list[str] = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=power.draw,clocks.sm,temperature.gpu,power.limit",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
            )
            samples.append(out.stdout.strip())
            time.sleep(0.5)

    idle = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=power.draw,clocks.sm,power.limit,"
            "power.min_limit,power.max_limit,name,driver_version",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
    ).stdout
    th = threading.Thread(target=poll)
    th.start()
    t0 = time.time()
    n = 0
    while time.time() - t0 < 15:
        for _ in range(50):
            a @ b
        torch.cuda.synchronize()
        n += 50
    dt = time.time() - t0
    stop.set()
    th.join()
    return {
        "idle": idle.strip(),
        "busy_samples": samples,
        "sustained_tflops": n * 2 * 8192**3 / dt / 1e12,
    }


def _nccl_worker(rank: int, world: int, port: int, path: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    rows = []
    for exp in range(10, 31, 2):  # 1 KiB .. 1 GiB
        n_bytes = 1 << exp
        buf = torch.ones(n_bytes // 2, device="cuda", dtype=torch.bfloat16)
        iters = 20 if n_bytes < (1 << 26) else 5
        t_ar = timed(functools.partial(dist.all_reduce, buf), iters=iters)
        p2p = (
            functools.partial(dist.send, buf, dst=1)
            if rank == 0
            else functools.partial(dist.recv, buf, src=0)
        )
        t_p2p = timed(p2p, iters=iters)
        rows.append(
            {
                "bytes": n_bytes,
                "all_reduce_s": t_ar,
                "all_reduce_busbw_gb_s": 2 * (world - 1) / world * n_bytes / t_ar / 1e9,
                "p2p_s": t_p2p,
                "p2p_gb_s": n_bytes / t_p2p / 1e9,
            }
        )
    if rank == 0:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(rows, fh)
    dist.destroy_process_group()


def nccl_sweep() -> list[dict]:
    """All-reduce and send/recv between GPUs 0 and 1 from 1 KiB to 1 GiB."""
    import os
    import tempfile

    import torch.multiprocessing as mp

    if torch.cuda.device_count() < 2:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nccl.json")
        mp.spawn(_nccl_worker, args=(2, 29490, path), nprocs=2, join=True)
        with open(path, encoding="utf-8") as fh:
            return list(json.load(fh))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[2] == "--host-only":
        with open(sys.argv[1], "w", encoding="utf-8") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "host": host_overhead()}, fh)
        return
    out = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%d"),
        "gpus": torch.cuda.device_count(),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())),
    }
    out["power"] = power_probe()
    out["launch"] = launch_overhead()
    out["host"] = host_overhead()
    out["hbm"] = hbm()
    out["attention"] = attention_sweep()
    out["gemm_bf16"] = gemm_sweep(torch.bfloat16)
    out["gemm_fp8"] = fp8_sweep()
    out["nccl_sweep"] = nccl_sweep()
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1)
    print(
        json.dumps(
            {k: v for k, v in out.items() if k not in ("gemm_bf16", "gemm_fp8", "attention")},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
