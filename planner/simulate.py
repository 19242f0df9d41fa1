"""Discrete-event replay of one training iteration of a plan (solver-free): the cost model's
independent check.

It replays one representative pipeline: every micro-batch's forward and backward on every
device (chunk by chunk for the interleaved schedule), in the order the schedule prescribes
(GPipe; 1F1B; Megatron's interleaved 1F1B), with point-to-point transfers on the links the
plan uses. A WAN link serves this pipeline once per DP-cell round (``costmodel.wan``): under
temporal sharing it replays the last pipeline of a cell, whose first transfer waits for the
``c - 1`` before it; under fair sharing every transfer takes the fair-share time. The data-
parallel tail (exposed reduction, optimizer step, step overhead) is taken from the cost
model. All the other data-parallel pipelines behave the same (Atlas keeps a stage's replicas
in one site), so one pipeline per plan stands for all of them, at any scale.

Event model: each device runs its operations in schedule order; an operation starts when the
device is free and its input has arrived (the previous chunk's forward output, or the next
chunk's backward gradient, plus the transfer). A transfer on a WAN link starts when its
tensor is ready and the pipeline's slot in the rotation comes up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.costmodel.metrics import BoundaryUse, TrainingMetrics
from planner.spec.base import Schedule, WanSharing
from planner.spec.plan import TrainingConfig


@dataclass(frozen=True)
class Op:
    """One forward (``kind`` F) or backward (B) of micro-batch ``mb`` on chunk ``chunk``."""

    kind: str
    chunk: int
    mb: int


@dataclass
class Timeline:
    """What one iteration looks like."""

    iteration_s: float
    pipeline_s: float
    tail_s: float
    """Exposed DP communication, optimizer step and step overhead (from the cost model)."""
    ops: dict[int, list[tuple[Op, float, float]]] = field(default_factory=dict)
    """Per device: (operation, start, end)."""
    link_busy_s: dict[str, float] = field(default_factory=dict)
    transfers: list[tuple[str, str, float, float]] = field(default_factory=list)
    """WAN transfers of the replayed pipeline: (link, F or B, start, end)."""

    def busy_s(self, device: int) -> float:
        return sum(end - start for _, start, end in self.ops[device])

    def utilisation(self, device: int) -> float:
        return self.busy_s(device) / self.iteration_s


def schedule_order(schedule: Schedule, pp: int, vpp: int, m: int, device: int) -> list[Op]:
    """The operations of ``device`` in execution order.

    GPipe: all forwards, then all backwards. 1F1B: ``pp - d - 1`` warm-up forwards, then one
    forward and one backward in turn, then the remaining backwards (Narayanan et al. 2021).
    Interleaved: Megatron-LM's order over virtual micro-batches ``k``: chunk
    ``(k // pp) % vpp`` (reversed for backward), micro-batch ``(k // (pp vpp)) pp + k % pp``,
    with ``2 (pp - d - 1) + (vpp - 1) pp`` warm-up forwards.
    """
    if schedule is Schedule.GPIPE:
        fw = [Op("F", device, i) for i in range(m)]
        return fw + [Op("B", device, i) for i in range(m)]
    if schedule is Schedule.ONE_F_ONE_B or vpp == 1:
        warm = min(pp - device - 1, m)
        order = [Op("F", device, i) for i in range(warm)]
        for i in range(warm, m):
            order += [Op("F", device, i), Op("B", device, i - warm)]
        order += [Op("B", device, i) for i in range(m - warm, m)]
        return order
    total = m * vpp

    def virtual(k: int, forward: bool) -> Op:
        local = (k // pp) % vpp
        local = local if forward else vpp - 1 - local
        mb = (k // (pp * vpp)) * pp + k % pp
        return Op("F" if forward else "B", local * pp + device, mb)

    warm = min(2 * (pp - device - 1) + (vpp - 1) * pp, total)
    order = [virtual(k, True) for k in range(warm)]
    for j in range(total - warm):
        order += [virtual(warm + j, True), virtual(j, False)]
    order += [virtual(k, False) for k in range(total - warm, total)]
    return order


def _chunk_times(m: TrainingMetrics, pp: int) -> list[tuple[float, float]]:
    """(forward, backward) seconds of each chunk: the device's time split by its layers."""
    out: list[tuple[float, float]] = []
    n_chunks = sum(len(d.layers) for d in m.devices)
    for c in range(n_chunks):
        dev = m.devices[c % pp]
        share = dev.layers[c // pp] / max(1, sum(dev.layers)) if len(dev.layers) > 1 else 1.0
        out.append((dev.fwd_s * share, dev.bwd_s * share))
    return out


class _Links:
    """WAN links as rotation slots; intra-site transfers never wait."""

    def __init__(self, cfg: TrainingConfig, boundaries: list[BoundaryUse]) -> None:
        self.by_chunk = {b.chunk: b for b in boundaries}
        self.fair = cfg.wan_sharing is WanSharing.FAIR
        self.next_free: dict[tuple[str, str], float] = {}
        self.busy: dict[str, float] = {}
        self.spans: list[tuple[str, str, float, float]] = []

    def arrive(self, chunk: int, direction: str, ready: float) -> float:
        """When the tensor crossing boundary ``chunk`` (after ``chunk``) arrives. The replayed
        pipeline is the last of its DP-cell: its first turn on a link comes ``(c - 1)``
        transfers after the first pipeline's (the stagger), then once per round."""
        b = self.by_chunk[chunk]
        if not b.link:
            return ready + b.transfer_s
        key = (b.link, direction)
        if key not in self.next_free:
            start = ready + (0.0 if self.fair else b.stagger_s)
        else:
            start = max(ready, self.next_free[key])
        self.next_free[key] = start + b.round_s
        wire = b.transfer_s - b.latency_s
        self.busy[b.link] = self.busy.get(b.link, 0.0) + wire
        self.spans.append((b.link, direction, start, start + wire))
        return start + b.transfer_s


def simulate(cfg: TrainingConfig, m: TrainingMetrics) -> Timeline:
    """Replay one iteration of ``cfg`` with the per-device and per-boundary times of its
    cost-model figures ``m``."""
    pp, vpp, mb = cfg.pp, cfg.vpp, m.micro_batches
    times = _chunk_times(m, pp)
    n_chunks = len(times)
    orders = {d: schedule_order(cfg.schedule, pp, vpp, mb, d) for d in range(pp)}
    links = _Links(cfg, m.boundaries)
    done: dict[tuple[str, int, int], float] = {}
    arrived: dict[tuple[str, int, int], float] = {}
    free = dict.fromkeys(range(pp), 0.0)
    pos = dict.fromkeys(range(pp), 0)
    ops: dict[int, list[tuple[Op, float, float]]] = {d: [] for d in range(pp)}
    remaining = sum(len(o) for o in orders.values())
    while remaining:
        progressed = False
        for d in range(pp):
            if pos[d] >= len(orders[d]):
                continue
            op = orders[d][pos[d]]
            ready = _ready(op, n_chunks, done, arrived)
            if ready is None:
                continue
            start = max(free[d], ready)
            t_f, t_b = times[op.chunk]
            end = start + (t_f if op.kind == "F" else t_b)
            free[d], pos[d] = end, pos[d] + 1
            done[op.kind, op.chunk, op.mb] = end
            ops[d].append((op, start, end))
            _send(op, end, n_chunks, links, arrived)
            remaining -= 1
            progressed = True
        if not progressed:
            raise RuntimeError("schedule deadlock: no device can start its next operation")
    pipeline = max(free.values())
    tail = m.breakdown.dp_exposed_s + m.breakdown.optimizer_s + m.breakdown.overhead_s
    return Timeline(pipeline + tail, pipeline, tail, ops, links.busy, links.spans)


def _ready(
    op: Op,
    n_chunks: int,
    done: dict[tuple[str, int, int], float],
    arrived: dict[tuple[str, int, int], float],
) -> float | None:
    """When ``op``'s input is available, or None if it is not produced yet."""
    if op.kind == "F":
        if op.chunk == 0:
            return 0.0
        return arrived.get(("F", op.chunk, op.mb))
    if op.chunk == n_chunks - 1:
        return done.get(("F", op.chunk, op.mb))
    got = arrived.get(("B", op.chunk, op.mb))
    own = done.get(("F", op.chunk, op.mb))
    return None if got is None or own is None else max(got, own)


def _send(
    op: Op,
    end: float,
    n_chunks: int,
    links: _Links,
    arrived: dict[tuple[str, int, int], float],
) -> None:
    if op.kind == "F" and op.chunk < n_chunks - 1:
        arrived["F", op.chunk + 1, op.mb] = links.arrive(op.chunk, "F", end)
    elif op.kind == "B" and op.chunk > 0:
        arrived["B", op.chunk - 1, op.mb] = links.arrive(op.chunk - 1, "B", end)


def link_utilisation(timeline: Timeline, m: TrainingMetrics) -> list[dict[str, float | str]]:
    """Busy share of every WAN link (both directions) of one iteration: by the cost model
    (``LinkUse.utilisation``: every pipeline's transfers over its iteration time) and by the
    replay (each transfer of the replayed pipeline stands for one round of its DP-cell
    rotation on the link, ``BoundaryUse.round_s``, over the replayed iteration)."""
    rounds = {b.link: b.round_s for b in m.boundaries if b.link}
    sent: dict[str, int] = {}
    for link, _, _, _ in timeline.transfers:
        sent[link] = sent.get(link, 0) + 1
    out: list[dict[str, float | str]] = []
    for u in m.wan:
        link = f"{u.src_site}>{u.dst_site}"
        busy = sent.get(link, 0) * rounds.get(link, 0.0)
        out.append(
            {
                "link": link,
                "bw_gbps": u.bw_gbps,
                "cost_model": u.utilisation,
                "replay": min(1.0, busy / timeline.iteration_s) if timeline.iteration_s else 0.0,
            }
        )
    return out
