"""Fit a hardware profile from the raw micro-benchmarks of ``calibrate/bench.py`` (numpy only;
no PyTorch), and apply a profile to a catalog in place of the datasheet-derived constants.

Every fitted number records how it was obtained in the profile's ``sources``.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from planner.catalog import Catalog
from planner.errors import InputProblem, PlannerInputError
from planner.spec.base import Precision
from planner.spec.hardware import GpuSpec

PROFILE_KIND = "planner-hardware-profile/v1"
DEVICE_GPU = {"NVIDIA H200": "h200-sxm-141gb", "NVIDIA H100 80GB HBM3": "h100-sxm-80gb"}
LARGE = 4096
"""GEMM rows and columns from which the k-dependence is fitted (waves fill the GPU)."""


def fit_saturation(k: np.ndarray, eff: np.ndarray) -> tuple[float, float]:
    """Least-squares ``eff = E_max k / (k + k_half)`` over a log grid of ``k_half`` with the
    closed-form ``E_max`` for each."""
    best: tuple[float, float, float] | None = None
    for k_half in np.geomspace(8.0, 4096.0, 200):
        g = k / (k + k_half)
        e_max = float(np.dot(eff, g) / np.dot(g, g))
        err = float(np.sum((eff - e_max * g) ** 2))
        if best is None or err < best[0]:
            best = (err, e_max, float(k_half))
    assert best is not None
    return best[1], best[2]


def _gemm(rows: list[dict[str, Any]], peak_tflops: float, sustain: float) -> tuple[float, float]:
    big = [r for r in rows if "tflops" in r and r["m"] >= LARGE and r["n"] >= LARGE]
    k = np.array([r["k"] for r in big], dtype=float)
    eff = np.array([r["tflops"] / peak_tflops * sustain for r in big])
    return fit_saturation(k, eff)


def _power(raw: dict[str, Any]) -> tuple[float, float]:
    """(idle W, median busy W) from the nvidia-smi lines of the power probe."""
    idle = [float(line.split(",")[0]) for line in raw["idle"].splitlines() if line.strip()]
    busy = [float(s.split(",")[0]) for s in raw["busy_samples"] if s.strip()]
    return min(idle), statistics.median(busy)


def fit_profile(raw: dict[str, Any], gpu: GpuSpec) -> dict[str, Any]:
    """The profile document of one ``bench.py`` output for GPU type ``gpu``."""
    bf16 = gpu.peak_tflops[Precision.BF16]
    square = [
        r["tflops"]
        for r in raw["gemm_bf16"]
        if r.get("m") == 8192 and r.get("n") == 8192 and r.get("k") == 8192
    ]
    # Sweeps run in short bursts; the 15 s loop shows what the power limit sustains.
    sustain = min(1.0, raw["power"]["sustained_tflops"] / square[0]) if square else 1.0
    gemm_max, gemm_k_half = _gemm(raw["gemm_bf16"], bf16, sustain)
    eff: dict[str, float] = {"gemm_max": gemm_max, "gemm_k_half": gemm_k_half}
    src = {
        "gemm_max": f"bf16 sweep (m, n >= {LARGE}) fitted to E_max k/(k+k_half), scaled by the "
        f"sustained/burst ratio {sustain:.3f} of the 15 s 8192^3 loop",
        "gemm_k_half": "same fit",
    }
    fp8 = [r for r in raw.get("gemm_fp8", []) if "tflops" in r]
    if fp8 and Precision.FP8 in gpu.peak_tflops:
        eff["fp8_gemm_max"], eff["fp8_gemm_k_half"] = _gemm(
            fp8, gpu.peak_tflops[Precision.FP8], sustain
        )
        src["fp8_gemm_max"] = src["fp8_gemm_k_half"] = "fp8 _scaled_mm sweep, same fit"
    flash = [
        r
        for r in raw["attention"]
        if "FLASH" in r.get("backend", "") and "fwd_tflops" in r and r["s"] >= LARGE
    ]
    if flash:
        eff["attention_fwd"] = statistics.median(r["fwd_tflops"] for r in flash) / bf16 * sustain
        eff["attention_bwd"] = statistics.median(r["bwd_tflops"] for r in flash) / bf16 * sustain
        src["attention_fwd"] = src["attention_bwd"] = (
            f"median of the FA2 SDPA backend at s >= {LARGE}, causal, d 128, scaled as GEMMs"
        )
    best_hbm = max(raw["hbm"].values())
    eff["hbm"] = min(1.0, best_hbm / (gpu.hbm_bw_tb_s * 1e12))
    src["hbm"] = "best of the 1 GiB copy and the bf16 add streams"
    eff["kernel_overhead_us"] = raw["launch"]["tiny_kernel_s"] * 1e6
    src["kernel_overhead_us"] = "1000 tiny in-place adds launched from eager PyTorch"
    if "host" in raw:
        eff["host_fwd_us"] = raw["host"]["fwd_us_per_op"]
        eff["host_bwd_us"] = raw["host"]["bwd_us_per_layer"] / 3.0
        src["host_fwd_us"] = src["host_bwd_us"] = "forward/backward of 200 tiny 3-op layers"
    # Older files kept the sweep under "nccl" (and lost the NCCL version string).
    nccl = raw.get("nccl_sweep") or (raw["nccl"] if isinstance(raw.get("nccl"), list) else [])
    if nccl:
        n = 2
        eff["nvlink"] = min(1.0, max(r["all_reduce_busbw_gb_s"] for r in nccl) / gpu.nvlink_bw_gb_s)
        small = min(r["all_reduce_s"] for r in nccl if r["bytes"] <= 65536)
        eff["collective_latency_us"] = small / (2 * (n - 1)) * 1e6
        src["nvlink"] = "largest NCCL all-reduce bus bandwidth between 2 GPUs (1 KiB-1 GiB)"
        src["collective_latency_us"] = "fastest all-reduce of <= 64 KiB over 2 ring steps"
    idle_w, busy_w = _power(raw["power"])
    return {
        "kind": PROFILE_KIND,
        "gpu": gpu.id,
        "measured": {
            k: raw[k]
            for k in ("device", "torch", "cuda", "nccl", "date", "gpus")
            if isinstance(raw.get(k), str | int)
        },
        "efficiency": {k: round(v, 4) for k, v in eff.items()},
        "power": {
            "idle_w": round(idle_w, 1),
            "load_fraction_of_tdp": round(min(1.2, busy_w / gpu.tdp_w), 3),
        },
        "sources": {
            **src,
            "idle_w": "lowest nvidia-smi board power before the busy loop",
            "load_fraction_of_tdp": "median board power over the 15 s bf16 GEMM loop / TDP",
        },
    }


def _read_yaml(path: Path, expected: str) -> Any:
    """A YAML/JSON document; unreadable ones raise :class:`PlannerInputError` (one line)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        why = f"cannot read: {str(exc).splitlines()[0]}"
        raise PlannerInputError([InputProblem(str(path), "", why, expected)]) from None


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile file; bad ones raise :class:`PlannerInputError` with one line."""
    p = Path(path)
    doc = _read_yaml(p, "a hardware profile YAML file")
    if not isinstance(doc, dict) or doc.get("kind") != PROFILE_KIND:
        raise PlannerInputError(
            [InputProblem(str(p), "kind", "not a hardware profile", f"kind: {PROFILE_KIND}")]
        )
    return doc


def apply_profile(catalog: Catalog, profile: dict[str, Any]) -> Catalog:
    """A catalog whose profiled GPU uses the measured efficiencies and power figures."""
    gpu = catalog.gpu(profile["gpu"])
    eff = gpu.efficiency.model_copy(update=profile.get("efficiency", {}))
    power = profile.get("power", {})
    updated = gpu.model_copy(
        update={
            "efficiency": eff,
            "idle_w": power.get("idle_w", gpu.idle_w),
            "power": gpu.power.model_copy(
                update={k: v for k, v in power.items() if k in type(gpu.power).model_fields}
            ),
        }
    )
    return replace(catalog, gpus={**catalog.gpus, gpu.id: updated})


def merge_raw(paths: list[Path]) -> dict[str, Any]:
    """One raw document from several ``bench.py`` outputs (later keys win)."""
    raw: dict[str, Any] = {}
    for p in paths:
        doc = _read_yaml(p, "a bench.py JSON output")
        if not isinstance(doc, dict):
            raise PlannerInputError(
                [InputProblem(str(p), "", "not a mapping", "a bench.py JSON output")]
            )
        raw.update(doc)
    for key in ("gemm_bf16", "attention", "hbm", "launch", "power"):
        if key not in raw:
            where = ", ".join(map(str, paths))
            raise PlannerInputError(
                [InputProblem(where, key, "missing", "the full output of bench.py")]
            )
    return raw


def run_bench(out: Path) -> None:
    """Run the micro-benchmarks on the local GPUs (needs PyTorch with CUDA)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torch") is None:
        raise PlannerInputError(
            [
                InputProblem(
                    "<environment>",
                    "torch",
                    "PyTorch is not installed",
                    "pip install 'planner[calibrate]' on a machine with NVIDIA GPUs",
                )
            ]
        )
    script = Path(__file__).with_name("bench.py")
    subprocess.run([sys.executable, str(script), str(out)], check=True)


def calibrate(raw_paths: list[Path], catalog: Catalog, gpu: str | None = None) -> dict[str, Any]:
    """The profile of the raw files (the GPU type from the device name unless given)."""
    raw = merge_raw(raw_paths)
    name = gpu or DEVICE_GPU.get(str(raw.get("device")), "")
    spec = catalog.find_gpu(name) if name else None
    if spec is None:
        raise PlannerInputError(
            [
                InputProblem(
                    str(raw_paths[0]),
                    "device",
                    f"unknown GPU {raw.get('device')!r}",
                    f"--gpu with one of {', '.join(sorted(catalog.gpus))}",
                )
            ]
        )
    return fit_profile(raw, spec)
