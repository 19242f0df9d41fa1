"""Pictures (matplotlib, headless): the timeline of one simulated iteration, a Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from planner.simulate import Timeline

if TYPE_CHECKING:
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
