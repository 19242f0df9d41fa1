"""`planner explain`: binding constraints, bottlenecks and alternatives in plain words."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from planner import explain, load
from planner.cli import app
from tests.conftest import ROOT

runner = CliRunner()
TINY = ROOT / "instances" / "tiny-2site-slow-wan.yaml"


def test_solved_plan_names_binding_constraints_and_costs_the_alternative() -> None:
    why = explain(load(TINY))
    assert why["source"].startswith("solved with milp: optimal")
    assert any(c["binding"] and c["kind"] == "gpus" for c in why["constraints"])
    job = why["jobs"][0]
    shares = job["bottleneck"]["shares"]
    assert abs(sum(shares.values()) - 1.0) < 1e-6
    excluded, greedy = why["alternatives"]
    assert "without its chosen configuration" in excluded["what"]
    # The optimum is optimal: nothing without its configuration is better, nor is greedy.
    assert excluded["objective"] <= why["objective"] * (1 + 1e-9)
    assert greedy["objective"] <= why["objective"] * (1 + 1e-9)
    assert job["config"] not in excluded["plan"]


def test_given_plan_is_compared_with_the_optimum() -> None:
    why = explain(load(ROOT / "instances" / "quickstart.yaml"))
    assert why["status"] == "given"
    (optimum,) = why["alternatives"]
    assert optimum["what"] == "the solver's optimum"
    assert optimum["objective"] >= why["objective"] * (1 - 1e-9)


def test_recompute_forced_by_memory_is_said() -> None:
    problem = load(ROOT / "instances" / "small-moe-mixtral.yaml")
    why = explain(problem, alternatives=False)
    memory = [c for c in why["constraints"] if c["kind"] == "memory"]
    assert memory and all("GiB" in c["text"] for c in memory)


def test_cli_json_and_infeasible() -> None:
    res = runner.invoke(app, ["explain", str(TINY), "--json", "--no-alternatives"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["summary"] and doc["alternatives"] == []
    res = runner.invoke(app, ["explain", str(ROOT / "instances" / "tiny-infeasible-405b.yaml")])
    assert res.exit_code == 1
    assert "no plan" in res.output
