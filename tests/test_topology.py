"""The cluster graph round-trips; derived paths follow the links."""

from __future__ import annotations

import pytest

from planner.load import load
from planner.topology import cluster_from_graph, cluster_to_graph, pool_path

GEO = "instances/geo-2site-llama70b.yaml"


@pytest.fixture
def cluster():
    from tests.conftest import ROOT

    return load(ROOT / GEO).cluster


def test_graph_round_trip(cluster):
    g = cluster_to_graph(cluster)
    assert {a["kind"] for _, a in g.nodes(data=True)} == {"site", "pool"}
    assert cluster_from_graph(g) == cluster


def test_wan_path_and_tcp_flows(cluster):
    p = pool_path(cluster, "east-h100", "west-h100")
    assert p is not None and p.kind == "wan"
    assert p.latency_ms == pytest.approx(15.0)
    # One flow: window / RTT = 16 MiB * 8 / 30 ms = 4.47 Gbit/s.
    assert p.flow_gbps == pytest.approx(16 * 1024**2 * 8 / 0.030 / 1e9)
    assert p.bw_with_flows(1) == pytest.approx(p.flow_gbps)
    assert p.bw_with_flows(100) == pytest.approx(100.0)


def test_same_site_path(cluster):
    p = pool_path(cluster, "east-h100", "east-h100")
    assert p is not None and p.kind == "same-pool" and p.bw_gbps == 400
