"""JSON Schema of the input files: committed, versioned, and every instance validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from planner.schema import SCHEMA_VERSION, schema_text, schemas
from tests.conftest import ROOT

jsonschema = pytest.importorskip("jsonschema")


class Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 floats (``1.0e12`` without an exponent sign), as editors read them; PyYAML
    (YAML 1.1) reads those as strings, which pydantic then converts."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def test_committed_schemas_equal_the_generated_ones() -> None:
    """Regenerate with `planner schema --out schemas` after changing a spec (and raise
    SCHEMA_VERSION when an input that was valid no longer is)."""
    generated = schemas()
    committed = {p.name for p in (ROOT / "schemas").glob("*.schema.json")}
    assert committed == set(generated)
    for name, schema in generated.items():
        assert (ROOT / "schemas" / name).read_text(encoding="utf-8") == schema_text(schema), name


def test_schemas_are_versioned_and_valid() -> None:
    for name, schema in schemas().items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"] == f"{SCHEMA_VERSION}/{name}"
        assert schema["x-planner-schema"] == SCHEMA_VERSION


@pytest.mark.parametrize("path", sorted((ROOT / "instances").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_instance_validates(path: Path) -> None:
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=Yaml12Loader)
    validator = jsonschema.Draft202012Validator(schemas()["input.schema.json"])
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_a_wrong_field_fails_the_schema() -> None:
    schema = schemas()["cluster.schema.json"]
    bad = {"sites": [{"id": "a", "power_budget_mw": -1}], "pools": [], "bogus": 1}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(bad))
    assert errors


def test_cli_writes_the_schemas(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from planner.cli import app

    res = CliRunner().invoke(app, ["schema", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "input.schema.json").read_text())
    assert written["$id"] == f"{SCHEMA_VERSION}/input.schema.json"
