"""GPU micro-benchmarks for the cost model's efficiency constants (needs PyTorch + CUDA).

Measures, on the local GPU: dense GEMM throughput over transformer-like shapes (BF16, FP8
where supported), causal attention forward/backward (flash and cuDNN SDPA backends), HBM
streaming bandwidth, per-kernel launch overhead, and board power/clock while a GEMM loop runs
(read only via nvidia-smi; nothing is changed). Writes one JSON document.
Usage: python tools/microbench.py OUT.json
"""

from __future__ import annotations

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
                t = timed(lambda: a @ b, iters=iters)
                rows.append({"m": m, "n": n, "k": k, "time_s": t, "tflops": flops / t / 1e12})
                del a, b
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
                fn = lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
                try:
                    t = timed(fn, iters=max(3, min(50, int(4e13 / flops))))
                except Exception as exc:  # noqa: BLE001
                    return rows + [{"error": repr(exc)}]
                rows.append({"m": m, "n": n, "k": k, "time_s": t, "tflops": flops / t / 1e12})
    return rows


def attention_sweep() -> list[dict]:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    for backend in [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]:
        for s in [2048, 4096, 8192]:
            for heads in [8, 16, 32, 64]:
                b, d = 1, 128
                q, k, v = (torch.randn(b, heads, s, d, device="cuda", dtype=torch.bfloat16,
                                       requires_grad=True) for _ in range(3))
                try:
                    with sdpa_kernel([backend]):
                        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
                        t_f = timed(fwd)
                        out = fwd()
                        g = torch.randn_like(out)
                        def fb():
                            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                            o.backward(g)
                        t_fb = timed(fb)
                except Exception as exc:  # noqa: BLE001
                    rows.append({"backend": str(backend), "s": s, "error": repr(exc)[:200]})
                    break
                causal_fwd_flops = 4.0 * b * heads * s * s * d / 2
                rows.append({
                    "backend": str(backend), "s": s, "heads": heads, "head_dim": d,
                    "fwd_s": t_f, "bwd_s": t_fb - t_f,
                    "fwd_tflops": causal_fwd_flops / t_f / 1e12,
                    "bwd_tflops": 2.5 * causal_fwd_flops / max(t_fb - t_f, 1e-9) / 1e12,
                })
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


def power_probe() -> dict:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    samples: list[str] = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=power.draw,clocks.sm,temperature.gpu,power.limit",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True)
            samples.append(out.stdout.strip())
            time.sleep(0.5)

    idle = subprocess.run(["nvidia-smi", "--query-gpu=power.draw,clocks.sm,power.limit,"
                           "power.min_limit,power.max_limit,name,driver_version",
                           "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
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
    return {"idle": idle.strip(), "busy_samples": samples,
            "sustained_tflops": n * 2 * 8192**3 / dt / 1e12}


def main() -> None:
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d")}
    out["power"] = power_probe()
    out["launch"] = launch_overhead()
    out["hbm"] = hbm()
    out["attention"] = attention_sweep()
    out["gemm_bf16"] = gemm_sweep(torch.bfloat16)
    out["gemm_fp8"] = fp8_sweep()
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k not in ("gemm_bf16", "gemm_fp8", "attention")}, indent=1))


if __name__ == "__main__":
    main()
