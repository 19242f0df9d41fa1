"""Reporting of ``planner bench`` and ``planner sweep``: rich tables, a Markdown report and a
CSV table (kept next to :mod:`planner.report`, which holds every other table)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from planner.bench import BenchReport, InstanceBench, Run
from planner.heuristics.baselines import NA, Baseline
from planner.suite import Entry
from planner.sweep import SweepResult


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1e6:
        return f"{x:.4g}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _gap(g: float | None) -> str:
    return "-" if g is None else f"{g:.2%}" if g >= 1e-4 else "0"


def _times(r: Run) -> str:
    if not r.times_s:
        return "-"
    if len(r.times_s) == 1:
        return f"{r.median_s:.2f}"
    return f"{r.median_s:.2f} ({min(r.times_s):.2f}-{max(r.times_s):.2f})"


def baseline_cell(ratio: float | None, base: Baseline) -> str:
    """How much better our plan is than one baseline, or why there is no ratio."""
    if ratio is not None:
        return f"{ratio:.2f}x"
    if base.status == NA:
        return "n/a"
    if base.violations:
        return "violates"
    if base.status in ("infeasible", "time_limit_no_solution"):
        return "no plan"
    return "-"


def _memory(r: Run) -> str:
    """Peak resident MiB and its rise during the run (or the rise alone)."""
    if r.peak_mib is not None and r.added_mib is not None:
        return f"{r.peak_mib:,.0f} (+{r.added_mib:,.0f})"
    return "-" if r.added_mib is None else f"+{r.added_mib:,.0f}"


def _expected(r: Run) -> str:
    return {None: "", True: "ok", False: "MISMATCH"}[r.expected_ok]


HEAD = ("instance", "objective", "backend", "status", "value", "gap", "time s")
TAIL = ("columns", "peak MiB", "expected")


def _row(inst: InstanceBench, r: Run, names: Sequence[str]) -> list[str]:
    by = {b.name: b for b in inst.baselines}
    cells = [
        inst.name,
        f"{inst.objective_kind} ({'max' if inst.maximise else 'min'})",
        r.backend,
        r.status if not r.error else f"error: {r.error}",
        _num(r.objective),
        _gap(r.gap),
        _times(r),
    ]
    cells += [
        baseline_cell(r.ratios.get(n), by[n]) if r.objective is not None else "-" for n in names
    ]
    cells += [
        "-" if r.columns is None else str(r.columns),
        _memory(r),
        _expected(r),
    ]
    return cells


def bench_table(report: BenchReport) -> Table:
    """One row per instance x backend; ``vs X``: how many times better than baseline X."""
    t = Table(title=f"planner bench (median of {report.repeat}; vs X = times better than X)")
    names = list(report.baselines)
    for c in (*HEAD, *(f"vs {n}" for n in names), *TAIL):
        left = c in ("instance", "objective", "backend", "status", "expected")
        t.add_column(c, justify="left" if left else "right")
    for inst in report.instances:
        for r in inst.runs:
            style = "red" if r.expected_ok is False or r.error else None
            t.add_row(*_row(inst, r, names), style=style)
    return t


def bench_markdown(report: BenchReport, command: str = "") -> str:
    """The bench as a Markdown report: environment, method, one table, the baselines."""
    env = report.environment
    names = list(report.baselines)
    lines = [
        "## planner bench",
        "",
        f"planner {env.get('planner', '?')}, Python {env.get('python', '?')}, "
        f"{env.get('platform', '?')}, {env.get('cpus', '?')} CPUs, {env.get('date', '')}.",
    ]
    if command:
        lines += ["", f"`{command}`"]
    lines += [
        "",
        f"Time: wall time of the whole `plan` call, median of {report.repeat} "
        "(min-max). Peak memory: resident set of the planner process during the call "
        f"({report.memory_method}; CBC's child process not counted), and in brackets its rise "
        "during the call. `vs X`: how many "
        "times better our plan's objective is than baseline X (ours/X when maximising, X/ours "
        "when minimising); `n/a`: the baseline does not apply; `no plan`: it found none; "
        "`violates`: its plan breaks a rule of the instance (docs/baselines.md).",
        "",
    ]
    cols = [*HEAD, *(f"vs {n}" for n in names), *TAIL]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" if c in HEAD[:4] else "--:" for c in cols) + "|")
    for inst in report.instances:
        for r in inst.runs:
            cells = [c.replace("|", "\\|") for c in _row(inst, r, names)]
            lines.append("| " + " | ".join(cells) + " |")
    if names:
        lines += ["", "Baselines (objective, time):", ""]
        lines.append("| instance | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for inst in report.instances:
            cells = [_baseline_md(b) for b in inst.baselines]
            lines.append(f"| {inst.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _baseline_md(b: Baseline) -> str:
    if b.status == NA:
        return f"n/a ({b.note})"
    if b.objective is None:
        return f"{b.status}"
    flag = " violates" if b.violations else ""
    note = f", {b.note}" if b.note else ""
    return f"{_num(b.objective)} ({b.solve_time_s:.2f} s{note}){flag}"


def suite_table(entries: Sequence[Entry]) -> Table:
    """The instance suite (``planner bench --list``)."""
    t = Table(title="instance suite")
    for c in ("instance", "tier", "sites", "GPUs", "workloads", "objective", "stresses"):
        t.add_column(c, justify="right" if c == "sites" else "left")
    for e in entries:
        t.add_row(e.name, e.tier, str(e.sites), e.gpus, e.workloads, e.objective, e.stresses)
    return t


SWEEP_SHOWN = (
    "status",
    "objective",
    "layout",
    "sites",
    "tp",
    "pp",
    "dp",
    "iteration_time_s",
    "tokens_per_s",
    "dp_cell_size",
    "tcp_connections",
    "solve_time_s",
)


def _cell(v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return _num(v)
    return str(v)


def sweep_table(result: SweepResult) -> Table:
    """The sweep's tidy rows (main columns; the CSV/JSON hold every column)."""
    t = Table(title=f"planner sweep ({result.backend}, {result.runner}, {result.wall_s:.1f} s)")
    varied = [v.path for v in result.vary]
    shown = [*varied, *(c for c in SWEEP_SHOWN if c not in varied)]
    if len({r.get("job") for r in result.rows}) > 1:
        shown.insert(len(varied), "job")
    for c in shown:
        t.add_column(c, justify="left" if c in ("status", "layout", "sites", "job") else "right")
    for row in result.rows:
        t.add_row(*(_cell(row.get(c)) for c in shown), style="red" if row.get("error") else None)
    return t


def sweep_csv(result: SweepResult) -> str:
    """The tidy rows as CSV (every column; empty where a row has no value)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=result.fields(), lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


__all__ = ["bench_markdown", "bench_table", "suite_table", "sweep_csv", "sweep_table"]
