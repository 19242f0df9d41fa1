"""Reporting: rich tables and JSON for the CLI (all printing lives here)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from planner.catalog import Catalog
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.result import Result

if TYPE_CHECKING:
    from planner.pareto import ParetoFront


def to_json(obj: Any) -> str:
    """Pretty JSON of plain data or pydantic models."""

    def default(o: Any) -> Any:
        if hasattr(o, "model_dump"):
            return o.model_dump(mode="json")
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=default)


def _fmt(x: float, unit: str = "") -> str:
    if abs(x) >= 1e6 or (0 < abs(x) < 1e-3):
        return f"{x:.3e}{unit}"
    return f"{x:,.3f}{unit}" if abs(x) < 100 else f"{x:,.1f}{unit}"


def training_tables(m: TrainingMetrics) -> list[Table]:
    """Summary, per-device and energy tables of one evaluated configuration."""
    c = m.config
    summary = Table(title=f"{m.job}: {m.model} on {m.n_gpus} x {c['gpu']}", show_header=False)
    summary.add_column("metric", style="bold")
    summary.add_column("value", justify="right")
    rows = [
        (
            "parallelism",
            f"TP {c['tp']} PP {c['pp']} DP {c['dp']} CP {c['cp']} EP {c['ep']}"
            f" | mb {c['micro_batch']} x {m.micro_batches} | {c['schedule']}"
            f" v{c['vpp']} | recompute {c['recompute']} | ZeRO {c['zero_stage']}",
        ),
        ("iteration time", _fmt(m.iteration_time_s, " s")),
        ("tokens/s", _fmt(m.tokens_per_s)),
        ("tokens/s per GPU", _fmt(m.tokens_per_s_per_gpu)),
        ("MFU / HFU", f"{m.mfu:.1%} / {m.hfu:.1%}"),
        ("bubble share", f"{m.bubble_fraction:.1%}"),
        ("time to train", _fmt(m.time_to_train_h, " h")),
        ("fits memory", "yes" if m.fits_memory else "NO"),
    ]
    b = m.breakdown
    for name, val in (
        ("compute", b.compute_s),
        ("bubble", b.bubble_s),
        ("exposed TP/CP/EP/PP comm", b.exposed_comm_s),
        ("exposed DP comm", b.dp_exposed_s),
        ("optimizer", b.optimizer_s),
        ("step overhead", b.overhead_s),
    ):
        rows.append((f"  {name}", _fmt(val, " s")))
    for r in rows:
        summary.add_row(*r)
    devices = Table(title="pipeline devices (per GPU)")
    for col in (
        "dev",
        "site/pool",
        "layers",
        "fwd s/mb",
        "bwd s/mb",
        "busy s",
        "idle s",
        "mem GiB",
        "of",
    ):
        devices.add_column(col, justify="right")
    for d in m.devices:
        devices.add_row(
            str(d.device),
            f"{d.site}/{d.pool}",
            "+".join(map(str, d.layers)),
            _fmt(d.fwd_s),
            _fmt(d.bwd_s),
            _fmt(d.busy_s),
            _fmt(d.idle_s),
            f"[{'green' if d.memory.fits else 'red'}]{d.memory.total:.1f}[/]",
            f"{d.memory.capacity:.0f}",
        )
    e = m.energy
    energy = Table(title="power, energy and footprint", show_header=False)
    energy.add_column("metric", style="bold")
    energy.add_column("value", justify="right")
    energy_rows: tuple[tuple[str, str], ...] = (
        ("GPU power (avg per GPU)", _fmt(e.gpu_power_w, " W")),
        ("facility power", _fmt(e.facility_power_w / 1e6, " MW")),
        ("energy to train", _fmt(e.energy_to_train_kwh / 1e3, " MWh")),
        ("carbon to train", _fmt(e.carbon_to_train_kg / 1e3, " t CO2")),
        ("water to train", _fmt(e.water_to_train_l / 1e3, " m3")),
        ("cost to train", _fmt(e.cost_to_train_usd, " USD")),
    )
    for name, text in energy_rows:
        energy.add_row(name, text)
    for site, w in e.power_by_site_w.items():
        energy.add_row(f"  power at {site}", _fmt(w / 1e6, " MW"))
    tables = [summary, devices, energy]
    if m.reliability is not None:
        tables.append(reliability_table(m))
    return tables


def reliability_table(m: TrainingMetrics) -> Table:
    """Failures, checkpoints and goodput of one evaluated configuration."""
    r = m.reliability
    t = Table(title="failures and goodput", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    if r is None:
        return t
    for name, text in (
        ("job MTBF", _fmt(r.mtbf_h, " h")),
        ("checkpoint write", _fmt(r.checkpoint_s, " s")),
        ("restart", _fmt(r.restart_s, " s")),
        ("interval Young / Daly", f"{_fmt(r.young_interval_s)} / {_fmt(r.optimal_interval_s)} s"),
        ("interval used", _fmt(r.interval_s, " s")),
        ("goodput fraction", f"{r.goodput_fraction:.2%}"),
        ("goodput tokens/s", _fmt(r.goodput_tokens_per_s)),
        ("interruptions to train", _fmt(r.failures_to_train)),
        ("wall time to train", _fmt(r.wall_time_to_train_h, " h")),
    ):
        t.add_row(name, text)
    return t


def print_training(console: Console, metrics: list[TrainingMetrics]) -> None:
    """Every table of every evaluated configuration, then its warnings."""
    for m in metrics:
        for t in training_tables(m):
            console.print(t)
        for w in m.warnings:
            console.print(f"[yellow]warning:[/] {w}")


def validation_table(report: dict[str, Any]) -> Table:
    """Measured vs predicted tokens/s per GPU, with the summary in the caption."""
    t = Table(title="cost model vs measured runs (tokens/s per GPU)")
    for col in ("run", "measured", "predicted", "error"):
        t.add_column(col, justify="right" if col != "run" else "left")
    for r in report["runs"]:
        if "skipped" in r:
            t.add_row(r["id"], "", "", f"skipped: {r['skipped']}")
            continue
        err = r["rel_error"]
        colour = "green" if abs(err) <= 0.1 else "yellow" if abs(err) <= 0.2 else "red"
        t.add_row(r["id"], _fmt(r["measured"]), _fmt(r["predicted"]), f"[{colour}]{err:+.1%}[/]")
    s = report["summary"]
    if s["median_abs_rel_error"] is not None:
        t.caption = (
            f"n={s['n']} skipped={s['n_skipped']}  |error| median "
            f"{s['median_abs_rel_error']:.1%}, p90 {s['p90_abs_rel_error']:.1%}, "
            f"max {s['max_abs_rel_error']:.1%}"
        )
    return t


def result_json(
    result: Result, details: list[dict[str, Any]], power: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON of ``planner plan``: status, objective, bound, gap, time, backend, the plan
    (loadable ``training`` and ``serving`` configurations plus their machine-level
    ``details`` and per-site ``power``) and the cost-model metrics of jobs and services."""
    return {
        "status": result.status.value,
        "objective": result.objective,
        "objective_kind": result.objective_kind,
        "bound": result.bound,
        "gap": result.gap,
        "solve_time_s": result.solve_time_s,
        "backend": result.backend,
        "explanation": result.explanation,
        "plan": {
            "training": [
                c.model_dump(mode="json", exclude_defaults=True)
                for c in (result.plan.training if result.plan else [])
            ],
            "serving": [
                c.model_dump(mode="json", exclude_defaults=True)
                for c in (result.plan.serving if result.plan else [])
            ],
            "details": details,
            "power": power,
        },
        "metrics": [m.model_dump(mode="json") for m in result.metrics],
        "serving": [m.model_dump(mode="json") for m in result.serving],
        "stats": result.stats,
    }


