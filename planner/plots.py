"""Pictures (matplotlib, headless): the timeline of one simulated iteration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from planner.simulate import Timeline

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
