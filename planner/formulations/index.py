"""Solver-free index of a formulation: which columns, devices and pools each constraint
touches, with their coefficients. Both backends build from the same index, so their
constraints cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.candidates import Space
from planner.serving import ServiceOption, ServiceSpace
from planner.spec.cluster import Cluster


@dataclass(frozen=True)
class Term:
    """``coef * pick[column]`` (``position`` None) or ``coef * sum_d at[column, d, position]``."""

    column: int
    position: int | None
    coef: float


@dataclass
class Index:
    """Columns by job, pipeline columns and the terms of every pool and site row."""

    space: Space
    cluster: Cluster
    by_job: dict[str, list[int]] = field(default_factory=dict)
    pipeline: list[int] = field(default_factory=list)
    pool_gpus: dict[str, list[Term]] = field(default_factory=dict)
    """GPU inventory rows: GPUs taken from each pool."""
    site_watts: dict[str, list[Term]] = field(default_factory=dict)
    """Power budget rows: facility watts (IT x PUE) provisioned in each site."""
    svc: ServiceSpace = field(default_factory=ServiceSpace)
    """Serving options; ``n[o]`` engines of option ``o``."""
    svc_pool_gpus: dict[str, list[ServiceOption]] = field(default_factory=dict)
    """Options drawing GPUs from each pool (``gpus`` per engine)."""
    svc_site_watts: dict[str, list[ServiceOption]] = field(default_factory=dict)
    """Options counted against each site's budget (``budget_w`` per engine)."""
    svc_sites: dict[str, list[str]] = field(default_factory=dict)
    """Per service, the sites it has options in (``y[s, site]``)."""

    @property
    def sites(self) -> list[str]:
        """Sites with a power row."""
        return sorted(set(self.site_watts) | set(self.svc_site_watts))

    @property
    def pools(self) -> list[str]:
        """Pools with an inventory row."""
        return sorted(set(self.pool_gpus) | set(self.svc_pool_gpus))


def build_index(space: Space, cluster: Cluster) -> Index:
    """Collect the rows of :mod:`constraints` from the columns."""
    ix = Index(space, cluster)
    for job in space.jobs:
        ix.by_job[job] = []
    for col in space.columns:
        ix.by_job[col.job].append(col.index)
        pipeline = col.layout.mode == "pipeline"
        if pipeline:
            ix.pipeline.append(col.index)
        fixed = dict(col.fixed_gpus)
        for i, pool_id in enumerate(col.layout.pools):
            pool = cluster.pool(pool_id)
            pue = cluster.site(pool.site).pue
            if pipeline:
                gpus, pos = float(col.block_gpus), i
            else:
                gpus, pos = float(fixed.get(pool_id, 0)), None
            ix.pool_gpus.setdefault(pool_id, []).append(Term(col.index, pos, gpus))
            ix.site_watts.setdefault(pool.site, []).append(
                Term(col.index, pos, gpus * col.power_w[i] * pue)
            )
    ix.svc = space.services
    for opt in space.services.options:
        ix.svc_pool_gpus.setdefault(opt.group.pool, []).append(opt)
        ix.svc_site_watts.setdefault(opt.site, []).append(opt)
        sites = ix.svc_sites.setdefault(opt.service, [])
        if opt.site not in sites:
            sites.append(opt.site)
    for svc in space.services.services:
        ix.svc_sites.setdefault(svc, [])
    return ix
