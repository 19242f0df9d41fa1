"""JSON Schema of every input file, generated from the pydantic specs (solver-free).

An input file holds any of the sections of :class:`planner.spec.problem.Problem` (files merge
by section, so none is required in one file); each section also has a schema of its own.
Every schema carries the schema version in its ``$id`` and in ``x-planner-schema``; the
version changes whenever an input that was valid becomes invalid (or means something else).
The generated files are committed under ``schemas/``; a test keeps them equal to what this
module generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planner.spec.cluster import Cluster
from planner.spec.plan import Plan
from planner.spec.problem import Objective, Problem
from planner.spec.workload import Workloads

SCHEMA_VERSION = "planner-input/v1"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SECTIONS: dict[str, type[BaseModel]] = {
    "cluster": Cluster,
    "workloads": Workloads,
    "objective": Objective,
    "plan": Plan,
}


def _stamp(schema: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    head = {
        "$schema": DIALECT,
        "$id": f"{SCHEMA_VERSION}/{name}.schema.json",
        "x-planner-schema": SCHEMA_VERSION,
        "title": title,
    }
    return {**head, **{k: v for k, v in schema.items() if k not in head}}


def input_schema() -> dict[str, Any]:
    """Schema of one input file: any sections of a problem (YAML or JSON)."""
    schema = Problem.model_json_schema()
    schema.pop("required", None)
    schema["description"] = (
        "One planner input file (YAML or JSON). Files merge by section: cluster, workloads, "
        "objective, plan and instance metadata; the merged input needs a cluster."
    )
    return _stamp(schema, "input", "planner input file")


def schemas() -> dict[str, dict[str, Any]]:
    """``{file name: schema}`` for the input file and each section."""
    out = {"input.schema.json": input_schema()}
    for name, model in SECTIONS.items():
        out[f"{name}.schema.json"] = _stamp(
            model.model_json_schema(), name, f"planner input: {name} section"
        )
    return out


def schema_text(schema: dict[str, Any]) -> str:
    """The committed form of a schema (sorted keys kept as generated, two-space indent)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every schema into ``folder``; return the paths."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        path = target / name
        path.write_text(schema_text(schema), encoding="utf-8")
        paths.append(path)
    return paths


__all__ = ["SCHEMA_VERSION", "input_schema", "schema_text", "schemas", "write_schemas"]
