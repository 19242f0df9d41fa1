"""Pictures (matplotlib, headless): the timeline of one simulated iteration, a Pareto front,
a what-if sweep, power per site and WAN link utilisation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from planner.costmodel.metrics import TrainingMetrics
from planner.simulate import Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from planner.pareto import ParetoPoint

COLOURS = {"F": "#4c72b0", "B": "#dd8452", "wan": "#55a868", "tail": "#8172b3", "idle": "#eeeeee"}


def timeline_figure(timeline: Timeline, title: str, path: str | Path) -> Path:
    """Gantt chart of one iteration: a row per pipeline device (forward, backward, idle), a row
    per WAN link direction (transfers of the replayed pipeline), and the data-parallel tail
    (reduction, optimizer, overhead). Written as PNG or SVG by the file's suffix."""
    devices = sorted(timeline.ops)
    links = sorted({(link, d) for link, d, _, _ in timeline.transfers})
    rows = len(devices) + len(links)
    fig, ax = plt.subplots(figsize=(12, 0.45 * rows + 1.6))
    end = timeline.iteration_s
    for y, d in enumerate(devices):
        ax.broken_barh([(0.0, end)], (y - 0.4, 0.8), color=COLOURS["idle"])
        for kind in ("F", "B"):
            spans = [(s, e - s) for op, s, e in timeline.ops[d] if op.kind == kind]
            ax.broken_barh(spans, (y - 0.4, 0.8), color=COLOURS[kind])
        ax.broken_barh(
            [(timeline.pipeline_s, timeline.tail_s)], (y - 0.4, 0.8), color=COLOURS["tail"]
        )
    for k, (link, direction) in enumerate(links):
        y = len(devices) + k
        spans = [(s, e - s) for lk, d, s, e in timeline.transfers if (lk, d) == (link, direction)]
        ax.broken_barh(spans, (y - 0.4, 0.8), color=COLOURS["wan"])
    labels = [f"stage {d}" for d in devices] + [
        f"{link} {'act' if d == 'F' else 'grad'}" for link, d in links
    ]
    ax.set_yticks(range(rows), labels)
    ax.invert_yaxis()
    ax.set_xlim(0.0, end)
    ax.set_xlabel("seconds")
    ax.set_title(title)
    ax.legend(
        handles=[
            Patch(color=COLOURS["F"], label="forward"),
            Patch(color=COLOURS["B"], label="backward"),
            Patch(color=COLOURS["wan"], label="WAN transfer"),
            Patch(color=COLOURS["tail"], label="DP + optimizer + overhead"),
            Patch(color=COLOURS["idle"], label="idle"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=5,
        frameon=False,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def pareto_figure(
    points: Sequence[ParetoPoint], x_label: str, y_label: str, path: str | Path
) -> Path:
    """The front of a sweep (minimise x, maximise y): the best y reachable within each x as a
    step line through the non-dominated points, dominated points in grey, each point labelled
    with its configuration. Written as PNG or SVG by the file's suffix."""
    ok = [(p.x, p.y, p) for p in points if p.x is not None and p.y is not None]
    front = sorted((x, y) for x, y, p in ok if not p.dominated)
    rest = [(x, y) for x, y, p in ok if p.dominated]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    if front:
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where="post", color=COLOURS["F"], alpha=0.6, zorder=1)
        ax.scatter(xs, ys, color=COLOURS["F"], zorder=3, label="non-dominated")
    if rest:
        xs, ys = zip(*rest, strict=True)
        ax.scatter(xs, ys, color="#aaaaaa", zorder=2, label="dominated")
    for x, y, p in ok:
        ax.annotate(
            p.label(),
            (x, y),
            xytext=(6, -10),
            textcoords="offset points",
            fontsize=7,
            color="#888888" if p.dominated else "#333333",
        )
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{y_label} vs {x_label}")
    ax.margins(x=0.15, y=0.08)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 10 else f"{v:g}")
        )
    ax.grid(alpha=0.3)
    if ok:
        ax.legend(loc="best", frameon=False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


LAYOUT_MARKERS = {"single": "o", "pipeline": "s", "data": "^"}


def _series(
    rows: Sequence[dict[str, object]], x: str, rest: Sequence[str]
) -> dict[str, list[dict[str, object]]]:
    """Rows grouped by the values of the other varied fields (and the job, if several)."""
    jobs = {r.get("job") for r in rows}
    out: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        if r.get(x) is None or r.get("iteration_time_s") is None:
            continue
        key = ", ".join(f"{k.rsplit('.', 1)[-1]}={r.get(k)}" for k in rest)
        if len(jobs) > 1:
            key = f"{r.get('job')}: {key}" if key else str(r.get("job"))
        out.setdefault(key, []).append(r)
    return out


def sweep_figure(
    rows: Sequence[dict[str, object]], varied: Sequence[str], path: str | Path
) -> Path:
    """Iteration time, GPUs used, DP-cell size and TCP connections per transfer against the
    first varied field (log axis when it spans 20x or more), one line per value of the other varied
    fields; the marker shows the layout chosen (single pool, cross-site pipeline, data
    parallel over sites). Written as PNG or SVG by the file's suffix."""
    x, rest = varied[0], list(varied[1:])
    groups = _series(rows, x, rest)
    numeric = all(isinstance(r.get(x), int | float) for g in groups.values() for r in g)
    panels = (
        ("iteration_time_s", "iteration time (s)"),
        ("n_gpus", "GPUs used"),
        ("dp_cell_size", "DP-cell size (pipelines)"),
        ("tcp_connections", "TCP connections per transfer"),
    )
    fig, grid = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    axes = list(grid.flat)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, group) in enumerate(groups.items()):
        colour = colours[i % len(colours)]
        xs = [g[x] for g in group] if numeric else [str(g[x]) for g in group]
        for ax, (key, _) in zip(axes, panels, strict=True):
            ys = [g.get(key) for g in group]
            pts = [(a, b, g) for a, b, g in zip(xs, ys, group, strict=True) if b is not None]
            if not pts:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=colour,
                alpha=0.6,
                label=label or None,
            )
            for a, b, g in pts:
                ax.scatter(
                    [a],
                    [b],
                    color=colour,
                    marker=LAYOUT_MARKERS.get(str(g.get("layout")), "x"),
                    zorder=3,
                    s=28,
                )
    values = [float(str(r[x])) for g in groups.values() for r in g] if numeric else []
    spread = bool(values) and min(values) > 0 and max(values) / min(values) >= 20
    for ax, (_, title) in zip(axes, panels, strict=True):
        ax.set_xlabel(x)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        if spread:
            ax.set_xscale("log")
    handles = [
        Line2D([], [], color="#555555", marker=m, linestyle="", label=name)
        for name, m in LAYOUT_MARKERS.items()
    ]
    series = axes[0].get_legend_handles_labels()
    axes[0].legend(handles=[*series[0], *handles], fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _power_panel(ax: Axes, rows: Sequence[dict[str, Any]]) -> None:
    """Facility watts counted against each site's budget (training at its caps, serving at
    its caps or expected peaks), the budget as a dashed line, the margin written above."""
    if not rows:
        ax.text(0.5, 0.5, "no site hosts the plan", ha="center", va="center")
        ax.set_axis_off()
        return
    xs = list(range(len(rows)))
    training = [r["training_w"] / 1e6 for r in rows]
    serving = [(r["counted_w"] - r["training_w"]) / 1e6 for r in rows]
    ax.bar(xs, training, color=COLOURS["F"], label="training (GPUs at their caps)")
    ax.bar(xs, serving, bottom=training, color=COLOURS["B"], label="serving")
    for x, r in zip(xs, rows, strict=True):
        budget = r["budget_w"] / 1e6
        ax.hlines(budget, x - 0.4, x + 0.4, colors="#c44e52", linestyles="--")
        share = r["margin_w"] / r["budget_w"] if r["budget_w"] else 0.0
        ax.annotate(
            f"margin {r['margin_w'] / 1e6:,.2f} MW ({share:.0%})",
            (x, max(budget, r["counted_w"] / 1e6)),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.plot([], [], color="#c44e52", linestyle="--", label="budget")
    ax.set_xticks(xs, [r["site"] for r in rows])
    ax.set_ylabel("facility power (MW)")
    ax.set_title("power per site: counted vs budget")
    ax.margins(y=0.15)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8, frameon=False)


def _bars(ax: Axes, labels: list[str], series: dict[str, list[float]], title: str) -> None:
    """Horizontal bars, one group per label and one bar per series (shares 0-1)."""
    if not labels:
        ax.text(0.5, 0.5, "no WAN traffic: every pipeline stays in one site", ha="center")
        ax.set_axis_off()
        ax.set_title(title)
        return
    height = min(0.35, 0.8 / max(1, len(series)))
    colours = [COLOURS["wan"], COLOURS["tail"], COLOURS["F"]]
    for k, (name, values) in enumerate(series.items()):
        ys = [i + k * height for i in range(len(labels))]
        ax.barh(ys, values, height=height, color=colours[k % len(colours)], label=name)
        for y, v in zip(ys, values, strict=True):
            ax.annotate(f"{v:.0%}", (v, y), xytext=(3, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks([i + (len(series) - 1) * height / 2 for i in range(len(labels))], labels)
    ax.set_ylim(len(labels) - 0.4, -0.6)
    ax.set_xlim(0.0, 1.35)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("busy share of the iteration")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)


def plan_figure(
    power: Sequence[dict[str, Any]], metrics: Sequence[TrainingMetrics], path: str | Path
) -> Path:
    """Power per site (``planner.describe.site_power`` rows: budget vs counted) next to the
    busy share of every WAN link the training jobs use (``TrainingMetrics.wan``). Written as
    PNG or SVG by the file's suffix."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=(1.0, 1.2))
    _power_panel(left, power)
    labels = [
        f"{m.job}\n{u.src_site} > {u.dst_site}\n{u.bw_gbps:g} Gbps" for m in metrics for u in m.wan
    ]
    shares = [u.utilisation for m in metrics for u in m.wan]
    _bars(right, labels, {"cost model": shares}, "WAN link utilisation")
    return _save(fig, path)


def link_figure(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Busy share of every WAN link per simulated configuration (``planner simulate`` rows
    with ``wan_links`` from :func:`planner.simulate.link_utilisation`): the cost model's and
    the replay's. Written as PNG or SVG by the file's suffix."""
    links = [(r["job"], w) for r in rows for w in r.get("wan_links", [])]
    labels = [f"{job}\n{w['link']}\n{w['bw_gbps']:g} Gbps" for job, w in links]
    series = {
        "cost model": [float(w["cost_model"]) for _, w in links],
        "replay": [float(w["replay"]) for _, w in links],
    }
    fig, ax = plt.subplots(figsize=(9, 0.7 * max(1, len(labels)) + 1.8))
    _bars(ax, labels, series, "WAN link utilisation: cost model vs replay")
    return _save(fig, path)
