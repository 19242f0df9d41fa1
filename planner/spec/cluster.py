"""Cluster topology: sites, GPU pools and WAN links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from planner.spec.base import Spec


class Site(Spec):
    """A datacenter with a facility power budget and its energy intensities and prices."""

    id: str
    power_budget_mw: float = Field(gt=0)
    """Facility power budget (IT load x PUE must stay under it)."""
    pue: float = Field(default=1.2, ge=1.0)
    carbon_g_per_kwh: float = Field(default=400.0, ge=0)
    water_l_per_kwh: float = Field(default=1.8, ge=0)
    """Water use per kWh of IT energy (WUE, The Green Grid 2011)."""
    electricity_usd_per_mwh: float = Field(default=80.0, ge=0)
    power_oversubscription: bool = False
    """Count inference engines at their expected peak draw instead of their cap against the
    budget (POLCA, Patel et al. ASPLOS 2024: decode draws well below TDP, so serving loads
    can share provisioned power); training GPUs always count at their caps."""


class GpuPool(Spec):
    """Identical GPU nodes in one site."""

    id: str
    site: str
    gpu: str
    """GPU type id from the catalog (``models/gpus``)."""
    nodes: int = Field(gt=0)
    gpus_per_node: int = Field(default=8, gt=0)
    intra_node_bw_gb_s: float | None = Field(default=None, gt=0)
    """GPU-to-GPU bandwidth inside a node, GB/s per direction; defaults to the GPU's NVLink."""
    inter_node_bw_gbps: float | None = Field(default=None, gt=0)
    """Scale-out bandwidth per GPU, Gbit/s; defaults to the GPU's reference NIC."""
    inter_node_latency_us: float = Field(default=5.0, ge=0)
    node_idle_power_w: float = Field(default=1500.0, ge=0)
    """Power of a node without its GPUs (CPUs, NICs, fans, storage) when running."""
    usd_per_gpu_hour: float = Field(default=0.0, ge=0)

    @property
    def n_gpus(self) -> int:
        """GPUs in the pool."""
        return self.nodes * self.gpus_per_node


class WanLink(Spec):
    """A wide-area link between two sites (used in both directions unless ``directed``)."""

    src: str
    dst: str
    bw_gbps: float = Field(gt=0)
    rtt_ms: float = Field(ge=0)
    per_flow_gbps: float | None = Field(default=None, gt=0)
    """Throughput cap of one TCP flow; if absent, derived from ``tcp_window_mib`` / RTT."""
    tcp_window_mib: float | None = Field(default=None, gt=0)
    egress_usd_per_gb: float = Field(default=0.02, ge=0)
    directed: bool = False

    @model_validator(mode="after")
    def _distinct_ends(self) -> WanLink:
        if self.src == self.dst:
            raise ValueError(f"link joins site {self.src!r} to itself")
        return self

    def flow_cap_gbps(self) -> float:
        """Throughput of one TCP flow: the stated cap, else window / RTT, else the link rate."""
        if self.per_flow_gbps is not None:
            return min(self.per_flow_gbps, self.bw_gbps)
        if self.tcp_window_mib is not None and self.rtt_ms > 0:
            window_bits = self.tcp_window_mib * 1024**2 * 8
            return min(self.bw_gbps, window_bits / (self.rtt_ms / 1e3) / 1e9)
        return self.bw_gbps


LLAMA3_GPU_FAILURES_PER_HOUR = 419 / (54 * 24 * 16384)
"""Unexpected interruptions per GPU-hour: 419 in a 54-day snapshot of Llama 3 405B pre-training
on 16,384 H100 GPUs (Dubey et al. 2024, "The Llama 3 Herd of Models", Sec. 3.3.4), ~1.97e-5,
a per-GPU MTBF of ~50,700 h. Every cause (GPU, HBM, network, host, software) is charged to
the GPUs, so a job's rate scales with its GPU count."""
LLAMA3_STORAGE_GB_S = 2000.0
"""Sustained throughput of the Tectonic storage fabric of the Llama 3 cluster, 2 TB/s (peak
7 TB/s; Dubey et al. 2024, Sec. 3.3.1)."""
RESTART_S = 600.0
"""Assumption (no published breakdown used): ~10 minutes from an interruption to training
again: detect the fault, reschedule or swap the node, restart the processes, initialise NCCL
and reload the last checkpoint."""


class Reliability(Spec):
    """Failures and checkpoints of the cluster's training jobs (the ``reliability:`` block)."""

    gpu_failures_per_hour: float = Field(default=LLAMA3_GPU_FAILURES_PER_HOUR, ge=0)
    """Interruptions per GPU-hour; a job on ``n`` GPUs fails at ``n`` times this rate."""
    restart_s: float = Field(default=RESTART_S, ge=0)
    """Time from an interruption to training again (detect, restart, reload)."""
    checkpoint_write_gb_s: float = Field(default=LLAMA3_STORAGE_GB_S, gt=0)
    """Aggregate write bandwidth one job's checkpoint gets from storage, GB/s (10^9 B/s, the
    whole job, not per GPU)."""
    checkpoint_interval_s: float | None = Field(default=None, gt=0)
    """Compute time between checkpoints; None picks the Young/Daly optimum."""


class Cluster(Spec):
    """Sites, GPU pools and WAN links; references are checked here."""

    sites: list[Site] = Field(min_length=1)
    pools: list[GpuPool] = Field(min_length=1)
    links: list[WanLink] = Field(default_factory=list)
    reliability: Reliability = Field(default_factory=Reliability)

    @model_validator(mode="after")
    def _references(self) -> Cluster:
        site_ids = [s.id for s in self.sites]
        _unique("site", site_ids)
        _unique("pool", [p.id for p in self.pools])
        for path, site, known in unknown_site_refs(self.model_dump()):
            raise ValueError(f"{path} names missing site {site!r} (known: {known})")
        return self

    def site(self, site_id: str) -> Site:
        """The site with this id."""
        return next(s for s in self.sites if s.id == site_id)

    def pool(self, pool_id: str) -> GpuPool:
        """The pool with this id."""
        return next(p for p in self.pools if p.id == pool_id)


def unknown_site_refs(cluster: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """``(path, site, known sites)`` for every pool or link naming a site that is not in
    ``sites``. Works on the raw mapping, so the loader can report exact field paths before
    validation and :class:`Cluster` can enforce the same rule for Python callers."""
    sites = cluster.get("sites")
    if not isinstance(sites, list):
        return []
    known = sorted({str(s["id"]) for s in sites if isinstance(s, Mapping) and "id" in s})
    out = []
    for key, fields in (("pools", ("site",)), ("links", ("src", "dst"))):
        items = cluster.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            for f in fields:
                value = item.get(f) if isinstance(item, Mapping) else None
                if isinstance(value, str) and value not in known:
                    out.append((f"{key}[{i}].{f}", value, known))
    return out


def _unique(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {kind} id {i!r}")
        seen.add(i)
