"""Planning conformance: backends agree, brute force confirms, plans re-verify, monotonicity.

Tolerance: objectives agree to a relative 1e-6 (both formulations and the oracle report the
cost model's figure for the decoded plan; CP-SAT scales its coefficients to 9 significant
digits, so near-ties may pick different but equally good plans).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from planner.candidates import enumerate_space
from planner.check import violations
from planner.heuristics.exhaustive import exhaustive
from planner.load import load
from planner.result import SolveOptions, Status
from planner.solution import evaluate_plan, evaluate_services, finish, plan_objective
from planner.solve import plan
from planner.spec.problem import ObjectiveKind
from tests.conftest import ROOT
from tests.tiny import build, tiny_problems

REL = 1e-6
RANDOM = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
"""Deterministic in CI; run with more examples by hand (tools-free: raise max_examples)."""
INSTANCES = sorted((ROOT / "instances").glob("*.yaml"))


def _tier(path: Path) -> str:
    return str(yaml.safe_load(path.read_text())["tier"])


SMALL = [p for p in INSTANCES if _tier(p) in ("tiny", "small")]
TINY = [p for p in INSTANCES if _tier(p) == "tiny"]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= REL * max(abs(a), abs(b), 1e-12)


def better_or_equal(a: float, b: float, maximise: bool) -> bool:
    """``a`` is at least as good as ``b``."""
    return a >= b * (1 - REL) if maximise else a <= b * (1 + REL)


def check_result(problem, result, catalog) -> None:
    """A plan that re-verifies: no violations, and the cost model gives its objective."""
    assert result.plan is not None
    assert violations(problem, result.plan, catalog) == []
    again = plan_objective(
        problem,
        ObjectiveKind(result.objective_kind),
        evaluate_plan(problem, result.plan, catalog),
        evaluate_services(problem, result.plan, catalog),
    )
    assert close(again, result.objective)
    assert result.gap is not None and result.gap <= 1e-6


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
def test_backends_agree_on_small_instances(path, catalog):
    problem = load(path)
    milp = plan(problem, catalog, backend="milp")
    cpsat = plan(problem, catalog, backend="cpsat")
    assert milp.status == cpsat.status
    if milp.status is Status.INFEASIBLE:
        assert milp.explanation and cpsat.explanation
        return
    assert close(milp.objective, cpsat.objective)
    for r in (milp, cpsat):
        check_result(problem, r, catalog)
    base = plan(problem, catalog, backend="greedy")
    if base.ok:
        assert violations(problem, base.plan, catalog) == []
        maximise = problem.objective.kind.value == "throughput"
        assert better_or_equal(milp.objective, base.objective, maximise)


@pytest.mark.parametrize("path", TINY, ids=lambda p: p.stem)
def test_exhaustive_confirms_tiny_instances(path, catalog):
    problem = load(path)
    milp = plan(problem, catalog, backend="milp")
    space = enumerate_space(problem, catalog, prune=False)
    status, choices, _, _, _ = exhaustive(problem, catalog, space)
    oracle = finish(problem, catalog, space, choices, status, "exhaustive", None, 0.0)
    assert oracle.status == milp.status
    assert close(oracle.objective, milp.objective)


@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: p.stem)
def test_instance_expectations(path, catalog):
    """Every instance states its tier, provenance and expected result; the planner meets it."""
    doc = yaml.safe_load(path.read_text())
    assert doc["tier"] in ("tiny", "small", "medium", "large")
    assert doc.get("provenance")
    expected = doc["expected"]
    result = plan(load(path), catalog, backend="milp")
    assert result.status.value == expected["status"], result.explanation
    if "objective" in expected:
        assert result.objective == pytest.approx(expected["objective"], rel=expected["rel_tol"])
    for phrase in expected.get("explanation_contains", []):
        assert phrase in result.explanation


@RANDOM
@given(tiny_problems())
def test_random_tiny_problems_match_brute_force(raw):
    """milp and cpsat (pruned space) hit the optimum that brute force finds over the
    unpruned space; greedy never beats them; every plan re-verifies."""
    from planner.catalog import default_catalog

    catalog = default_catalog()
    problem = build(raw)
    milp = plan(problem, catalog, backend="milp")
    cpsat = plan(problem, catalog, backend="cpsat")
    space = enumerate_space(problem, catalog, prune=False)
    status, choices, _, _, _ = exhaustive(problem, catalog, space)
    oracle = finish(problem, catalog, space, choices, status, "exhaustive", None, 0.0)
    assert milp.status == cpsat.status == oracle.status
    if not oracle.ok:
        return
    assert close(milp.objective, oracle.objective)
    assert close(cpsat.objective, oracle.objective)
    check_result(problem, milp, catalog)
    check_result(problem, cpsat, catalog)
    base = plan(problem, catalog, backend="greedy")
    if base.ok:
        assert better_or_equal(milp.objective, base.objective, space.maximise)


def _optimum(raw, catalog) -> float | None:
    return plan(build(raw), catalog, backend="milp").objective


@RANDOM
@given(tiny_problems())
def test_more_resources_never_hurt(raw):
    """More GPUs, more power or more WAN bandwidth never make the optimum worse."""
    from planner.catalog import default_catalog

    catalog = default_catalog()
    raw["objective"] = {"kind": "throughput"}
    base = _optimum(raw, catalog)
    more_gpus = copy.deepcopy(raw)
    more_gpus["cluster"]["pools"][0]["nodes"] += 1
    more_power = copy.deepcopy(raw)
    for s in more_power["cluster"]["sites"]:
        s["power_budget_mw"] *= 2
    more_bw = copy.deepcopy(raw)
    for link in more_bw["cluster"]["links"]:
        link["bw_gbps"] *= 4
    for variant in (more_gpus, more_power, more_bw):
        richer = _optimum(variant, catalog)
        if base is None:
            continue
        assert richer is not None and richer >= base * (1 - REL)


def test_same_input_same_plan(catalog):
    problem = load(ROOT / "instances" / "small-power-bound.yaml")
    for backend in ("milp", "cpsat"):
        a = plan(problem, catalog, backend=backend)
        b = plan(problem, catalog, backend=backend)
        assert a.plan == b.plan


def test_power_bound_instance_caps_gpus(catalog):
    """Under a binding budget the planner runs more GPUs below full power than full power
    allows: the plan's GPUs at the maximum cap would exceed the budget."""
    problem = load(ROOT / "instances" / "small-power-bound.yaml")
    result = plan(problem, catalog, backend="milp")
    cfg = result.plan.training[0]
    uncapped = result.plan.model_copy(
        update={"training": [cfg.model_copy(update={"power_cap_w": None})]}
    )
    assert cfg.power_cap_w is not None
    assert any("budget" in v for v in violations(problem, uncapped, catalog))


