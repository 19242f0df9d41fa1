"""Reading input documents (YAML or JSON) with one clear line per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from planner.errors import InputProblem, PlannerInputError


def _fail(path: Path, message: str, expected: str = "", where: str = "") -> PlannerInputError:
    return PlannerInputError([InputProblem(str(path), where, message, expected)])


def read_document(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON file into a mapping; raise :class:`PlannerInputError` otherwise."""
    if not path.exists():
        raise _fail(path, "file not found", "an existing YAML or JSON file")
    if path.is_dir():
        raise _fail(path, "is a directory", "a YAML or JSON file")
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise _fail(path, "looks like a binary file", "a YAML or JSON text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            path, f"is not UTF-8 text (byte {exc.start})", "a UTF-8 YAML or JSON file"
        ) from None
    if not text.strip():
        raise _fail(path, "file is empty", "a mapping of sections (cluster, workloads, ...)")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(
                path,
                f"JSON syntax error: {exc.msg}",
                "valid JSON",
                f"line {exc.lineno}, column {exc.colno}",
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            msg = f"YAML syntax error: {exc.problem or exc.context}"
            raise _fail(path, msg, "valid YAML", where) from None
        except yaml.YAMLError as exc:
            raise _fail(path, f"YAML error: {exc}", "valid YAML") from None
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise _fail(
            path, f"top level is a {kind}", "a mapping of sections (cluster, workloads, ...)"
        )
    return data
