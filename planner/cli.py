"""Command line: a thin layer over the library API (typer + rich)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml
from rich.console import Console

from planner import api
from planner.catalog import Catalog, default_catalog
from planner.errors import InputProblem, PlannerInputError
from planner.load import load
from planner.report import (
    pareto_table,
    power_table,
    prefill_table,
    print_training,
    profile_table,
    result_json,
    result_tables,
    serving_sim_table,
    serving_tables,
    simulation_table,
    stage_caps_table,
    to_json,
    validation_table,
)
from planner.result import SolveOptions
from planner.spec.problem import ObjectiveKind, Problem

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Plan LLM training and inference across GPU datacenters.",
)
console = Console()
err_console = Console(stderr=True)

Inputs = Annotated[list[Path], typer.Argument(help="Input files (YAML/JSON); sections merge.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Hardware = Annotated[
    Path | None,
    typer.Option(
        "--hardware", help="Hardware profile from `planner calibrate` (replaces the catalog's)."
    ),
]


def _inputs(inputs: list[Path], hardware: Path | None) -> tuple[Problem, Catalog]:
    """The merged inputs and the catalog (with a hardware profile); bad input exits 2."""
    try:
        return load(*inputs), _catalog(hardware)
    except PlannerInputError as exc:
        _fail(exc)


def _catalog(hardware: Path | None) -> Catalog:
    from planner.calibrate.fit import apply_profile, read_profile

    cat = default_catalog()
    return apply_profile(cat, read_profile(hardware)) if hardware else cat


def _fail(exc: PlannerInputError) -> NoReturn:
    for line in exc.lines():
        typer.echo(line, err=True)
    raise typer.Exit(code=2)


@app.command()
def evaluate(inputs: Inputs, json_out: JsonFlag = False, hardware: Hardware = None) -> None:
    """Cost-model metrics of the training and serving configurations in the inputs' plan:
    section."""
    source = ", ".join(map(str, inputs))
    try:
        problem, catalog = load(*inputs), _catalog(hardware)
        metrics = api.evaluate(problem, catalog, source=source)
        serving = api.evaluate_serving(problem, catalog, source=source)
    except PlannerInputError as exc:
        _fail(exc)
        return
    if json_out:
        print(to_json({"training": metrics, "serving": serving}))
    else:
        print_training(console, metrics)
        for table in serving_tables(serving):
            console.print(table)


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
    hardware: Hardware = None,
    stage_caps: Annotated[
        bool,
        typer.Option(
            "--stage-caps",
            help="Then lower the power caps of non-critical pipeline stages (Perseus).",
        ),
    ] = False,
) -> None:
    """Find the best plan for the inputs' training jobs and inference services, with its
    bound and gap."""
    problem, catalog = _inputs(inputs, hardware)
    goal = problem.objective
    if objective is not None:
        goal = goal.model_copy(update={"kind": objective})
    opts = SolveOptions(
        time_limit_s=time_limit, export_model=str(export_model) if export_model else None
    )
    result = api.plan(problem, catalog, objective=goal, backend=backend.value, options=opts)
    caps: list[dict[str, object]] = []
    if stage_caps and result.ok:
        result, reports = api.stage_caps(result, problem, catalog)
        caps = [r.to_json() for r in reports]
    power = api.site_power(result, problem, catalog)
    doc = result_json(result, api.describe(result, problem, catalog), power)
    if stage_caps:
        doc["stage_caps"] = caps
    if out is not None:
        out.write_text(to_json(doc) + "\n", encoding="utf-8")
    if json_out:
        print(to_json(doc))
    else:
        for table in result_tables(result, doc["plan"]["details"]):
            console.print(table)
        if result.metrics:
            print_training(console, result.metrics)
        for table in serving_tables(result.serving):
            console.print(table)
        if result.serving and power:
            console.print(power_table(power))
        if caps:
            console.print(stage_caps_table(caps))
    if not result.ok:
        raise typer.Exit(code=1)


class SweepBackend(StrEnum):
    MILP = "milp"
    CPSAT = "cpsat"


@app.command()
def pareto(
    inputs: Inputs,
    x: Annotated[
        str, typer.Option("--x", help="Axis to minimise: energy, carbon, cost or time_to_train.")
    ] = "energy",
    y: Annotated[str, typer.Option("--y", help="Axis to maximise: throughput.")] = "throughput",
    points: Annotated[
        int, typer.Option("--points", min=2, help="Solves along the sweep, extremes included.")
    ] = 8,
    backend: Annotated[SweepBackend, typer.Option(help="Solver backend.")] = SweepBackend.MILP,
    time_limit: Annotated[
        float, typer.Option("--time-limit", min=0.1, help="Time limit of each solve, seconds.")
    ] = 60.0,
    json_out: JsonFlag = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the front as a figure (.png or .svg).")
    ] = None,
    hardware: Hardware = None,
) -> None:
    """Sweep the trade-off between a cost-like objective and throughput for the inputs' one
    training job (epsilon-constraint), and print or plot its Pareto front."""
    from rich.progress import Progress

    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        _fail(
            PlannerInputError([InputProblem(str(plot), "--plot", "unknown suffix", ".png or .svg")])
        )
    problem, catalog = _inputs(inputs, hardware)
    opts = SolveOptions(time_limit_s=time_limit)
    with Progress(console=err_console, transient=True, disable=json_out) as bar:
        task = bar.add_task("pareto sweep", total=points + 1)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            front = api.pareto(problem, catalog, x, y, points, backend.value, opts, tick)
        except PlannerInputError as exc:
            _fail(exc)
    if plot is not None:
        from planner.plots import pareto_figure

        pareto_figure(front.points, front.x_label, front.y_label, plot)
    if json_out:
        print(to_json(front.to_json()))
    else:
        console.print(pareto_table(front))
    if not front.front:
        raise typer.Exit(code=1)


class Policy(StrEnum):
    FAIR = "fair"
    TEMPORAL = "temporal"


@app.command()
def simulate(
    inputs: Inputs,
    policy: Annotated[
        Policy | None, typer.Option(help="WAN sharing (default: each configuration's own).")
    ] = None,
    json_out: JsonFlag = False,
    hardware: Hardware = None,
    timeline: Annotated[
        Path | None, typer.Option("--timeline", help="Write a Gantt chart (.png or .svg).")
    ] = None,
    requests: Annotated[
        int, typer.Option("--requests", min=100, help="Requests per simulated service.")
    ] = 20_000,
) -> None:
    """Replay one iteration of the inputs' plan (or of the plan `planner plan` finds) event by
    event, and compare it with the cost model; replay each service's requests (Poisson
    arrivals) on its engines and measure SLO attainment."""
    problem, catalog = _inputs(inputs, hardware)
    if problem.plan is None:
        found = api.plan(problem, catalog)
        if found.plan is None:
            typer.echo(f"no plan to simulate: {found.status.value} {found.explanation}", err=True)
            raise typer.Exit(code=1)
        problem = problem.model_copy(update={"plan": found.plan})
    rows = api.simulate(problem, catalog, policy.value if policy else None, timeline)
    served = api.simulate_serving(problem, catalog, requests)
    if json_out:
        print(to_json({"simulations": rows, "serving": served}))
    else:
        if rows:
            console.print(simulation_table(rows))
        prefill = prefill_table(rows)
        if prefill is not None:
            console.print(prefill)
        if served:
            console.print(serving_sim_table(served))


@app.command()
def calibrate(
    from_raw: Annotated[
        list[Path] | None,
        typer.Option("--from-raw", help="Fit bench.py outputs instead of running it."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Profile to write (default models/hardware/).")
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(help="GPU type, if the device name is unknown.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Measure the local GPUs (or fit saved measurements) into a hardware profile."""
    from planner.calibrate.fit import calibrate as fit
    from planner.calibrate.fit import run_bench

    try:
        raws = list(from_raw or [])
        if not raws:
            raws = [Path("calibration-raw.json")]
            run_bench(raws[0])
        profile = fit(raws, default_catalog(), gpu)
    except PlannerInputError as exc:
        _fail(exc)
        return
    target = (
        out
        or Path("models/hardware")
        / f"{profile['gpu']}-{profile['measured'].get('date', 'profile')}.yaml"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    if json_out:
        print(to_json(profile))
    else:
        console.print(profile_table(profile, default_catalog()))
        console.print(f"wrote {target}")


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
