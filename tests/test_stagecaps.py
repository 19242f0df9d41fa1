"""Per-stage power caps on non-critical pipeline stages (issue 6, after Perseus)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from planner import api, check
from planner.cli import app
from planner.costmodel.energy import provisioned_by_pool_w, provisioned_power_w
from planner.costmodel.placement import resolve_placement
from planner.errors import PlannerInputError
from planner.load import load, problem_from_dict
from planner.simulate import simulate
from planner.solution import evaluate_plan, plan_objective
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import Problem
from planner.stagecaps import DEFAULT_TOLERANCE, cap_ladder, stage_caps
from tests.conftest import ROOT

GEO = ROOT / "instances" / "geo-2site-llama70b.yaml"
BIG_VOCAB = {
    "id": "big-vocab-gpt",
    "n_layers": 16,
    "hidden_size": 2048,
    "n_heads": 16,
    "ffn_hidden_size": 8192,
    "vocab_size": 256000,
    "source": "synthetic: a 256k vocabulary makes the LM-head stage ~3x the others",
}


def heavy_head(budget_mw: float = 1.0, caps: list[float] | None = None) -> dict[str, Any]:
    """One site, 32 H100s, a 4-stage pipeline whose last stage carries a big LM head."""
    cfg: dict[str, Any] = {"job": "job", "gpu": "h100-sxm-80gb", "tp": 1, "pp": 4, "dp": 8}
    if caps is not None:
        cfg["stage_power_caps_w"] = caps
    return {
        "name": "heavy-head",
        "cluster": {
            "sites": [{"id": "s", "power_budget_mw": budget_mw, "pue": 1.2}],
            "pools": [{"id": "p", "site": "s", "gpu": "h100-sxm-80gb", "nodes": 4}],
        },
        "workloads": {
            "training": [
                {
                    "id": "job",
                    "model": BIG_VOCAB,
                    "seq_len": 4096,
                    "global_batch_seqs": 256,
                    "tokens_to_train": 1e10,
                }
            ]
        },
        "plan": {"training": [cfg]},
    }


def capped(problem: Problem, catalog, tolerance: float = DEFAULT_TOLERANCE):
    assert problem.plan is not None
    cfg = problem.plan.training[0]
    job = problem.workloads.training_job(cfg.job)
    model = catalog.model(job.model)
    return cfg, *stage_caps(job, model, cfg, problem.cluster, catalog.gpus, tolerance=tolerance)


def metrics(problem: Problem, cfg: TrainingConfig, catalog):
    return evaluate_plan(problem, Plan(training=[cfg]), catalog)[0]


@pytest.mark.parametrize("tolerance", [0.0, 1e-3, 1e-2])
@pytest.mark.parametrize("name", ["geo", "heavy", "quickstart"])
def test_time_within_tolerance_and_energy_never_higher(name, tolerance, catalog):
    problem = {
        "geo": lambda: load(GEO),
        "heavy": lambda: problem_from_dict(heavy_head()),
        "quickstart": lambda: load(ROOT / "instances" / "quickstart.yaml"),
    }[name]()
    cfg, out, report = capped(problem, catalog, tolerance)
    before, after = metrics(problem, cfg, catalog), metrics(problem, out, catalog)
    assert after.iteration_time_s <= before.iteration_time_s * (1 + tolerance) + 1e-12
    assert (
        simulate(out, after).iteration_s
        <= simulate(cfg, before).iteration_s * (1 + tolerance) + 1e-12
    )
    assert after.energy.energy_per_iteration_j <= before.energy.energy_per_iteration_j
    assert after.energy.energy_to_train_kwh <= before.energy.energy_to_train_kwh
    assert report.iteration_s_after == pytest.approx(after.iteration_time_s, rel=1e-12)
    assert report.energy_to_train_kwh_after == pytest.approx(after.energy.energy_to_train_kwh)
    assert report.saving >= 0.0 and report.slowdown <= tolerance + 1e-12
    if out is cfg:
        assert report.caps_w == report.caps_before_w


def test_heavy_last_stage_keeps_its_cap_and_the_others_drop(catalog):
    problem = problem_from_dict(heavy_head())
    cfg, out, report = capped(problem, catalog)
    m = metrics(problem, cfg, catalog)
    times = [d.fwd_s + d.bwd_s for d in m.devices]
    assert times.index(max(times)) == 3  # the LM head makes the last stage critical
    assert out.stage_power_caps_w is not None
    assert out.stage_power_caps_w[3] == 700.0
    assert all(c < 700.0 for c in out.stage_power_caps_w[:3])
    assert report.saving > 0.01
    after = metrics(problem, out, catalog)
    assert [d.fwd_s for d in after.devices][:3] > [d.fwd_s for d in m.devices][:3]
    assert after.devices[3].fwd_s == pytest.approx(m.devices[3].fwd_s, rel=1e-12)


def test_a_wider_tolerance_saves_at_least_as_much(catalog):
    problem = problem_from_dict(heavy_head())
    savings = [capped(problem, catalog, tol)[2].saving for tol in (0.0, 1e-3, 1e-2)]
    assert savings == sorted(savings)
    assert savings[-1] > savings[1] > 0.0


def test_pp1_changes_nothing(catalog):
    problem = load(ROOT / "instances" / "quickstart.yaml")
    cfg, out, report = capped(problem, catalog)
    assert cfg.pp == 1
    assert out is cfg and out.stage_power_caps_w is None
    assert report.saving == 0.0 and report.slowdown == 0.0


def test_equal_stage_caps_equal_one_job_cap(catalog):
    problem = load(GEO)
    assert problem.plan is not None
    cfg = problem.plan.training[0]
    one = metrics(problem, cfg.model_copy(update={"power_cap_w": 500.0}), catalog)
    per = metrics(problem, cfg.model_copy(update={"stage_power_caps_w": [500.0] * 8}), catalog)
    assert per.iteration_time_s == pytest.approx(one.iteration_time_s, rel=1e-12)
    assert per.energy.energy_to_train_kwh == pytest.approx(one.energy.energy_to_train_kwh)


def test_a_stage_cap_slows_only_its_device(catalog):
    problem = load(GEO)
    assert problem.plan is not None
    cfg = problem.plan.training[0]
    base = metrics(problem, cfg, catalog)
    caps = [700.0] * 8
    caps[2] = 400.0
    m = metrics(problem, cfg.model_copy(update={"stage_power_caps_w": caps}), catalog)
    for d in range(8):
        if d == 2:
            assert m.devices[d].compute_s > base.devices[d].compute_s * 1.1
        else:
            assert m.devices[d].compute_s == pytest.approx(base.devices[d].compute_s, rel=1e-12)


def test_stage_caps_need_one_entry_per_pipeline_device(catalog):
    with pytest.raises(ValidationError, match="expected pp = 4"):
        TrainingConfig(job="j", gpu="h100", pp=4, stage_power_caps_w=[500.0, 600.0])
    with pytest.raises(ValidationError, match="must be > 0"):
        TrainingConfig(job="j", gpu="h100", pp=2, stage_power_caps_w=[500.0, 0.0])
    with pytest.raises(PlannerInputError, match="stage_power_caps_w"):
        problem_from_dict(heavy_head(caps=[500.0]))
    ok = TrainingConfig(job="j", gpu="h100", pp=2, stage_power_caps_w=[500.0, 600.0])
    assert [ok.cap_w(0), ok.cap_w(1)] == [500.0, 600.0]


def test_ladder_steps_five_percent_of_tdp_down_to_the_minimum(catalog):
    gpu = catalog.gpus["h100-sxm-80gb"]
    ladder = cap_ladder(gpu, gpu.power_cap_max_w)
    assert ladder[0] == pytest.approx(gpu.power_cap_max_w - 0.05 * gpu.tdp_w)
    assert ladder[-1] == gpu.power_cap_min_w
    assert ladder == sorted(ladder, reverse=True)
    assert cap_ladder(gpu, gpu.power_cap_min_w) == []


def test_power_budgets_use_the_stage_caps(catalog):
    base = problem_from_dict(heavy_head())
    _, out, _ = capped(base, catalog)
    assert out.stage_power_caps_w is not None
    pl = resolve_placement(out, base.cluster, catalog.gpus)
    pool = base.cluster.pool("p")
    gpu = catalog.gpus["h100-sxm-80gb"]
    want = sum(8 * provisioned_power_w(gpu, pool, c) for c in out.stage_power_caps_w)
    assert provisioned_by_pool_w(pl)["p"] == pytest.approx(want)
    uniform = 32 * provisioned_power_w(gpu, pool, None)
    budget_mw = (want + uniform) / 2 * 1.2 / 1e6  # between the two, PUE 1.2
    tight = problem_from_dict(heavy_head(budget_mw))
    assert any("provisioned" in v for v in check.violations(tight, tight.plan, catalog))
    assert check.violations(tight, Plan(training=[out]), catalog) == []


@pytest.fixture(scope="module")
def geo_capped(catalog):
    problem = load(GEO)
    result = api.plan(problem, catalog)
    return problem, result, *api.stage_caps(result, problem, catalog)


def test_capped_plan_is_rescored_and_breaks_no_rule(geo_capped, catalog):
    problem, result, out, reports = geo_capped
    assert out.ok and out.plan is not None and len(reports) == 1
    assert out.plan.training[0].stage_power_caps_w == reports[0].caps_w
    assert check.violations(problem, out.plan, catalog) == []
    fresh = evaluate_plan(problem, out.plan, catalog)
    assert out.metrics == fresh
    assert out.objective == pytest.approx(plan_objective(problem, problem.objective.kind, fresh))
    assert out.stats["objective_without_stage_caps"] == result.objective
    assert reports[0].saving > 0.0
    assert out.objective >= result.objective * (1 - DEFAULT_TOLERANCE) - 1e-9  # tokens/s


def test_simulated_iteration_agrees_with_and_without_caps(catalog):
    for problem in (load(GEO), problem_from_dict(heavy_head())):
        cfg, out, report = capped(problem, catalog)
        assert out is not cfg
        before = simulate(cfg, metrics(problem, cfg, catalog)).iteration_s
        after = simulate(out, metrics(problem, out, catalog)).iteration_s
        assert after == pytest.approx(before, rel=0.005)
        assert report.simulated_s_after == pytest.approx(after, rel=1e-12)


def test_cli_plan_stage_caps_json():
    out = CliRunner().invoke(app, ["plan", str(GEO), "--stage-caps", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    (rep,) = doc["stage_caps"]
    caps = doc["plan"]["training"][0]["stage_power_caps_w"]
    assert caps == rep["caps_w"] and len(caps) == doc["plan"]["training"][0]["pp"]
    assert doc["plan"]["details"][0]["stage_power_caps_w"] == caps
    assert rep["energy_to_train_kwh_after"] < rep["energy_to_train_kwh_before"]
