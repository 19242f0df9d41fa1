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
from planner.load import input_sections, load
from planner.report import (
    explain_text,
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
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write power per site and WAN use (.png or .svg)."),
    ] = None,
) -> None:
    """Find the best plan for the inputs' training jobs and inference services, with its
    bound and gap."""
    _check_plot(plot)
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
        doc["input"] = input_sections(problem.model_copy(update={"objective": goal}))
        out.write_text(to_json(doc) + "\n", encoding="utf-8")
    if plot is not None and result.ok:
        from planner.plots import plan_figure

        plan_figure(power, result.metrics, plot)
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
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write WAN link use, cost model vs replay (.png or .svg)."),
    ] = None,
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
    _check_plot(plot)
    rows = api.simulate(problem, catalog, policy.value if policy else None, timeline)
    served = api.simulate_serving(problem, catalog, requests)
    if plot is not None:
        from planner.plots import link_figure

        link_figure(rows, plot)
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


def _csv(text: str | None) -> list[str] | None:
    """``a,b,c`` -> ``["a", "b", "c"]`` (None stays None; ``none`` is empty)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return [] if items == ["none"] else items


@app.command()
def bench(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Instance files or folders (default instances/).")
    ] = None,
    backends: Annotated[str, typer.Option(help="Comma-separated backends.")] = "milp",
    tier: Annotated[
        str | None, typer.Option(help="Comma-separated tiers: tiny, small, medium, large.")
    ] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs per instance x backend.")] = 3,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated baselines, or none.")
    ] = "atlas,megatron,dp-sites,single-site",
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.1)] = 60.0,
    json_out: JsonFlag = False,
    report: Annotated[Path | None, typer.Option(help="Write a Markdown report.")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the instances only.")] = False,
    update: Annotated[
        Path | None, typer.Option(help="With --list: rewrite the table in this Markdown file.")
    ] = None,
) -> None:
    """Run every instance x backend, time it, and compare its plan with the baselines
    (docs/baselines.md); or, with --list, describe the instance suite."""
    from rich.progress import Progress

    from planner.bench import discover, steps
    from planner.report_bench import bench_markdown, bench_table, suite_table
    from planner.suite import entry, update_readme

    try:
        found = discover(paths or [Path("instances")], _csv(tier))
        if list_only:
            if update is not None and tier is not None:
                raise PlannerInputError(
                    [InputProblem("--update", "", "rewrites the whole table", "no --tier")]
                )
            entries = [entry(p) for p in found]
            if update is not None:
                update.write_text(update_readme(update, entries), encoding="utf-8")
            console.print(suite_table(entries))
            return
        kinds, chosen = _csv(backends) or ["milp"], _csv(baselines) or []
        with Progress(console=err_console, transient=True, disable=json_out) as bar:
            task = bar.add_task("bench", total=steps(len(found), kinds, repeat, chosen))

            def tick(what: str) -> None:
                bar.update(task, advance=1, description=what)

            done = api.bench(
                list(found),
                kinds,
                None,
                repeat,
                chosen,
                SolveOptions(time_limit_s=time_limit),
                tick,
            )
    except PlannerInputError as exc:
        _fail(exc)
    if report is not None:
        command = "planner bench " + " ".join(sys.argv[2:])
        report.write_text(bench_markdown(done, command), encoding="utf-8")
    if json_out:
        print(to_json(done.to_json()))
    else:
        console.print(bench_table(done))
    if not done.ok:
        raise typer.Exit(code=1)


@app.command()
def sweep(
    inputs: Inputs,
    vary: Annotated[
        list[str],
        typer.Option(help="FIELD=V1,V2,... by dotted path, e.g. cluster.links[0].bw_gbps=1,10"),
    ],
    backend: Annotated[SweepBackend, typer.Option(help="Solver backend.")] = SweepBackend.MILP,
    workers: Annotated[int | None, typer.Option(min=1, help="Local processes.")] = None,
    ray: Annotated[
        str | None, typer.Option(help="Run as Ray tasks: a cluster address, auto, or local.")
    ] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.1)] = 60.0,
    json_out: JsonFlag = False,
    out: Annotated[Path | None, typer.Option(help="Write the table (.csv or .json).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a figure (.png or .svg).")] = None,
) -> None:
    """Solve a what-if grid over any input fields and tabulate (and plot) the chosen plans."""
    from rich.progress import Progress

    from planner.report_bench import sweep_csv, sweep_table

    for path, kinds in ((out, (".csv", ".json")), (plot, (".png", ".svg"))):
        if path is not None and path.suffix.lower() not in kinds:
            _fail(
                PlannerInputError(
                    [InputProblem(str(path), "", "unknown suffix", " or ".join(kinds))]
                )
            )
    with Progress(console=err_console, transient=True, disable=json_out) as bar:
        task = bar.add_task("sweep", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            found = api.what_if(list(inputs), vary, backend.value, workers, ray, time_limit, tick)
        except PlannerInputError as exc:
            _fail(exc)
    if out is not None:
        text = sweep_csv(found) if out.suffix.lower() == ".csv" else to_json(found.to_json())
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    if plot is not None:
        from planner.plots import sweep_figure

        sweep_figure(found.rows, [v.path for v in found.vary], plot)
    if json_out:
        print(to_json(found.to_json()))
    else:
        console.print(sweep_table(found))


def _check_plot(plot: Path | None) -> None:
    """A figure path must end in .png or .svg (exit 2 otherwise)."""
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        _fail(
            PlannerInputError([InputProblem(str(plot), "--plot", "unknown suffix", ".png or .svg")])
        )


class ExportFormat(StrEnum):
    MEGATRON = "megatron"
    DEEPSPEED = "deepspeed"
    TORCHRUN = "torchrun"
    SLURM = "slurm"
    VLLM = "vllm"


@app.command()
def export(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="A saved `planner plan --out` result, or inputs with a plan: section."),
    ],
    to: Annotated[ExportFormat, typer.Option("--to", help="What to write.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the files into this folder.")
    ] = None,
) -> None:
    """Launch settings of the plan: Megatron-LM arguments, a DeepSpeed config, torchrun host
    and rank files, a Slurm batch script, or vLLM engine lines (serving)."""
    try:
        files = api.export(load(*inputs), to.value)
    except PlannerInputError as exc:
        _fail(exc)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            (out / f.name).write_text(f.text, encoding="utf-8")
            typer.echo(f"wrote {out / f.name}")
        return
    shown = [f for f in files if not f.name.endswith((".notes.txt", "serving.txt"))]
    for f in files:
        if f not in shown:
            typer.echo(f.text.rstrip("\n"), err=True)
    for f in shown:
        if len(shown) > 1:
            print(f"==> {f.name} <==")
        print(f.text, end="" if f.text.endswith("\n") else "\n")


@app.command()
def explain(
    inputs: Inputs,
    backend: Annotated[Backend, typer.Option(help="Solver backend.")] = Backend.MILP,
    time_limit: Annotated[
        float, typer.Option("--time-limit", min=0.1, help="Time limit of each solve, seconds.")
    ] = 60.0,
    alternatives: Annotated[
        bool,
        typer.Option(help="Also re-solve without each job's chosen configuration, and greedy."),
    ] = True,
    json_out: JsonFlag = False,
    hardware: Hardware = None,
) -> None:
    """Say why the plan (the inputs' plan: section, or the one `planner plan` finds) is what
    it is: binding constraints, each job's bottleneck, and the next-best alternative."""
    problem, catalog = _inputs(inputs, hardware)
    opts = SolveOptions(time_limit_s=time_limit)
    why = api.explain(problem, catalog, backend.value, opts, alternatives)
    if json_out:
        print(to_json(why))
    else:
        console.print(explain_text(why))
    if "objective" not in why:
        raise typer.Exit(code=1)


@app.command()
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write every schema into this folder.")
    ] = None,
) -> None:
    """JSON Schema of the input files (one per file and per section), versioned, for editors
    and other tools; without --out, print the input-file schema."""
    from planner.schema import schema_text, write_schemas

    if out is None:
        print(schema_text(api.input_schemas()["input.schema.json"]), end="")
        return
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
