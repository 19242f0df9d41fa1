"""The cluster as a networkx graph, and derived bandwidth/latency between pools.

Nodes: ``("site", id)`` and ``("pool", id)``; edges: pool-site membership (attribute
``kind="member"``) and WAN links between sites (``kind="wan"`` with ``bw_gbps``, ``rtt_ms``,
``flow_gbps``, ``egress_usd_per_gb``). Node attributes carry every field of the spec, so
:func:`cluster_from_graph` rebuilds the same :class:`Cluster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import networkx as nx

from planner.spec.cluster import Cluster, GpuPool, Site, WanLink


def cluster_to_graph(cluster: Cluster) -> nx.MultiGraph:
    """Sites, pools and links as an undirected multigraph with every spec field attached."""
    g = nx.MultiGraph()
    for site in cluster.sites:
        g.add_node(("site", site.id), kind="site", **site.model_dump())
    for pool in cluster.pools:
        g.add_node(("pool", pool.id), kind="pool", **pool.model_dump())
        g.add_edge(("pool", pool.id), ("site", pool.site), kind="member")
    for link in cluster.links:
        g.add_edge(
            ("site", link.src),
            ("site", link.dst),
            kind="wan",
            flow_gbps=link.flow_cap_gbps(),
            **link.model_dump(),
        )
    return g


def cluster_from_graph(g: nx.MultiGraph) -> Cluster:
    """Rebuild a :class:`Cluster` from a graph made by :func:`cluster_to_graph` (or by hand
    with the same node/edge attributes)."""

    def fields(
        attrs: dict[str, Any], model: type[Site] | type[GpuPool] | type[WanLink]
    ) -> dict[str, Any]:
        return {k: v for k, v in attrs.items() if k in model.model_fields}

    sites = [Site(**fields(a, Site)) for _, a in g.nodes(data=True) if a.get("kind") == "site"]
    pools = [
        GpuPool(**fields(a, GpuPool)) for _, a in g.nodes(data=True) if a.get("kind") == "pool"
    ]
    links = [
        WanLink(**fields(a, WanLink)) for _, _, a in g.edges(data=True) if a.get("kind") == "wan"
    ]
    return Cluster(sites=sites, pools=pools, links=links)


@dataclass(frozen=True)
class Path:
    """Derived connection between two pools."""

    kind: str
    """``same-pool``, ``same-site`` or ``wan``."""
    bw_gbps: float
    latency_ms: float
    flow_gbps: float
    """Throughput of one TCP flow on the bottleneck hop (``bw_gbps`` inside a site)."""
    egress_usd_per_gb: float
    sites: tuple[str, ...]
    """Sites visited, in order."""

    def bw_with_flows(self, connections: int) -> float:
        """Aggregate Gbit/s with ``connections`` parallel flows: ``min(link, k * per_flow)``."""
        return min(self.bw_gbps, connections * self.flow_gbps)


def _site_graph(cluster: Cluster) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(s.id for s in cluster.sites)
    for link in cluster.links:
        # Parallel links between the same sites add up (bundled fibre).
        if g.has_edge(link.src, link.dst):
            e = g.edges[link.src, link.dst]
            e["bw_gbps"] += link.bw_gbps
            e["flow_gbps"] = max(e["flow_gbps"], link.flow_cap_gbps())
            e["rtt_ms"] = min(e["rtt_ms"], link.rtt_ms)
        else:
            g.add_edge(
                link.src,
                link.dst,
                bw_gbps=link.bw_gbps,
                rtt_ms=link.rtt_ms,
                flow_gbps=link.flow_cap_gbps(),
                egress=link.egress_usd_per_gb,
            )
    return g


def pool_path(cluster: Cluster, a: str, b: str) -> Path | None:
    """Bandwidth and one-way latency from pool ``a`` to pool ``b``; None if unconnected.

    Inside a pool or a site the path is the pools' scale-out fabric (the smaller per-GPU NIC
    rate of the two, in Gbit/s per GPU). Between sites it is the widest path over WAN links
    (maximum bottleneck bandwidth, ties broken by lower RTT); latency is half the summed RTT.
    """
    pa, pb = cluster.pool(a), cluster.pool(b)
    nic = min(pa.inter_node_bw_gbps or 0.0, pb.inter_node_bw_gbps or 0.0)
    if pa.site == pb.site:
        kind = "same-pool" if a == b else "same-site"
        lat = max(pa.inter_node_latency_us, pb.inter_node_latency_us) / 1e3
        return Path(kind, nic, lat, nic, 0.0, (pa.site,))
    return site_path(cluster, pa.site, pb.site)


_SITE_PATHS: dict[int, tuple[Cluster, dict[tuple[str, str], Path | None]]] = {}
_SITE_PATHS_KEEP = 8


def site_path(cluster: Cluster, a: str, b: str) -> Path | None:
    """:func:`widest_site_path`, memoised per cluster object (the memo holds the cluster, so
    its id cannot be reused by another while cached; clusters are frozen)."""
    entry = _SITE_PATHS.get(id(cluster))
    if entry is None or entry[0] is not cluster:
        if len(_SITE_PATHS) >= _SITE_PATHS_KEEP:
            _SITE_PATHS.pop(next(iter(_SITE_PATHS)))
        entry = (cluster, {})
        _SITE_PATHS[id(cluster)] = entry
    paths = entry[1]
    if (a, b) not in paths:
        paths[a, b] = widest_site_path(cluster, a, b)
    return paths[a, b]


def widest_site_path(cluster: Cluster, a: str, b: str) -> Path | None:
    """Widest WAN path between sites ``a`` and ``b`` (max bottleneck bandwidth, then lowest
    RTT); latency is half the summed RTT. None if no path joins them.

    The widest bottleneck is the largest link rate at which ``a`` and ``b`` stay connected
    using only links at least that fast; among those links, Dijkstra on RTT picks the route.
    """
    g = _site_graph(cluster)
    if a not in g or b not in g or not nx.has_path(g, a, b):
        return None
    widest = 0.0
    for bw in sorted({d["bw_gbps"] for _, _, d in g.edges(data=True)}, reverse=True):
        sub = g.edge_subgraph((u, v) for u, v, d in g.edges(data=True) if d["bw_gbps"] >= bw)
        if a in sub and b in sub and nx.has_path(sub, a, b):
            widest = bw
            break
    fast = g.edge_subgraph((u, v) for u, v, d in g.edges(data=True) if d["bw_gbps"] >= widest)
    route = nx.dijkstra_path(fast, a, b, weight="rtt_ms")
    hops = list(pairwise(route))
    rtt = sum(g.edges[u, v]["rtt_ms"] for u, v in hops)
    flow = min(g.edges[u, v]["flow_gbps"] for u, v in hops)
    egress = sum(g.edges[u, v]["egress"] for u, v in hops)
    return Path("wan", widest, rtt / 2.0, flow, egress, tuple(route))
