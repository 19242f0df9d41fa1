"""Command line: a thin layer over the library API (typer + rich)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from planner import api
from planner.errors import PlannerInputError
from planner.load import load
from planner.report import print_training, to_json, validation_table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Plan LLM training and inference across GPU datacenters.",
)
console = Console()
err_console = Console(stderr=True)

Inputs = Annotated[list[Path], typer.Argument(help="Input files (YAML/JSON); sections merge.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _fail(exc: PlannerInputError) -> None:
    for line in exc.lines():
        typer.echo(line, err=True)
    raise typer.Exit(code=2)


@app.command()
def evaluate(inputs: Inputs, json_out: JsonFlag = False) -> None:
    """Cost-model metrics of the configuration(s) in the inputs' plan: section."""
    try:
        metrics = api.evaluate(load(*inputs), source=", ".join(map(str, inputs)))
    except PlannerInputError as exc:
        _fail(exc)
        return
    if json_out:
        print(to_json({"training": metrics}))
    else:
        print_training(console, metrics)


@app.command()
def validate(
    runs: Annotated[Path, typer.Argument(help="Measured runs (planner-validation-runs/v1).")],
    json_out: JsonFlag = False,
) -> None:
    """Compare the cost model's tokens/s per GPU with measured runs."""
    try:
        report = api.validate_runs(runs)
    except PlannerInputError as exc:
        _fail(exc)
        return
    if json_out:
        print(to_json(report))
    else:
        console.print(validation_table(report))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
