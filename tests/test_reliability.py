"""Failures and goodput: Young/Daly intervals, the goodput fraction, the Llama 3 anchor, the
``reliability:`` spec and the ``goodput`` objective on every backend."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from planner.candidates import enumerate_space, objective_value
from planner.cli import app
from planner.costmodel.reliability import (
    checkpoint_bytes,
    daly_interval_s,
    goodput_fraction,
    job_checkpoint_s,
    job_goodput_fraction,
    job_mtbf_s,
    young_interval_s,
)
from planner.heuristics.exhaustive import exhaustive
from planner.load import load
from planner.solution import finish
from planner.solve import plan
from planner.spec.base import Optimizer
from planner.spec.cluster import LLAMA3_GPU_FAILURES_PER_HOUR, Cluster, Reliability
from planner.spec.problem import ObjectiveKind, Problem
from tests.conftest import ROOT

TINY = ROOT / "instances" / "tiny-1node-gpt3-1.3b.yaml"
QUICKSTART = ROOT / "instances" / "quickstart.yaml"
HARSH = Reliability(gpu_failures_per_hour=0.5, restart_s=1800.0, checkpoint_write_gb_s=0.2)
"""Failures frequent enough that 4 GPUs beat 8 on goodput for the tiny instance."""


def _with(problem: Problem, kind: ObjectiveKind, rel: Reliability | None = None) -> Problem:
    cluster = problem.cluster
    if rel is not None:
        cluster = cluster.model_copy(update={"reliability": rel})
    objective = problem.objective.model_copy(update={"kind": kind})
    return problem.model_copy(update={"cluster": cluster, "objective": objective})


# --- equations --------------------------------------------------------------------------


def test_young_and_daly_by_hand():
    # delta = 60 s, M = 10 h = 36,000 s:
    # Young: sqrt(2 * 60 * 36000) = sqrt(4,320,000) = 2078.4610 s.
    # Daly: x = 60 / 72000 = 8.3333e-4, sqrt(x) = 0.0288675;
    #       2078.4610 * (1 + 0.0096225 + 0.0000926) - 60 = 2098.6534 - 60 = 2038.6534 s.
    assert young_interval_s(60.0, 36_000.0) == pytest.approx(2078.4610, abs=1e-3)
    assert daly_interval_s(60.0, 36_000.0) == pytest.approx(2038.6534, abs=1e-3)
    # delta >= 2M: checkpoint every M.
    assert daly_interval_s(100.0, 50.0) == 50.0
    assert daly_interval_s(100.0, 40.0) == 40.0
    # Equivalent closed form 2 M x' (1 - x'/3)^2 with x' = sqrt(delta / 2M).
    for delta, mtbf in ((1.0, 1e5), (30.0, 900.0), (99.0, 50.0)):
        x = math.sqrt(delta / (2 * mtbf))
        assert daly_interval_s(delta, mtbf) == pytest.approx(2 * mtbf * x * (1 - x / 3) ** 2)


def test_goodput_fraction_by_hand_and_limits():
    # tau = 1000, delta = 10, R = 100, M = 10,000 (Daly's exact expression):
    # 1000 / (10000 * e^0.01 * (e^0.101 - 1)) = 1000 / (10000 * 1.0100502 * 0.1062766)
    #                                          = 1000 / 1073.447 = 0.931578
    assert goodput_fraction(1000.0, 10.0, 100.0, 10_000.0) == pytest.approx(0.931578, abs=1e-6)
    # First order: 1 - (10/1000 + (500 + 100)/10000) = 0.93: close to the exact figure.
    assert goodput_fraction(1000.0, 10.0, 100.0, 10_000.0) == pytest.approx(0.93, abs=5e-3)
    # No failures: only the checkpoints cost; without checkpoints nothing is lost.
    assert goodput_fraction(1000.0, 10.0, 100.0, math.inf) == pytest.approx(1000 / 1010)
    assert goodput_fraction(math.inf, 10.0, 100.0, math.inf) == 1.0
    # Huge intervals neither overflow nor leave [0, 1].
    assert 0.0 <= goodput_fraction(1e9, 10.0, 100.0, 60.0) < 1e-6


@pytest.mark.parametrize(
    ("delta", "mtbf", "restart", "tol"),
    [
        (2.8, 11_130.0, 600.0, 1e-6),  # Llama 3 405B on 16k GPUs (below)
        (60.0, 36_000.0, 600.0, 1e-6),
        (10.0, 1e6, 0.0, 1e-6),
        (600.0, 3600.0, 300.0, 1e-5),
        (300.0, 1000.0, 100.0, 1e-5),
        (100.0, 60.0, 0.0, 1e-3),  # delta > M: Daly's estimate is coarser
    ],
)
def test_daly_interval_minimises_waste(delta, mtbf, restart, tol):
    """A numeric scan over tau finds no interval with less waste than Daly's (within
    ``tol`` of the waste); Young's first-order interval is the exact minimiser of the
    first-order waste ``delta/tau + (tau/2 + R)/M``."""
    taus = np.geomspace(delta / 1e3, 20 * mtbf, 100_001)
    waste = np.array([1 - goodput_fraction(t, delta, restart, mtbf) for t in taus])
    best = waste.min()
    at_daly = 1 - goodput_fraction(daly_interval_s(delta, mtbf), delta, restart, mtbf)
    assert at_daly <= best * (1 + tol)
    first_order = delta / taus + (taus / 2 + restart) / mtbf
    tau_y = young_interval_s(delta, mtbf)
    at_young = delta / tau_y + (tau_y / 2 + restart) / mtbf
    assert at_young <= first_order.min() * (1 + 1e-9)
    assert taus[first_order.argmin()] == pytest.approx(tau_y, rel=1e-3)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    n=st.integers(1, 100_000),
    more=st.integers(1, 100_000),
    rate=st.floats(1e-6, 1e-4),
    delta=st.floats(0.01, 600.0),
    restart=st.floats(0.0, 3600.0),
    interval=st.one_of(st.none(), st.floats(10.0, 1e5)),
)
def test_goodput_fraction_falls_with_gpus(n, more, rate, delta, restart, interval):
    """More GPUs: more failures, never a larger goodput fraction (at a stated interval, and at
    Daly's while ``delta < 2M``; at ``delta = 2M`` Daly's rule jumps from ``8M/9`` to ``M``)."""
    rel = Reliability(gpu_failures_per_hour=rate, restart_s=restart, checkpoint_interval_s=interval)
    big = n + more
    if interval is None and delta >= 2 * job_mtbf_s(big, rate):
        return
    small_f = job_goodput_fraction(n, delta, rel)
    big_f = job_goodput_fraction(big, delta, rel)
    assert 0.0 <= big_f <= small_f <= 1.0


# --- anchors ----------------------------------------------------------------------------


def test_llama3_anchor(catalog):
    """Dubey et al. 2024, Sec. 3.3.4: 419 unexpected interruptions in 54 days on 16,384 GPUs
    (7.76 a day), and "higher than 90% effective training time" for Llama 3 405B."""
    mtbf = job_mtbf_s(16_384, Reliability().gpu_failures_per_hour)
    assert 86_400 / mtbf == pytest.approx(419 / 54, rel=1e-9)
    assert 86_400 / mtbf == pytest.approx(7.8, abs=0.05)
    model = catalog.model("llama3-405b")
    # 405.9e9 parameters x (2 B BF16 weights + 12 B Adam state) = 5.68 TB.
    assert checkpoint_bytes(model, Optimizer.ADAM) == pytest.approx(405.85e9 * 14, rel=1e-3)
    delta = job_checkpoint_s(model, Optimizer.ADAM, Reliability())
    assert delta == pytest.approx(5.68e12 / 2e12, rel=1e-2)  # over Tectonic's 2 TB/s
    f = job_goodput_fraction(16_384, delta, Reliability())
    assert 0.9 < f < 0.95


# --- spec -------------------------------------------------------------------------------


def test_reliability_spec_defaults_and_validation():
    assert Reliability().gpu_failures_per_hour == pytest.approx(419 / (54 * 24 * 16_384))
    assert math.isclose(LLAMA3_GPU_FAILURES_PER_HOUR, 1.973e-5, rel_tol=1e-3)
    assert Reliability().checkpoint_interval_s is None
    for bad in (
        {"gpu_failures_per_hour": -1.0},
        {"restart_s": -1.0},
        {"checkpoint_write_gb_s": 0.0},
        {"checkpoint_interval_s": 0.0},
        {"mtbf_h": 5.0},
    ):
        with pytest.raises(ValidationError):
            Reliability.model_validate(bad)
    cluster = load(TINY).cluster.model_dump()
    cluster["reliability"] = {"restart_s": 120, "checkpoint_interval_s": 1800}
    assert Cluster.model_validate(cluster).reliability.restart_s == 120


def test_reliability_block_in_a_file(tmp_path):
    text = TINY.read_text().replace(
        "  pools:", "  reliability: {gpu_failures_per_hour: 0.5, restart_s: 1800}\n  pools:", 1
    )
    path = tmp_path / "rel.yaml"
    path.write_text(text)
    assert load(path).cluster.reliability.restart_s == 1800
    path.write_text(text.replace("restart_s: 1800", "restart_min: 30"))
    res = CliRunner().invoke(app, ["plan", str(path)])
    assert res.exit_code != 0
    assert "restart_min" in res.output


# --- objective --------------------------------------------------------------------------


def test_goodput_never_exceeds_throughput(catalog):
    problem = load(QUICKSTART)
    tput = plan(_with(problem, ObjectiveKind.THROUGHPUT), catalog, backend="milp")
    good = plan(_with(problem, ObjectiveKind.GOODPUT), catalog, backend="milp")
    assert good.ok and tput.ok
    assert good.objective is not None and tput.objective is not None
    assert good.objective <= tput.objective
    for m in good.metrics:
        assert m.reliability is not None
        g = objective_value(ObjectiveKind.GOODPUT, m)
        assert g == pytest.approx(m.tokens_per_s * m.reliability.goodput_fraction)
        assert g <= objective_value(ObjectiveKind.THROUGHPUT, m)


@pytest.mark.parametrize("rel", [None, HARSH], ids=["default", "harsh"])
def test_backends_agree_on_goodput(rel, catalog):
    """milp, cpsat and brute force over the unpruned space reach the same goodput (so the
    bound pruning is sound); under harsh failures fewer GPUs win."""
    problem = _with(load(TINY), ObjectiveKind.GOODPUT, rel)
    milp = plan(problem, catalog, backend="milp")
    cpsat = plan(problem, catalog, backend="cpsat")
    space = enumerate_space(problem, catalog, prune=False)
    status, choices, _, _, _ = exhaustive(problem, catalog, space)
    oracle = finish(problem, catalog, space, choices, status, "exhaustive", None, 0.0)
    assert milp.ok and cpsat.ok and oracle.ok
    for r in (cpsat, oracle):
        assert r.objective == pytest.approx(milp.objective, rel=1e-6)
    assert milp.gap is not None and milp.gap <= 1e-6
    greedy = plan(problem, catalog, backend="greedy")
    assert greedy.objective is not None and greedy.objective <= milp.objective * (1 + 1e-9)
    if rel is HARSH:
        assert milp.metrics[0].n_gpus < 8


@pytest.mark.parametrize("backend", ["milp", "cpsat", "exhaustive", "greedy"])
def test_cli_goodput_objective(backend):
    res = CliRunner().invoke(
        app, ["plan", str(QUICKSTART), "--objective", "goodput", "--backend", backend, "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["objective_kind"] == "goodput"
    rel = doc["metrics"][0]["reliability"]
    assert {"mtbf_h", "checkpoint_s", "optimal_interval_s", "goodput_fraction"} <= set(rel)
    assert doc["objective"] == pytest.approx(rel["goodput_tokens_per_s"], rel=1e-9)


def test_evaluate_table_shows_goodput():
    res = CliRunner().invoke(app, ["evaluate", str(QUICKSTART)])
    assert res.exit_code == 0, res.output
    for text in ("failures and goodput", "job MTBF", "Young / Daly", "goodput fraction"):
        assert text in res.output
