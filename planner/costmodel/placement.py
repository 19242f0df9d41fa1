"""Which pool hosts each pipeline device, and the links its collectives and transfers use.

Megatron rank order is tp-cp-ep-dp-pp (tensor ranks adjacent): a TP group has stride 1, a CP
group stride ``tp``, the dense gradient group (DP x CP) stride ``tp``, an EP group stride
``tp`` inside the DP x CP ranks, the expert gradient group stride ``tp * ep``, and PP neighbours
are ``tp * cp * dp`` ranks apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.costmodel.comm import Link, group_link
from planner.spec.cluster import Cluster, GpuPool
from planner.spec.hardware import GpuSpec
from planner.spec.plan import TrainingConfig
from planner.topology import Path, pool_path, site_path


class PlacementError(ValueError):
    """A configuration that cannot be placed on the cluster as given."""


@dataclass(frozen=True)
class IntraLinks:
    """Links seen by the collectives of one pipeline device."""

    tp: Link
    cp: Link
    ep: Link
    dp: Link
    expert_dp: Link


@dataclass(frozen=True)
class Placement:
    """Per pipeline device: the pools holding its DP replicas, with their shares."""

    cfg: TrainingConfig
    cluster: Cluster
    gpus: dict[str, GpuSpec]
    shares: tuple[tuple[tuple[str, int], ...], ...]
    pools: dict[str, GpuPool] = field(default_factory=dict)
    """Pools by id (filled from ``cluster``)."""
    paths: dict[tuple[str, str], Path | None] = field(default_factory=dict)
    """Memo of pool-to-pool paths."""
    site_paths: dict[tuple[str, str], Path | None] = field(default_factory=dict)
    """Memo of site-to-site paths."""
    links: dict[int, IntraLinks] = field(default_factory=dict)
    """Memo of each device's intra-stage links."""

    def __post_init__(self) -> None:
        self.pools.update({p.id: p for p in self.cluster.pools})

    def pool_of(self, d: int) -> GpuPool:
        """The pool holding most of device ``d``'s replicas."""
        return self.pools[max(self.shares[d], key=lambda s: s[1])[0]]

    def gpu_of(self, d: int) -> GpuSpec:
        """The GPU type of device ``d``."""
        return self.gpus[self.pool_of(d).gpu]

    def sites_of(self, d: int) -> list[str]:
        """Sites holding replicas of device ``d``."""
        return sorted({self.pools[p].site for p, _ in self.shares[d]})

    def gpus_by_pool(self) -> dict[str, int]:
        """GPUs the configuration takes from each pool."""
        per_replica = self.cfg.tp * self.cfg.cp
        out: dict[str, int] = {}
        for dev in self.shares:
            for pool, share in dev:
                out[pool] = out.get(pool, 0) + share * per_replica
        return out

    def intra_stage_links(self, d: int) -> IntraLinks:
        """TP, CP, EP and DP links of device ``d`` inside its main pool."""
        if d not in self.links:
            self.links[d] = self._intra_stage_links(d)
        return self.links[d]

    def _intra_stage_links(self, d: int) -> IntraLinks:
        cfg, pool, gpu = self.cfg, self.pool_of(d), self.gpu_of(d)
        share = max(s for _, s in self.shares[d])

        def link(size: int, stride: int) -> Link:
            return group_link(
                gpu,
                size,
                stride,
                pool.gpus_per_node,
                pool.intra_node_bw_gb_s,
                pool.inter_node_bw_gbps,
                pool.inter_node_latency_us,
            )

        dpc = share * cfg.cp
        return IntraLinks(
            tp=link(cfg.tp, 1),
            cp=link(cfg.cp, cfg.tp),
            ep=link(cfg.ep, cfg.tp),
            dp=link(dpc, cfg.tp),
            expert_dp=link(max(1, dpc // cfg.ep), cfg.tp * cfg.ep),
        )

    def site_path(self, a: str, b: str) -> Path | None:
        """Widest WAN path between sites ``a`` and ``b`` (memoised)."""
        if (a, b) not in self.site_paths:
            self.site_paths[a, b] = site_path(self.cluster, a, b)
        return self.site_paths[a, b]

    def boundary_path(self, a: int, b: int) -> Path | None:
        """Path between the main pools of devices ``a`` and ``b``."""
        key = (self.pool_of(a).id, self.pool_of(b).id)
        if key not in self.paths:
            self.paths[key] = pool_path(self.cluster, *key)
        return self.paths[key]


def _default_pool(cfg: TrainingConfig, cluster: Cluster, gpus: dict[str, GpuSpec]) -> str:
    want = gpus[cfg.gpu].id if cfg.gpu in gpus else cfg.gpu
    fits = [p for p in cluster.pools if p.gpu == want and p.n_gpus >= cfg.n_gpus]
    if fits:
        return fits[0].id
    same = [p for p in cluster.pools if p.gpu == want]
    if not same:
        raise PlacementError(f"no pool has GPU type {cfg.gpu!r}")
    return max(same, key=lambda p: p.n_gpus).id


def resolve_placement(cfg: TrainingConfig, cluster: Cluster, gpus: dict[str, GpuSpec]) -> Placement:
    """Map every pipeline device to pools and check coverage and pool capacity."""
    shares: tuple[tuple[tuple[str, int], ...], ...]
    if not cfg.placement:
        default = _default_pool(cfg, cluster, gpus)
        shares = tuple(((default, cfg.dp),) for _ in range(cfg.pp))
    else:
        per_dev: list[list[tuple[str, int]]] = [[] for _ in range(cfg.pp)]
        for i, entry in enumerate(cfg.placement):
            if entry.pool not in {p.id for p in cluster.pools}:
                raise PlacementError(f"placement[{i}].pool {entry.pool!r} is not a pool")
            if entry.last_stage >= cfg.pp:
                raise PlacementError(
                    f"placement[{i}] covers stage {entry.last_stage}; the plan has pp={cfg.pp}"
                )
            for d in range(entry.first_stage, entry.last_stage + 1):
                per_dev[d].append((entry.pool, entry.dp or cfg.dp))
        for d, dev in enumerate(per_dev):
            total = sum(s for _, s in dev)
            if total != cfg.dp:
                raise PlacementError(
                    f"stage {d} has {total} data-parallel replicas placed; expected dp={cfg.dp}"
                )
        shares = tuple(tuple(dev) for dev in per_dev)
    pl = Placement(cfg, cluster, gpus, shares)
    for pool_id, used in pl.gpus_by_pool().items():
        have = cluster.pool(pool_id).n_gpus
        if used > have:
            raise PlacementError(f"pool {pool_id!r} has {have} GPUs; the plan places {used} there")
    return pl
