"""Reporting: rich tables and JSON for the CLI (all printing lives here)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from planner.costmodel.metrics import TrainingMetrics


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
    return [summary, devices, energy]


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
