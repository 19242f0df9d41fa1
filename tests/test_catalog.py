"""Every catalog number carries its source; aliases resolve."""

from __future__ import annotations

import pytest

from planner.spec.hardware import GpuEfficiency, GpuSpec, PowerModel

REQUIRED_GPUS = [
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "h100-sxm-80gb",
    "h200-sxm-141gb",
    "b200-sxm-180gb",
    "mi300x-192gb",
]
REQUIRED_MODELS = [
    "gpt3-175b",
    "llama2-70b",
    "llama3-8b",
    "llama3-70b",
    "llama3-405b",
    "mixtral-8x7b",
    "megatron-gpt-1.7b",
    "megatron-core-gpt-462b",
]


def _numeric_fields(model: type) -> list[str]:
    return [
        n
        for n, f in model.model_fields.items()
        if f.annotation in (float, int, "float", "int") or n == "peak_tflops"
    ]


@pytest.mark.parametrize("gpu_id", REQUIRED_GPUS)
def test_gpu_numbers_have_sources(catalog, gpu_id):
    g = catalog.gpus[gpu_id]
    for name in _numeric_fields(GpuSpec):
        assert g.sources.get(name), f"{gpu_id}.{name} has no source"
    for name in _numeric_fields(GpuEfficiency):
        assert g.efficiency.sources.get(name), f"{gpu_id}.efficiency.{name} has no source"
    for name in _numeric_fields(PowerModel):
        assert g.power.sources.get(name), f"{gpu_id}.power.{name} has no source"


@pytest.mark.parametrize("model_id", REQUIRED_MODELS)
def test_models_have_sources(catalog, model_id):
    assert catalog.models[model_id].source


@pytest.mark.parametrize(
    ("alias", "gpu_id"),
    [
        ("H100", "h100-sxm-80gb"),
        ("a100_80gb", "a100-sxm-80gb"),
        ("NVIDIA H200", "h200-sxm-141gb"),
        ("MI300X", "mi300x-192gb"),
    ],
)
def test_aliases(catalog, alias, gpu_id):
    assert catalog.gpu(alias).id == gpu_id


def test_unknown_gpu_lists_catalog(catalog):
    with pytest.raises(KeyError, match="h100-sxm-80gb"):
        catalog.gpu("v100")
