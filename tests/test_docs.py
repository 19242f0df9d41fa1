"""The docs stay true: the quickstart's Megatron line is what `planner export` prints, the
library example runs, and the CLI reference lists every command."""

from __future__ import annotations

import importlib.util
import re

from planner import load
from planner.launch import job_launches, megatron_text
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_megatron_line_is_the_export() -> None:
    text = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    shown = re.search(r"```text\n(pretrain_gpt\.py.*?)```", text, re.S)
    assert shown is not None
    launch = job_launches(load(ROOT / "instances" / "quickstart.yaml"))[0]
    exported = megatron_text(launch)
    assert exported[exported.index("pretrain_gpt.py") :] == shown.group(1)


def test_library_example_runs(capsys) -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    exec(compile(code.group(1), "docs/api.md", "exec"), {})
    assert "ranks.tsv" in capsys.readouterr().out


def test_cli_reference_lists_every_command() -> None:
    from planner.cli import app

    page = _hooks().cli_reference()
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        assert f"## planner {name.replace('_cmd', '')}" in page


def test_links_out_of_docs_become_paths() -> None:
    hooks = _hooks()
    out = hooks.on_page_markdown("see [x](../instances/a.yaml) and [y](y.md)", None, None, None)
    assert out == "see x (`instances/a.yaml`) and [y](y.md)"
