"""Pipeline transfers over a WAN path shared by data-parallel pipelines: DP-cells.

``D`` data-parallel pipelines cross the same WAN path at a stage boundary; each sends ``V``
bytes per micro-batch and direction. One transfer with ``k`` TCP connections runs at
``r = min(B, k f)`` on its own (``B`` link rate, ``f`` one flow's cap ~ window / RTT; Atlas,
Palak et al. 2024, Sec. 3). The pipelines are grouped into **DP-cells** of ``c`` pipelines:

* cells share the path side by side: ``n = ceil(D / c)`` transfers run at once, each at
  ``rho = min(r, B / n)``, so one transfer takes ``tau = V / rho``;
* inside a cell the pipelines take the path in a fixed rotation, one transfer at a time, so a
  pipeline gets the path once per round ``R = c tau``: the steady-state period per micro-batch
  cannot be shorter than ``R`` (the pipelines of a cell are staggered by ``tau``, so the last
  one finishes ``(c - 1) tau`` after the first).

``c = 1`` is fair (spatial) sharing: all ``D`` transfers at once at ``B / D`` each. Too many
cells (small ``c``) make each transfer slow (``rho = B / n < r``: long fill and drain); too few
(large ``c``) leave the path idle when one transfer cannot fill it (``n r < B``). The rule of
thumb ``c* = floor(D / ceil(B / r))`` runs just enough concurrent transfers to fill the link,
each at its full single-transfer rate: when ``c*`` divides ``D`` it has the shortest round
(``D V / B``) and, among cell sizes with that round, the fastest transfer. When it does not
divide ``D``, the planner compares it with its neighbours, fair sharing and one single cell
through the full cost model. This is the DESIGN.md intuition of about ``ceil(C) + 1``
pipelines per cell, with the compute gap replaced by the flow cap that actually limits one
transfer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Crossing:
    """Timing of one boundary's transfers on a WAN path under a cell size."""

    cell_size: int
    concurrent: int
    """Transfers in flight at once (= number of cells)."""
    rate_gbps: float
    """Rate of one transfer."""
    transfer_s: float
    """``tau``: one pipeline's transfer of one micro-batch in one direction."""
    round_s: float
    """``R = c tau``: a pipeline's turn comes once per round."""
    stagger_s: float
    """``(c - 1) tau``: how much later the last pipeline of a cell finishes."""


def crossing(
    bytes_per_pipeline: float,
    pipelines: int,
    link_gbps: float,
    transfer_gbps: float,
    cell_size: int,
) -> Crossing:
    """Transfer time, round and stagger of ``pipelines`` transfers of ``bytes_per_pipeline``
    over a link of ``link_gbps`` when one transfer alone reaches ``transfer_gbps``
    (``min(B, k f)``) and pipelines rotate in cells of ``cell_size``."""
    c = max(1, min(cell_size, pipelines))
    n = math.ceil(pipelines / c)
    rate = min(transfer_gbps, link_gbps / n)
    tau = bytes_per_pipeline * 8.0 / (rate * 1e9)
    return Crossing(c, n, rate, tau, c * tau, (c - 1) * tau)


def best_cell_size(pipelines: int, link_gbps: float, transfer_gbps: float) -> int:
    """``c* = floor(D / ceil(B / r))`` (at least 1): the fewest concurrent transfers that fill
    the link, each at its full rate ``r``."""
    needed = math.ceil(link_gbps / transfer_gbps - 1e-9)
    return max(1, pipelines // max(1, needed))


def cell_size_options(pipelines: int, link_gbps: float, transfer_gbps: float) -> list[int]:
    """Cell sizes worth comparing: fair sharing (1), ``c*`` and its neighbours, and one cell
    holding every pipeline."""
    star = best_cell_size(pipelines, link_gbps, transfer_gbps)
    opts = {1, pipelines, star, max(1, star - 1), min(pipelines, star + 1)}
    return sorted(opts)


def cells(pipelines: int, cell_size: int) -> list[list[int]]:
    """Pipeline ids of each cell, in rotation order: cell ``i`` holds pipelines
    ``i c .. i c + c - 1``."""
    c = max(1, min(cell_size, pipelines))
    return [list(range(i, min(i + c, pipelines))) for i in range(0, pipelines, c)]