def result_tables(result: Result, details: list[dict[str, Any]]) -> list[Table]:
    """Solve summary, then per job its stage map and WAN crossings."""
    head = Table(title="plan", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value", justify="right")
    colour = "green" if result.ok else "red"
    head.add_row("status", f"[{colour}]{result.status.value}[/]")
    head.add_row("backend", result.backend)
    kind = result.objective_kind or "objective"
    if result.objective is not None:
        head.add_row(kind, _fmt(result.objective))
    if result.bound is not None:
        head.add_row("bound", _fmt(result.bound))
    if result.gap is not None:
        head.add_row("gap", f"{result.gap:.2e}")
    head.add_row("solve time", f"{result.solve_time_s:.2f} s")
    cols = result.stats.get("columns")
    if cols:
        head.add_row(
            "candidates",
            f"{result.stats.get('enumerated', 0)} enumerated, {cols} columns kept "
            f"(memory {result.stats.get('pruned_memory', 0)}, bound "
            f"{result.stats.get('pruned_bound', 0)}, floor {result.stats.get('pruned_floor', 0)}"
            " pruned)",
        )
    options = result.stats.get("service_options")
    if options:
        head.add_row("serving options", f"{options} engine shapes x roles x pools")
    if result.explanation:
        head.add_row("why", result.explanation)
    tables = [head]
    for d in details:
        stages = Table(title=f"{d['job']}: stages on {d['n_gpus']} x {d['gpu']}")
        for c in ("stage", "site/pool", "layers", "DP replicas", "ranks", "nodes"):
            stages.add_column(c, justify="left" if c == "site/pool" else "right")
        for s in d["stages"]:
            stages.add_row(
                str(s["stage"]),
                f"{s['site']}/{s['pool']}",
                ", ".join(f"{a}-{b}" for a, b in s["layers"]),
                f"{s['dp_replicas'][0]}-{s['dp_replicas'][1]}",
                f"{s['ranks'][0]}-{s['ranks'][1]}",
                f"{s['nodes'][0]}-{s['nodes'][1]}",
            )
        tables.append(stages)
        if d["wan_crossings"]:
            wan = Table(title=f"{d['job']}: WAN crossings")
            for c in ("stages", "path", "Gbps", "RTT ms", "TCP conns", "sharing", "cells"):
                wan.add_column(c, justify="right")
            for x in d["wan_crossings"]:
                wan.add_row(
                    f"{x['from_stage']}->{x['to_stage']}",
                    " > ".join(x["sites"]),
                    _fmt(x["bw_gbps"]),
                    _fmt(x["rtt_ms"]),
                    str(x["tcp_connections"]),
                    x["sharing"],
                    f"{len(x['cells'])} x {x['cell_size']} pipelines",
                )
            tables.append(wan)
    return tables


def profile_table(profile: dict[str, Any], catalog: Catalog) -> Table:
    """A fitted hardware profile next to the catalog's constants."""
    gpu = catalog.gpu(profile["gpu"])
    t = Table(title=f"hardware profile: {profile['gpu']} ({profile['measured'].get('device')})")
    for col in ("constant", "catalog", "measured"):
        t.add_column(col, justify="left" if col == "constant" else "right")
    for key, value in profile["efficiency"].items():
        t.add_row(key, _fmt(float(getattr(gpu.efficiency, key))), _fmt(float(value)))
    t.add_row("idle_w", _fmt(gpu.idle_w), _fmt(float(profile["power"]["idle_w"])))
    return t


def simulation_table(rows: list[dict[str, Any]]) -> Table:
    """Cost model vs discrete-event replay, per configuration."""
    t = Table(title="one iteration: cost model vs discrete-event simulation")
    for col in ("job", "schedule", "policy", "cost model", "simulated", "difference", "GPU busy"):
        t.add_column(col, justify="left" if col in ("job", "schedule", "policy") else "right")
    for r in rows:
        t.add_row(
            r["job"],
            r["schedule"],
            r["policy"],
            f"{r['cost_model_s']:.3f} s",
            f"{r['simulated_s']:.3f} s",
            f"{r['difference']:+.2%}",
            ", ".join(f"{u:.0%}" for u in r["utilisation"]),
        )
    return t


def pareto_table(front: ParetoFront) -> Table:
    """The points of a Pareto sweep, by ``y``: objectives, the throughput floor of the solve
    (tokens/s), status and configuration."""
    t = Table(title=f"Pareto front: {front.x_label} vs {front.y_label} ({front.backend})")
    for col in (front.x.replace("_", " "), front.y, "floor", "status", "plan", "sites"):
        left = col in ("status", "plan", "sites")
        t.add_column(col, justify="left" if left else "right", no_wrap=not left)
    t.add_column("front")
    for p in front.points:
        t.add_row(
            _fmt(p.x) if p.x is not None else "-",
            _fmt(p.y) if p.y is not None else "-",
            _fmt(p.floor_tokens_per_s) if p.floor_tokens_per_s is not None else "-",
            p.status,
            p.label(full=True) if p.gpu else "-",
            ", ".join(p.sites) or "-",
            "" if not p.ok else ("dominated" if p.dominated else "yes"),
            style="dim" if p.dominated or not p.ok else None,
        )
    return t


def stage_caps_table(rows: list[dict[str, Any]]) -> Table:
    """Per-stage power caps (``StageCapReport.to_json`` rows): caps, time and energy."""
    t = Table(title="per-stage power caps (Perseus)")
    for col in ("job", "caps W (stage 0..)", "iteration", "energy / iteration", "saved"):
        t.add_column(col, justify="left" if col == "job" else "right")
    for r in rows:
        t.add_row(
            r["job"],
            ", ".join(f"{c:.0f}" for c in r["caps_w"]),
            f"{r['iteration_s_before']:.3f} -> {r['iteration_s_after']:.3f} s",
            f"{r['energy_per_iteration_j_before'] / 1e6:.3f} -> "
            f"{r['energy_per_iteration_j_after'] / 1e6:.3f} MJ",
            f"{r['saving']:.2%}",
        )
    return t


def prefill_table(rows: list[dict[str, Any]]) -> Table | None:
    """Prefill harvested in the bubbles of each simulated configuration, if any."""
    items = [(r["job"], h) for r in rows for h in r.get("prefill_in_bubbles", [])]
    if not items:
        return None
    t = Table(title="prefill in training bubbles")
    for col in ("job", "service", "prefill", "req/s", "demand", "GPU busy", "TTFT wait P50/P99"):
        t.add_column(col, justify="left" if col in ("job", "service") else "right")
    for job, h in items:
        waits = h["ttft_wait_s"]
        t.add_row(
            job,
            h["service"],
            f"{h['prefill_s'] * 1e3:.1f} ms",
            f"{h['capacity_rps']:,.1f}",
            f"{h['demand_covered']:.0%}",
            f"{h['utilisation_without']:.0%} -> {h['utilisation_with']:.0%}",
            f"{waits.get('p50', 0) * 1e3:.1f} / {waits.get('p99', 0) * 1e3:.1f} ms"
            if waits
            else "-",
        )
    return t


def serving_tables(metrics: list[ServingMetrics]) -> list[Table]:
    """Per service: its engines with goodput, load and latency percentiles, then totals."""
    out = []
    for m in metrics:
        title = (
            f"{m.service}: {m.n_gpus} GPUs in {m.site}, goodput {_fmt(m.goodput_rps)} req/s "
            f"for {_fmt(m.rate_rps)} req/s ({_fmt(m.goodput_per_gpu)} req/s per GPU)"
        )
        t = _columns(
            title,
            (
                "role",
                "pool",
                "TP",
                "PP",
                "cap W",
                "engines",
                "goodput/engine",
                "load/engine",
                "TTFT s",
                "TPOT s",
                "util",
                "peak W",
            ),
            ("role", "pool"),
        )
        for e in m.engines:
            t.add_row(
                e.role,
                e.pool,
                str(e.tp),
                str(e.pp),
                "-" if e.power_cap_w is None else _fmt(e.power_cap_w),
                str(e.count),
                _fmt(e.goodput_rps),
                _fmt(e.load_rps),
                "-" if e.role == "decode" else f"{e.ttft_s:.3f}",
                "-" if e.role == "prefill" else f"{e.tpot_s:.4f}",
                f"{e.utilisation:.0%}",
                _fmt(e.peak_w),
            )
        out.append(t)
        if m.warnings:
            w = Table(title=f"{m.service}: warnings", show_header=False)
            w.add_column("warning")
            for line in m.warnings:
                w.add_row(line)
            out.append(w)
    return out


def _columns(title: str, names: tuple[str, ...], left: tuple[str, ...]) -> Table:
    """A table with ``names`` as columns, right-aligned except ``left``."""
    t = Table(title=title)
    for c in names:
        t.add_column(c, justify="left" if c in left else "right")
    return t


def power_table(rows: list[dict[str, Any]]) -> Table:
    """Per site: budget, what training and serving count against it, and the margin."""
    t = _columns(
        "site power (facility, x PUE)",
        (
            "site",
            "budget kW",
            "training kW",
            "serving caps kW",
            "serving peaks kW",
            "counted kW",
            "margin kW",
            "oversubscribed by kW",
        ),
        ("site",),
    )
    for r in rows:
        t.add_row(
            r["site"] + (" (oversubscribes)" if r["oversubscription"] else ""),
            _fmt(r["budget_w"] / 1e3),
            _fmt(r["training_w"] / 1e3),
            _fmt(r["serving_caps_w"] / 1e3),
            _fmt(r["serving_peaks_w"] / 1e3),
            _fmt(r["counted_w"] / 1e3),
            _fmt(r["margin_w"] / 1e3),
            _fmt(r["caps_over_budget_w"] / 1e3),
        )
    return t


def serving_sim_table(rows: list[dict[str, Any]]) -> Table:
    """Request-level simulation of each service against its SLO."""
    t = _columns(
        "serving: request-level simulation (Poisson arrivals)",
        (
            "service",
            "req/s",
            "requests",
            "TTFT P50/P90/P99 s",
            "TPOT P50/P90/P99 s",
            "TTFT ok",
            "TPOT ok",
            "both ok",
            "target",
        ),
        ("service",),
    )
    for r in rows:
        t.add_row(
            r["service"],
            _fmt(r["rate_rps"]),
            str(r["requests"]),
            "/".join(f"{r['ttft_s'][k]:.3f}" for k in ("p50", "p90", "p99")),
            "/".join(f"{r['tpot_s'][k]:.4f}" for k in ("p50", "p90", "p99")),
            f"{r['ttft_attainment']:.1%}",
            f"{r['tpot_attainment']:.1%}",
            f"{r['attainment']:.1%}",
            f"{r['target']:.0%}",
        )
    return t


def explain_text(why: dict[str, Any]) -> Table:
    """``planner explain`` in plain words: the objective, each job's configuration and
    bottleneck, every constraint (binding first) and the alternatives."""
    t = Table(title=f"why this plan ({why.get('source', '')})", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("why")
    if "objective" not in why:
        for line in why.get("summary", []):
            t.add_row("no plan", line)
        return t
    t.add_row("objective", f"{why['objective_kind']} {_fmt(why['objective'])}")
    for j in why["jobs"]:
        t.add_row(f"{j['job']}", f"{j['config']}\n{j['bottleneck']['text']}")
    rules = sorted(why["constraints"], key=lambda c: not c["binding"])
    for c in rules:
        label = "[red]binds[/]" if c["binding"] else "[green]slack[/]"
        t.add_row(label, c["text"])
    for a in why["alternatives"]:
        t.add_row("alternative", a["text"])
    return t
