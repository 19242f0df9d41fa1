"""Serving micro-benchmark: prefill and decode of a Llama-shaped transformer on one GPU (needs
PyTorch + CUDA; imports nothing from planner, so it runs where only PyTorch is installed).

A stack of ``LAYERS`` decoder layers with the widths of a named model (random BF16 weights:
attention with grouped KV heads, SwiGLU FFN, RMSNorm) is timed as a serving engine runs it:

* prefill: one prompt of ``L`` tokens through the stack (causal SDPA), for several ``L``;
* decode: one step of ``B`` requests, each with ``C`` cached tokens (SDPA over the KV cache),
  captured in a CUDA graph and replayed, as vLLM and TensorRT-LLM run decode, so the host
  does not set the pace.

Times are per layer (stack time / LAYERS). Writes one JSON document.
Usage: python planner/calibrate/serve_bench.py OUT.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from bench import timed  # planner/calibrate/bench.py (this script runs from its folder)

LAYERS = 8
MODELS = {
    # hidden, heads, kv heads, ffn (SwiGLU), from the models' configs (models/llms/llama3.yaml)
    "llama3-8b": (4096, 32, 8, 14336),
}
PREFILL_TOKENS = [128, 512, 1024, 2048, 4096]
DECODE = [(1, 1024), (8, 1024), (32, 1024), (64, 1024), (128, 1024), (256, 1024), (64, 4096)]


class Layer:
    def __init__(self, h: int, heads: int, kv: int, ffn: int) -> None:
        d = h // heads
        dev, dt = "cuda", torch.bfloat16
        self.h, self.heads, self.kv, self.d = h, heads, kv, d
        self.wqkv = torch.randn(h, (heads + 2 * kv) * d, device=dev, dtype=dt) * 0.01
        self.wo = torch.randn(heads * d, h, device=dev, dtype=dt) * 0.01
        self.w13 = torch.randn(h, 2 * ffn, device=dev, dtype=dt) * 0.01
        self.w2 = torch.randn(ffn, h, device=dev, dtype=dt) * 0.01
        self.n1 = torch.ones(h, device=dev, dtype=dt)
        self.n2 = torch.ones(h, device=dev, dtype=dt)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        qkv = F.rms_norm(x, (self.h,), self.n1) @ self.wqkv
        q, k, v = qkv.split([self.heads * self.d, self.kv * self.d, self.kv * self.d], dim=-1)
        q = q.view(b, s, self.heads, self.d).transpose(1, 2)
        k = k.view(b, s, self.kv, self.d).transpose(1, 2)
        v = v.view(b, s, self.kv, self.d).transpose(1, 2)
        return q, k, v

    def _out(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        b, _, s, _ = attn.shape
        x = x + attn.transpose(1, 2).reshape(b, s, self.heads * self.d) @ self.wo
        gate, up = (F.rms_norm(x, (self.h,), self.n2) @ self.w13).chunk(2, dim=-1)
        return x + (F.silu(gate) * up) @ self.w2

    def prefill(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self._out(x, attn)

    def decode(self, x: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        kc[:, :, -1:] = k
        vc[:, :, -1:] = v
        attn = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=True)
        return self._out(x, attn)


def bench(name: str) -> dict:
    h, heads, kv, ffn = MODELS[name]
    layers = [Layer(h, heads, kv, ffn) for _ in range(LAYERS)]
    prefill = []
    with torch.no_grad():
        for n in PREFILL_TOKENS:
            x = torch.randn(1, n, h, device="cuda", dtype=torch.bfloat16)

            def run(x: torch.Tensor = x) -> None:
                y = x
                for layer in layers:
                    y = layer.prefill(y)

            prefill.append({"tokens": n, "layer_s": timed(run, iters=10) / LAYERS})
        decode = []
        for batch, ctx in DECODE:
            d = h // heads
            x = torch.randn(batch, 1, h, device="cuda", dtype=torch.bfloat16)
            caches = [
                (
                    torch.randn(batch, kv, ctx, d, device="cuda", dtype=torch.bfloat16),
                    torch.randn(batch, kv, ctx, d, device="cuda", dtype=torch.bfloat16),
                )
                for _ in layers
            ]

            def step(x: torch.Tensor = x, caches: list = caches) -> torch.Tensor:
                y = x
                for layer, (kc, vc) in zip(layers, caches, strict=True):
                    y = layer.decode(y, kc, vc)
                return y

            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            eager = timed(step, iters=10) / LAYERS
            graphed = timed(graph.replay, iters=50) / LAYERS
            decode.append(
                {"batch": batch, "context": ctx, "layer_s": graphed, "eager_layer_s": eager}
            )
            del caches, graph
            torch.cuda.empty_cache()
    return {"model": name, "layers": LAYERS, "prefill": prefill, "decode": decode}


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "serve_bench.json"
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,power.limit", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    doc = {
        "kind": "planner-serving-bench/v1",
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(0),
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "runs": [bench(name) for name in MODELS],
    }
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
