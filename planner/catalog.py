"""The hardware and architecture catalog shipped in ``models/``.

``models/gpus/*.yaml`` hold :class:`GpuSpec` entries and ``models/llms/*.yaml`` hold
:class:`ModelSpec` entries. The folder is found, in order, from ``$PLANNER_MODELS_DIR``,
the copy packed into an installed wheel (``planner/_models``), or the source tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from planner.errors import InputProblem, PlannerInputError
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec


def models_dir() -> Path:
    """The catalog folder in use."""
    env = os.environ.get("PLANNER_MODELS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    packed = here / "_models"
    return packed if packed.is_dir() else here.parent / "models"


def normalise_id(name: str) -> str:
    """Lower-case, with runs of spaces/underscores/dots turned into single dashes."""
    return re.sub(r"[\s_./]+", "-", name.strip().lower())


@dataclass(frozen=True)
class Catalog:
    """GPU types and LLM architectures by id (and by alias)."""

    gpus: dict[str, GpuSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    _gpu_alias: dict[str, str] = field(default_factory=dict)
    _model_alias: dict[str, str] = field(default_factory=dict)

    def find_gpu(self, name: str) -> GpuSpec | None:
        """The GPU with this id or alias (case- and separator-insensitive), else None."""
        key = self._gpu_alias.get(normalise_id(name))
        return self.gpus[key] if key is not None else None

    def gpu(self, name: str) -> GpuSpec:
        """The GPU with this id or alias; KeyError lists the catalog."""
        spec = self.find_gpu(name)
        if spec is None:
            raise KeyError(f"unknown GPU type {name!r}; catalog: {', '.join(sorted(self.gpus))}")
        return spec

    def find_model(self, name: str) -> ModelSpec | None:
        """The architecture with this id or alias, else None."""
        key = self._model_alias.get(normalise_id(name))
        return self.models[key] if key is not None else None

    def model(self, ref: str | ModelSpec) -> ModelSpec:
        """Resolve a catalog id or pass an inline architecture through."""
        if isinstance(ref, ModelSpec):
            return ref
        spec = self.find_model(ref)
        if spec is None:
            raise KeyError(f"unknown model {ref!r}; catalog: {', '.join(sorted(self.models))}")
        return spec


def _read_entries(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise PlannerInputError([InputProblem(str(path), "", "not a mapping", "a GPU/model")])
        out.append((path, data))
    return out


def _validated(cls: type[GpuSpec] | type[ModelSpec], path: Path, data: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = [
            InputProblem(str(path), ".".join(str(p) for p in e["loc"]), e["msg"])
            for e in exc.errors()
        ]
        raise PlannerInputError(problems) from None


def load_catalog(folder: Path | None = None) -> Catalog:
    """Read and validate every catalog file under ``folder`` (default :func:`models_dir`)."""
    root = folder or models_dir()
    gpus: dict[str, GpuSpec] = {}
    models: dict[str, ModelSpec] = {}
    gpu_alias: dict[str, str] = {}
    model_alias: dict[str, str] = {}
    for path, data in _read_entries(root / "gpus"):
        gpu: GpuSpec = _validated(GpuSpec, path, data)
        gpus[gpu.id] = gpu
        for alias in [gpu.id, gpu.name, *gpu.aliases]:
            gpu_alias[normalise_id(alias)] = gpu.id
    for path, data in _read_entries(root / "llms"):
        for entry in data.get("models", [data]):
            spec: ModelSpec = _validated(ModelSpec, path, entry)
            models[spec.id] = spec
            for alias in [spec.id, spec.name]:
                if alias:
                    model_alias[normalise_id(alias)] = spec.id
    return Catalog(gpus, models, gpu_alias, model_alias)


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The catalog shipped with the package (read once per process)."""
    return load_catalog()
