"""The discrete-event replay cross-checks the cost model (issue 5, first part)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner import api
from planner.load import load
from planner.simulate import schedule_order, simulate
from planner.solution import evaluate_plan
from planner.solve import plan
from planner.spec.base import Schedule, WanSharing
from planner.spec.plan import Plan
from tests.conftest import ROOT

SINGLE_SITE = [
    "quickstart",
    "tiny-1node-gpt3-1.3b",
    "small-power-bound",
    "small-mixed-gpus",
    "small-moe-mixtral",
]


@given(
    schedule=st.sampled_from(list(Schedule)),
    pp=st.integers(1, 8),
    m=st.integers(1, 24),
    device=st.integers(0, 7),
)
def test_each_device_runs_every_forward_and_backward_once(schedule, pp, m, device):
    device %= pp
    vpp = 2 if schedule is Schedule.INTERLEAVED and pp > 1 else 1
    if vpp == 2:
        m = max(pp, m - m % pp)  # Megatron's interleaving needs m divisible by pp
    order = schedule_order(schedule, pp, vpp, m, device)
    chunks = [device + k * pp for k in range(vpp)]
    for kind in ("F", "B"):
        got = sorted((o.chunk, o.mb) for o in order if o.kind == kind)
        assert got == sorted((c, i) for c in chunks for i in range(m))
    if schedule is Schedule.ONE_F_ONE_B:
        in_flight = peak = 0
        for o in order:
            in_flight += 1 if o.kind == "F" else -1
            peak = max(peak, in_flight)
        assert peak <= pp - device


@pytest.mark.parametrize("name", SINGLE_SITE)
def test_single_site_plans_agree_within_2_percent(name, catalog):
    problem = load(ROOT / "instances" / f"{name}.yaml")
    result = plan(problem, catalog)
    configs = list(result.plan.training) + (list(problem.plan.training) if problem.plan else [])
    for cfg in configs:
        m = evaluate_plan(problem, Plan(training=[cfg]), catalog)[0]
        timeline = simulate(cfg, m)
        assert timeline.iteration_s == pytest.approx(m.iteration_time_s, rel=0.02)
        assert all(0.0 < timeline.utilisation(d) <= 1.0 for d in range(cfg.pp))


def test_temporal_rotation_never_slower_than_fair_sharing(catalog):
    problem = load(ROOT / "instances" / "geo-2site-llama70b.yaml")
    cfg = problem.plan.training[0]
    times = {}
    for sharing in WanSharing:
        c = cfg.model_copy(update={"wan_sharing": sharing})
        m = evaluate_plan(problem, Plan(training=[c]), catalog)[0]
        times[sharing] = simulate(c, m).iteration_s
    assert times[WanSharing.TEMPORAL] <= times[WanSharing.FAIR]


def test_geo_difference_is_reported(catalog):
    """On a geo plan the cost model and the replay may differ; `simulate` says by how much."""
    rows = api.simulate(load(ROOT / "instances" / "geo-2site-llama70b.yaml"), catalog)
    assert rows and all(abs(r["difference"]) < 0.10 for r in rows)
    assert rows[0]["link_busy_s"]


def test_timeline_renders_headless(tmp_path, catalog):
    problem = load(ROOT / "instances" / "geo-2site-llama70b.yaml")
    for suffix in ("png", "svg"):
        target = tmp_path / f"t.{suffix}"
        api.simulate(problem, catalog, timeline=target)
        assert target.stat().st_size > 5_000


@pytest.mark.parametrize("name", ["geo-2site-llama70b", "medium-3site-fast-wan"])
def test_chosen_dp_cell_size_is_the_simulated_best(name, catalog):
    """The planner's DP-cell size is within 2% of the best the replay finds over cell sizes."""
    problem = load(ROOT / "instances" / f"{name}.yaml")
    cfg = plan(problem, catalog).plan.training[0]
    assert cfg.dp_cell_size is not None

    def replay(c: int) -> float:
        trial = cfg.model_copy(update={"dp_cell_size": c, "wan_sharing": WanSharing.TEMPORAL})
        return simulate(
            trial, evaluate_plan(problem, Plan(training=[trial]), catalog)[0]
        ).iteration_s

    sizes = {1, cfg.dp} | {2**k for k in range(12) if 2**k < cfg.dp}
    best = min(replay(c) for c in sizes)
    assert replay(cfg.dp_cell_size) <= best * 1.02


def _bubble_setup(catalog, service_model: str = "llama3-8b"):
    import yaml

    from planner.load import problem_from_dict

    raw = yaml.safe_load((ROOT / "instances" / "geo-2site-prefill-bubbles.yaml").read_text())
    raw["workloads"]["inference"][0]["model"] = service_model
    problem = problem_from_dict(raw)
    cfg = problem.plan.training[0]
    m = evaluate_plan(problem, Plan(training=[cfg]), catalog)[0]
    svc = problem.workloads.inference[0]
    return problem, cfg, m, simulate(cfg, m), svc


def test_prefill_in_bubbles_never_delays_training(catalog):
    from planner.bubbles import harvest, prefills_fit

    problem, cfg, m, timeline, svc = _bubble_setup(catalog)
    h = harvest(cfg, m, timeline, svc, catalog.model(svc.model), problem.cluster, catalog.gpus)
    assert h.slots and prefills_fit(h, timeline)
    assert h.utilisation_with > h.utilisation_without
    assert h.capacity_rps == pytest.approx(len(h.slots) * cfg.dp / timeline.iteration_s)
    assert h.ttft_wait_s["p50"] <= h.ttft_wait_s["p90"] <= h.ttft_wait_s["p99"]


def test_a_service_too_big_for_the_spare_memory_gets_no_bubbles(catalog):
    from planner.bubbles import harvest

    problem, cfg, m, timeline, svc = _bubble_setup(catalog, "llama3-405b")
    h = harvest(cfg, m, timeline, svc, catalog.model(svc.model), problem.cluster, catalog.gpus)
    assert h.eligible_devices == [] and h.capacity_rps == 0.0
