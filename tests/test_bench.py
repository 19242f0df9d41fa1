"""`planner bench`: the suite listing, well-formed JSON and Markdown, and baselines that are
feasible plans never better than the optimum."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planner.bench import PeakRss, bench_instance, better_by, discover
from planner.check import violations
from planner.cli import app
from planner.heuristics.baselines import BASELINES, Baseline, run_baseline, site_problem
from planner.load import load
from planner.result import SolveOptions
from planner.solve import plan
from planner.suite import BEGIN, END, entry, update_readme
from tests.conftest import ROOT

runner = CliRunner()
INSTANCES = ROOT / "instances"
SINGLE_JOB = [
    p
    for p in discover([INSTANCES], ["tiny", "small"])
    if (pr := load(p)).workloads.training
    and len(pr.workloads.training) == 1
    and not pr.workloads.inference
    and (pr.expected or {}).get("status") != "infeasible"
]


def test_discover_orders_by_tier_and_filters():
    tiny = discover([INSTANCES], ["tiny"])
    assert tiny and all(load(p).tier == "tiny" for p in tiny)
    both = discover([INSTANCES], ["tiny", "small"])
    tiers = [load(p).tier for p in both]
    assert tiers == sorted(tiers, key=["tiny", "small"].index)


def test_cli_tiny_tier_json_and_markdown(tmp_path):
    md = tmp_path / "bench.md"
    args = ["bench", str(INSTANCES), "--tier", "tiny", "--repeat", "2", "--json"]
    res = runner.invoke(app, [*args, "--report", str(md)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["schema"] == "planner-bench/v1" and doc["ok"] and doc["repeat"] == 2
    assert doc["baselines"] == list(BASELINES)
    names = {i["name"] for i in doc["instances"]}
    assert {"quickstart", "tiny-2site-slow-wan", "tiny-infeasible-405b"} <= names
    for inst in doc["instances"]:
        (run,) = inst["runs"]
        assert run["backend"] == "milp" and len(run["times_s"]) == 2
        assert run["min_s"] <= run["median_s"] <= run["max_s"]
        assert run["expected_ok"] is True
        assert set(run["better_than"]) == set(BASELINES)
        assert [b["name"] for b in inst["baselines"]] == list(BASELINES)
    text = md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    width = {line.count(" | ") for line in rows[: len(doc["instances"]) + 1]}
    assert len(width) == 1, "every row of the main table has the same cell count"
    assert "| quickstart |" in text and "vs atlas" in text


def test_cli_bad_backend_is_one_line():
    res = runner.invoke(app, ["bench", str(INSTANCES / "quickstart.yaml"), "--backends", "nope"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "unknown backend 'nope'" in res.output


@pytest.mark.parametrize("path", SINGLE_JOB, ids=lambda p: p.stem)
def test_baselines_are_feasible_and_never_beat_the_optimum(path, catalog):
    problem = load(path)
    inst, _ = bench_instance(path, ["milp"], repeat=1, catalog=catalog)
    (run,) = inst.runs
    assert run.status == "optimal" and run.objective is not None
    for base in inst.baselines:
        if base.status == "n/a":
            continue
        assert base.plan is not None, base.name
        assert violations(problem, base.plan, catalog) == [], base.name
        assert base.objective is not None
        assert base.objective <= run.objective * (1 + 1e-9), base.name
        assert run.ratios[base.name] is not None and run.ratios[base.name] >= 1 - 1e-9


def test_atlas_is_the_greedy_backend(catalog):
    problem = load(INSTANCES / "small-mixed-gpus.yaml")
    base = run_baseline("atlas", problem, catalog, problem.objective)
    greedy = plan(problem, catalog, backend="greedy")
    assert base.objective == pytest.approx(greedy.objective, rel=1e-12)


def test_megatron_stays_in_the_largest_site(catalog):
    problem = load(INSTANCES / "small-mixed-gpus.yaml")
    base = run_baseline("megatron", problem, catalog, problem.objective)
    assert base.plan is not None
    sites = {problem.cluster.pool(e.pool).site for c in base.plan.training for e in c.placement}
    assert sites == {"old-dc"} and base.note == "site old-dc"


def test_dp_sites_keeps_pipelines_inside_a_pool(catalog):
    problem = load(INSTANCES / "geo-2site-llama70b.yaml")
    res = plan(problem, catalog, options=SolveOptions(layouts=("single", "data")))
    assert res.ok and res.plan is not None
    (cfg,) = res.plan.training
    assert len(cfg.placement) == 1 or all(e.dp is not None for e in cfg.placement)
    full = plan(problem, catalog)
    assert full.objective is not None and res.objective is not None
    assert res.objective <= full.objective * (1 + 1e-9)


def test_site_problem_keeps_one_site():
    problem = load(INSTANCES / "tiny-2site-slow-wan.yaml")
    one = site_problem(problem, problem.cluster.sites[0].id)
    assert [s.id for s in one.cluster.sites] == [problem.cluster.sites[0].id]
    assert not one.cluster.links and one.plan is None
    assert all(p.site == one.cluster.sites[0].id for p in one.cluster.pools)


def test_service_only_instances_mark_training_rules_na(catalog):
    problem = load(INSTANCES / "serving-distserve-opt13b.yaml")
    for name in BASELINES:
        assert run_baseline(name, problem, catalog, problem.objective).status == "n/a"


def test_better_by_follows_the_objective_sense():
    base = Baseline("x", "feasible", 50.0)
    assert better_by(True, 100.0, base) == 2.0
    assert better_by(False, 25.0, base) == 2.0
    assert better_by(True, None, base) is None
    assert better_by(True, 100.0, Baseline("x", "infeasible")) is None
    assert better_by(True, 100.0, Baseline("x", "feasible", 50.0, violations=["floor"])) is None


def test_peak_rss_sees_an_allocation():
    with PeakRss() as meter:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        del block
    if not meter.method.startswith("VmHWM"):
        pytest.skip("no resettable high-water mark on this system")
    assert meter.added_mib is not None and meter.added_mib >= 48
    assert meter.peak_mib is not None and meter.peak_mib >= meter.added_mib


def test_instance_readme_table_is_current(tmp_path):
    readme = INSTANCES / "README.md"
    entries = [entry(p) for p in discover([INSTANCES])]
    assert update_readme(readme, entries) == readme.read_text(), (
        "instances/README.md is stale: planner bench instances/ --list --update instances/README.md"
    )
    fresh = tmp_path / "README.md"
    text = update_readme(fresh, entries)
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    assert text.count("\n| [") == len(entries)
