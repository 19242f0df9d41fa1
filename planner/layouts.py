"""Layouts: which pools host a candidate's GPUs, and how its stages or replicas split over
them (solver-free). ``single`` (one pool), ``pipeline`` (contiguous stage blocks on an ordered
chain of pools, after Atlas) and ``data`` (whole pipelines in several pools)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from planner.spec.cluster import Cluster, GpuPool
from planner.spec.plan import StagePlacement, TrainingConfig
from planner.topology import Path, pool_path


@dataclass(frozen=True)
class Layout:
    """Where a candidate's GPUs come from."""

    mode: str
    """``single``, ``pipeline`` or ``data``."""
    pools: tuple[str, ...]
    """Pool ids; for ``pipeline`` the chain order of the stage blocks."""


def pool_class(pool: GpuPool) -> tuple[object, ...]:
    """Pools with equal class give a device the same time (GPU, node size, fabrics)."""
    return (
        pool.gpu,
        pool.gpus_per_node,
        pool.intra_node_bw_gb_s,
        pool.inter_node_bw_gbps,
        pool.inter_node_latency_us,
    )


PATHS: dict[tuple[int, str, str], Path | None] = {}


def path_between(cluster: Cluster, a: str, b: str) -> Path | None:
    """``pool_path`` memoised for the cluster being enumerated (cleared per enumeration)."""
    key = (id(cluster), a, b)
    if key not in PATHS:
        PATHS[key] = pool_path(cluster, a, b)
    return PATHS[key]


class LinkQuality:
    """Pool-to-pool link quality of a cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def link(self, a: str, b: str) -> tuple[float, float]:
        """(bottleneck Gbit/s, one-way latency ms) from pool ``a`` to pool ``b``."""
        p = path_between(self.cluster, a, b)
        return (0.0, math.inf) if p is None else (p.bw_gbps, p.latency_ms)

    def chain_quality(self, order: tuple[str, ...]) -> tuple[float, float]:
        """(bottleneck bandwidth, -total latency) of a chain: larger is better."""
        hops = [self.link(a, b) for a, b in itertools.pairwise(order)]
        return min(h[0] for h in hops), -sum(h[1] for h in hops)


def widest_order(pools: tuple[str, ...], paths: LinkQuality) -> tuple[str, ...]:
    """Chain order with the widest bottleneck (exact up to 6 pools, greedy beyond)."""
    if len(pools) <= 6:
        return max(itertools.permutations(pools), key=lambda o: (paths.chain_quality(o), o))
    best: tuple[str, ...] | None = None
    for start in pools:
        order = [start]
        while len(order) < len(pools):
            rest = [p for p in pools if p not in order]
            order.append(max(rest, key=lambda p: (paths.link(order[-1], p), p)))
        cand = tuple(order)
        if best is None or paths.chain_quality(cand) > paths.chain_quality(best):
            best = cand
    assert best is not None
    return best


def layouts(pools: list[GpuPool], cluster: Cluster, max_subsets: int) -> list[Layout]:
    """Single pools, then pipeline chains and DP splits over the best pool subsets."""
    paths = LinkQuality(cluster)
    out = [Layout("single", (p.id,)) for p in pools]
    ids = tuple(p.id for p in pools)
    size = {p.id: p.n_gpus for p in pools}
    for n in range(2, len(ids) + 1):
        scored = []
        for subset in itertools.combinations(ids, n):
            order = widest_order(subset, paths)
            q = paths.chain_quality(order)
            if q[0] <= 0:
                continue
            scored.append(((q, sum(size[p] for p in subset)), order))
        scored.sort(key=lambda s: s[0], reverse=True)
        chosen = [order for _, order in scored[:max_subsets]]
        # The Atlas rule's pick: the n pools with the most GPUs (the greedy baseline's layout).
        largest = tuple(sorted(ids, key=lambda p: (-size[p], p))[:n])
        if all(set(o) != set(largest) for o in chosen) and any(
            set(o) == set(largest) for _, o in scored
        ):
            chosen.append(widest_order(largest, paths))
        for order in chosen:
            atlas = tuple(sorted(order, key=lambda p: (-size[p], p)))
            for o in dict.fromkeys([order, atlas]):
                out.append(Layout("pipeline", o))
            out.append(Layout("data", tuple(sorted(order))))
    return out


def stage_split(pp: int, caps: list[int]) -> list[int] | None:
    """A split of ``pp`` stages over pools with room for ``caps`` stages (each >= 1)."""
    if len(caps) > pp or min(caps) < 1 or sum(caps) < pp:
        return None
    split = [1] * len(caps)
    left = pp - len(caps)
    while left:
        i = max(range(len(caps)), key=lambda j: (caps[j] - split[j], -j))
        split[i] += 1
        left -= 1
    return split


def dp_split(dp: int, sizes: list[int], per_replica: int) -> list[int] | None:
    """DP replicas per pool for a ``data`` layout: as even as possible (the remainder to the
    first pools), independent of the pools' sizes so more capacity never changes a column;
    None if a pool cannot hold its share."""
    n = len(sizes)
    if n > dp:
        return None
    base, extra = divmod(dp, n)
    split = [base + (1 if i < extra else 0) for i in range(n)]
    if any(k * per_replica > s for k, s in zip(split, sizes, strict=True)):
        return None
    return split


def placement_for(layout: Layout, cfg: TrainingConfig, split: list[int]) -> list[StagePlacement]:
    """Placement entries of a layout: stage blocks (``pipeline``) or DP shares (``data``)."""
    if layout.mode == "data":
        return [
            StagePlacement(pool=p, first_stage=0, last_stage=cfg.pp - 1, dp=n)
            for p, n in zip(layout.pools, split, strict=True)
        ]
    out, first = [], 0
    for p, n in zip(layout.pools, split, strict=True):
        if n:
            out.append(StagePlacement(pool=p, first_stage=first, last_stage=first + n - 1))
        first += n
    return out


def connections(cluster: Cluster, layout: Layout) -> int:
    """Fewest TCP connections per transfer that fill every WAN hop of the layout (more never
    slow a transfer: ``min(link, k f)`` grows with ``k``)."""
    k = 1
    hops = (
        itertools.pairwise(layout.pools)
        if layout.mode == "pipeline"
        else itertools.combinations(layout.pools, 2)
    )
    for a, b in hops:
        p = path_between(cluster, a, b)
        if p is not None and p.kind == "wan":
            k = max(k, math.ceil(p.bw_gbps / p.flow_gbps - 1e-9))
    return k


def layouts_for(
    cfg: TrainingConfig, pools: list[GpuPool], all_layouts: list[Layout], cluster: Cluster
) -> list[Layout]:
    """Single pools, and multi-pool layouts of the fewest pools that can hold the candidate
    and one more (room to spread under power budgets)."""
    singles = [lay for lay in all_layouts if lay.mode == "single"]
    sizes = sorted((p.n_gpus for p in pools), reverse=True)
    need, have, fewest = cfg.n_gpus, 0, len(sizes) + 1
    for i, s in enumerate(sizes):
        have += s
        if have >= need:
            fewest = i + 1
            break
    lo = max(2, fewest)
    multi = [
        lay
        for lay in all_layouts
        if lay.mode != "single"
        and lo <= len(lay.pools) <= lo + 1
        and not (lay.mode == "pipeline" and len(lay.pools) > cfg.pp)
        and not (lay.mode == "data" and len(lay.pools) > cfg.dp)
    ]
    return singles + multi
