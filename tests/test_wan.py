"""DP-cells on a shared WAN path (costmodel.wan) and their effect on a geo plan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.costmodel.training import evaluate_training
from planner.costmodel.wan import best_cell_size, cell_size_options, cells, crossing
from planner.load import load
from planner.spec.base import WanSharing
from tests.conftest import ROOT

V = 268e6  # one pipeline's boundary tensor, bytes (b=1, s=8192, h=16384, BF16)


def test_fair_sharing_is_cell_size_one():
    x = crossing(V, 64, 100.0, 100.0, 1)
    assert x.concurrent == 64
    assert x.transfer_s == pytest.approx(64 * V * 8 / 100e9)
    assert x.round_s == pytest.approx(x.transfer_s)
    assert x.stagger_s == 0.0


@given(
    d=st.integers(1, 512),
    link=st.sampled_from([1.0, 10.0, 100.0, 400.0]),
    flow_share=st.floats(0.05, 1.0),
)
def test_best_cell_size_minimises_round_then_transfer(d, link, flow_share):
    """When ``c*`` divides ``D``, no cell size has a shorter round, and none with the same
    round has a faster transfer (the planner compares ``c*`` with its neighbours otherwise)."""
    rate = link * flow_share
    star = crossing(V, d, link, rate, best_cell_size(d, link, rate))
    if d % star.cell_size:
        return
    for c in range(1, d + 1):
        other = crossing(V, d, link, rate, c)
        assert star.round_s <= other.round_s * (1 + 1e-12)
        if other.round_s <= star.round_s * (1 + 1e-12):
            assert star.transfer_s <= other.transfer_s * (1 + 1e-12)


@given(d=st.integers(1, 300), c=st.integers(1, 300))
def test_cells_partition_the_pipelines(d, c):
    groups = cells(d, c)
    assert [p for g in groups for p in g] == list(range(d))
    assert max(len(g) for g in groups) == min(c, d)


def test_options_include_fair_and_one_cell():
    opts = cell_size_options(96, 100.0, 40.0)
    assert opts[0] == 1 and opts[-1] == 96 and best_cell_size(96, 100.0, 40.0) in opts


def test_temporal_sharing_never_slower_than_fair_on_the_geo_instance(catalog):
    problem = load(ROOT / "instances" / "geo-2site-llama70b.yaml")
    cfg = problem.plan.training[0]
    job = problem.workloads.training[0]
    model = catalog.model(job.model)
    times = {}
    for sharing in WanSharing:
        c = cfg.model_copy(update={"wan_sharing": sharing})
        times[sharing] = evaluate_training(job, model, c, problem.cluster, catalog.gpus)
    fair, temporal = times[WanSharing.FAIR], times[WanSharing.TEMPORAL]
    assert temporal.iteration_time_s <= fair.iteration_time_s
    assert fair.dp_cell_size == 1 and temporal.dp_cell_size is not None
