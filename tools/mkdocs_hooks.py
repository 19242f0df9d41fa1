"""mkdocs hooks (mkdocs.yml ``hooks:``): pages generated at build time, so they cannot drift.

* ``<!-- cli-reference -->`` becomes every ``planner`` command's usage, description and
  options, read from the typer/click command objects (what ``planner CMD --help`` prints);
* ``<!-- instance-suite -->`` becomes ``instances/README.md`` (the suite's table, kept by
  ``planner bench --list --update``), its links to instance files shown as paths;
* links out of ``docs/`` (``../path``) become the repository path in code, since the site
  holds only ``docs/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"\[([^\]]+)\]\(\.\./([^)\s]+)\)")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _param(p: Any) -> tuple[str, str, str]:
    """(names, default, help) of a click parameter (typer vendors click: duck-typed)."""
    argument = p.param_type_name == "argument"
    names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
    if argument:
        names = f"`{(p.metavar or p.name).upper()}`"
    default = ""
    if not argument and not p.required and p.default not in (None, False, ()):
        default = f"`{getattr(p.default, 'value', p.default)}`"
    helptext = getattr(p, "help", None) or ""
    if p.required:
        helptext = f"(required) {helptext}"
    return names, default, _cell(helptext)


def cli_reference() -> str:
    """Markdown of every command of the ``planner`` console script."""
    from planner.cli import app

    group: Any = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        ctx = cmd.make_context(f"planner {name}", [], resilient_parsing=True)
        usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), cmd.get_usage(ctx))
        out += [f"## planner {name}", "", "```text", usage, "```", ""]
        out += [" ".join((cmd.help or "").split()), ""]
        rows = [_param(p) for p in cmd.params if p.name != "help"]
        if rows:
            out += ["| argument / option | default | what |", "|---|---|---|"]
            out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
            out.append("")
    return "\n".join(out)


def instance_suite() -> str:
    """``instances/README.md`` without its title, links to files shown as paths."""
    readme = ROOT / "instances" / "README.md"
    if not readme.exists():
        names = sorted(p.name for p in (ROOT / "instances").glob("*.yaml"))
        return "\n".join(f"- `instances/{n}`" for n in names)
    text = readme.read_text(encoding="utf-8").split("\n", 1)[1]
    return re.sub(r"\[([^\]]+)\]\(([^)\s:]+)\)", r"\1 (`instances/\2`)", text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the generated sections and turn links out of ``docs/`` into paths."""
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    if "<!-- instance-suite -->" in markdown:
        markdown = markdown.replace("<!-- instance-suite -->", instance_suite())
    return OUTSIDE.sub(r"\1 (`\2`)", markdown)