def test_exhaustive_respects_its_time_limit(catalog):
    problem = load(ROOT / "instances" / "tiny-2site-slow-wan.yaml")
    space = enumerate_space(problem, catalog, prune=False)
    status, _, _, _, why = exhaustive(problem, catalog, space, time_limit_s=0.0)
    assert status in (Status.FEASIBLE, Status.TIME_LIMIT_NO_SOLUTION)
    assert why == "time limit"


def test_time_limit_returns_best_plan_with_gap(catalog):
    problem = load(ROOT / "instances" / "small-power-bound.yaml")
    result = plan(problem, catalog, backend="cpsat", options=SolveOptions(time_limit_s=0.001))
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT_NO_SOLUTION)
    if result.status is Status.FEASIBLE:
        assert result.gap is not None and result.plan is not None


def _tiny_raw() -> dict:
    return yaml.safe_load((ROOT / "instances" / "tiny-1node-gpt3-1.3b.yaml").read_text())


def test_infeasible_power_names_the_budget(catalog):
    raw = _tiny_raw()
    raw["cluster"]["sites"][0]["power_budget_mw"] = 0.0003
    raw.pop("expected")
    result = plan(build(raw), catalog, backend="milp")
    assert result.status is Status.INFEASIBLE
    assert "power budgets allow 0 eligible GPUs" in result.explanation


def test_infeasible_floor_says_by_how_much(catalog):
    raw = _tiny_raw()
    raw["objective"] = {"kind": "energy", "min_tokens_per_s": 1e9}
    raw.pop("expected")
    result = plan(build(raw), catalog, backend="cpsat")
    assert result.status is Status.INFEASIBLE
    assert "the floor asks 1,000,000,000" in result.explanation and "short by" in result.explanation


def test_deadline_during_enumeration_keeps_a_valid_bound(catalog):
    """A search stopped early returns its best plan as FEASIBLE with a bound no better than
    the true optimum (the best unexamined column's bound), or no plan at all."""
    problem = load(ROOT / "instances" / "large-5site-1k.yaml")
    full = plan(problem, catalog, backend="milp")
    for limit in (0.05, 0.3):
        cut = plan(problem, catalog, backend="milp", options=SolveOptions(time_limit_s=limit))
        assert cut.status in (Status.FEASIBLE, Status.OPTIMAL, Status.TIME_LIMIT_NO_SOLUTION)
        if cut.ok:
            assert cut.objective <= full.objective * (1 + REL)
            assert cut.bound is None or cut.bound >= full.objective * (1 - REL)
