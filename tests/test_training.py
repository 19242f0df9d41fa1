"""Properties of the whole training cost model: sanity, monotonicity, verdicts."""

from __future__ import annotations

import pytest

from planner import evaluate, load
from planner.costmodel.training import evaluate_training
from planner.spec.plan import TrainingConfig
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def quick():
    return load(ROOT / "instances/quickstart.yaml")


@pytest.fixture(scope="module")
def geo():
    return load(ROOT / "instances/geo-2site-llama70b.yaml")


def _run(problem, catalog, **update):
    base = problem.plan.training[0].model_dump()
    cfg = TrainingConfig.model_validate({**base, **update})
    job = problem.workloads.training_job(cfg.job)
    return evaluate_training(job, catalog.model(job.model), cfg, problem.cluster, catalog.gpus)


def test_quickstart_is_sane(quick):
    (m,) = evaluate(quick)
    assert 0.3 < m.mfu < 0.7
    assert m.hfu <= m.mfu + 1e-9  # no recompute: executed causal FLOPs < model FLOPs
    assert m.fits_memory
    assert m.tokens_per_s == pytest.approx(m.tokens_per_s_per_gpu * m.n_gpus)
    b = m.breakdown
    parts = (
        b.compute_s + b.bubble_s + b.exposed_comm_s + b.dp_exposed_s + b.optimizer_s + b.overhead_s
    )
    assert parts == pytest.approx(b.iteration_s)


def test_power_cap_slows_and_saves(quick, catalog):
    full = _run(quick, catalog)
    capped = _run(quick, catalog, power_cap_w=450)
    assert capped.iteration_time_s > full.iteration_time_s
    assert capped.energy.gpu_power_w < full.energy.gpu_power_w


def test_more_microbatches_shrink_the_bubble(geo, catalog):
    few = _run(geo, catalog, dp=4, micro_batch=4)
    many = _run(geo, catalog, dp=4, micro_batch=1)
    assert many.bubble_fraction < few.bubble_fraction


EAST = [{"pool": "east-h100", "first_stage": 0, "last_stage": 7}]


def test_interleaving_shrinks_the_bubble_in_one_site(geo, catalog):
    plain = _run(geo, catalog, dp=4, placement=EAST)
    inter = _run(geo, catalog, dp=4, placement=EAST, schedule="interleaved", vpp=2)
    assert inter.bubble_fraction < plain.bubble_fraction


def test_interleaving_across_a_wan_doubles_crossings(geo, catalog):
    plain = _run(geo, catalog)
    inter = _run(geo, catalog, schedule="interleaved", vpp=2)
    assert inter.wan[0].bytes_per_iteration == pytest.approx(2 * plain.wan[0].bytes_per_iteration)


@pytest.mark.parametrize("bw", [1.0, 10.0, 100.0])
def test_faster_wan_never_hurts(geo, catalog, bw):
    link = geo.cluster.links[0]
    slow = geo.cluster.model_copy(update={"links": [link.model_copy(update={"bw_gbps": bw})]})
    fast = geo.cluster.model_copy(update={"links": [link.model_copy(update={"bw_gbps": bw * 4})]})
    t_slow = _run(geo.model_copy(update={"cluster": slow}), catalog).iteration_time_s
    t_fast = _run(geo.model_copy(update={"cluster": fast}), catalog).iteration_time_s
    assert t_fast <= t_slow + 1e-12


def test_geo_split_costs_time_over_a_slow_wan(geo, catalog):
    link = geo.cluster.links[0]
    slow = geo.cluster.model_copy(update={"links": [link.model_copy(update={"bw_gbps": 1.0})]})
    m = _run(geo.model_copy(update={"cluster": slow}), catalog)
    local = _run(geo, catalog, dp=4, placement=EAST)
    assert m.iteration_time_s > 1.5 * local.iteration_time_s
    assert m.wan and m.wan[0].utilisation > 0.5


def test_out_of_memory_verdict(quick, catalog):
    job = quick.workloads.training[0].model_copy(update={"model": "llama3-405b"})
    problem = quick.model_copy(
        update={"workloads": quick.workloads.model_copy(update={"training": [job]})}
    )
    m = _run(problem, catalog, tp=8, dp=1, micro_batch=1)
    assert not m.fits_memory
    assert any("out of memory" in w for w in m.warnings)


def test_energy_scales_with_tokens(quick, catalog):
    job = quick.workloads.training[0]
    double = job.model_copy(update={"tokens_to_train": 2 * job.tokens_to_train})
    p2 = quick.model_copy(
        update={"workloads": quick.workloads.model_copy(update={"training": [double]})}
    )
    a, b = _run(quick, catalog), _run(p2, catalog)
    assert b.energy.energy_to_train_kwh == pytest.approx(2 * a.energy.energy_to_train_kwh)
    assert b.time_to_train_h == pytest.approx(2 * a.time_to_train_h)


def test_heterogeneous_stages_pace_by_the_slowest(geo, catalog):
    pools = [
        geo.cluster.pools[0],
        geo.cluster.pools[1].model_copy(update={"gpu": "a100-sxm-80gb", "inter_node_bw_gbps": 200}),
    ]
    mixed = geo.model_copy(update={"cluster": geo.cluster.model_copy(update={"pools": pools})})
    m = _run(mixed, catalog)
    slow = [d for d in m.devices if d.gpu == "a100-sxm-80gb"]
    fast = [d for d in m.devices if d.gpu == "h100-sxm-80gb"]
    assert min(d.fwd_s for d in slow) > max(d.fwd_s for d in fast)
    assert m.iteration_time_s > _run(geo, catalog).iteration_time_s


def test_work_memo_tells_gpu_specs_apart(catalog):
    """Two specs with one id (a calibrated profile, a custom catalog) never share memoised
    per-device work."""
    from planner.load import load
    from tests.conftest import ROOT

    problem = load(ROOT / "instances" / "quickstart.yaml")
    cfg = problem.plan.training[0]
    job = problem.workloads.training[0]
    model = catalog.model(job.model)
    fast = evaluate_training(job, model, cfg, problem.cluster, catalog.gpus)
    gpu = catalog.gpus["h100-sxm-80gb"]
    slow_gpu = gpu.model_copy(
        update={"efficiency": gpu.efficiency.model_copy(update={"gemm_max": 0.35})}
    )
    slow = evaluate_training(
        job, model, cfg, problem.cluster, {**catalog.gpus, "h100-sxm-80gb": slow_gpu}
    )
    assert slow.iteration_time_s > 1.3 * fast.iteration_time_s
