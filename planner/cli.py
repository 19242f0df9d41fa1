"""Command line: a thin layer over the library API (typer + rich)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from planner import api
from planner.errors import PlannerInputError
from planner.load import load
from planner.report import (
    print_training,
    result_json,
    result_tables,
    to_json,
    validation_table,
)
from planner.result import SolveOptions
from planner.spec.problem import ObjectiveKind

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


class Backend(StrEnum):
    MILP = "milp"
    CPSAT = "cpsat"
    EXHAUSTIVE = "exhaustive"
    GREEDY = "greedy"


@app.command("plan")
def plan_cmd(
    inputs: Inputs,
    objective: Annotated[
        ObjectiveKind | None,
        typer.Option("--objective", help="What to optimise (default: the input's objective)."),
    ] = None,
    backend: Annotated[Backend, typer.Option(help="Solver backend.")] = Backend.MILP,
    time_limit: Annotated[
        float, typer.Option("--time-limit", min=0.1, help="Solver time limit, seconds.")
    ] = 60.0,
    json_out: JsonFlag = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the result JSON (feeds `evaluate`).")
    ] = None,
    export_model: Annotated[
        Path | None,
        typer.Option("--export-model", help="Write the formulation (.lp or CP-SAT text)."),
    ] = None,
) -> None:
    """Find the best plan for the inputs' training jobs, with its bound and gap."""
    try:
        problem = load(*inputs)
    except PlannerInputError as exc:
        _fail(exc)
        return
    goal = problem.objective
    if objective is not None:
        goal = goal.model_copy(update={"kind": objective})
    opts = SolveOptions(
        time_limit_s=time_limit, export_model=str(export_model) if export_model else None
    )
    result = api.plan(problem, objective=goal, backend=backend.value, options=opts)
    doc = result_json(result, api.describe(result, problem))
    if out is not None:
        out.write_text(to_json(doc) + "\n", encoding="utf-8")
    if json_out:
        print(to_json(doc))
    else:
        for table in result_tables(result, doc["plan"]["details"]):
            console.print(table)
        if result.metrics:
            print_training(console, result.metrics)
    if not result.ok:
        raise typer.Exit(code=1)


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
