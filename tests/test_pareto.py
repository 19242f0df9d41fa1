"""`planner pareto`: the epsilon-constraint sweep, its front, figure and CLI."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from planner import api
from planner.cli import app
from planner.errors import PlannerInputError
from planner.load import load
from planner.pareto import ParetoFront, ParetoPoint, non_dominated
from planner.plots import pareto_figure
from planner.spec.problem import Objective
from tests.conftest import ROOT

runner = CliRunner()
TINY = ROOT / "instances" / "tiny-1node-gpt3-1.3b.yaml"


@pytest.fixture(scope="module")
def front(catalog) -> ParetoFront:
    return api.pareto(load(TINY), catalog, "energy", "throughput", points=5)


def test_points_are_mutually_non_dominated(front):
    pts = front.front
    assert len(pts) >= 3
    for a in pts:
        for b in pts:
            if a is not b:
                assert not (a.x <= b.x and a.y >= b.y and (a.x < b.x or a.y > b.y))


def test_x_never_falls_as_y_rises(front):
    pts = front.front
    assert [p.y for p in pts] == sorted(p.y for p in pts)
    assert all(b.x >= a.x for a, b in itertools.pairwise(pts))
    assert all(p.status == "optimal" and p.gpu and p.sites == ("lab",) for p in pts)


def test_extremes_equal_separate_solves(front, catalog):
    problem = load(TINY)
    fastest = api.plan(problem, catalog, Objective(kind="throughput"))
    thriftiest = api.plan(problem, catalog, Objective(kind="energy"))
    assert front.front[-1].y == pytest.approx(fastest.objective, rel=1e-9)
    assert front.front[0].x == pytest.approx(thriftiest.objective, rel=1e-9)
    assert front.front[0].y == pytest.approx(thriftiest.metrics[0].tokens_per_s, rel=1e-9)


def test_dominated_points_are_flagged():
    def pt(x: float, y: float) -> ParetoPoint:
        return ParetoPoint(x, y, "optimal", None, y, "h100-sxm-80gb", 1, 1, 1, 1, 700.0)

    out = non_dominated([pt(1, 10), pt(3, 30), pt(2.5, 15), pt(2, 20), pt(2, 20)])
    assert [(p.x, p.y, p.dominated) for p in out] == [
        (1, 10, False),
        (2.5, 15, True),
        (2, 20, False),
        (3, 30, False),
    ]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_figure_renders_headless(front, tmp_path, suffix):
    out = pareto_figure(front.points, front.x_label, front.y_label, tmp_path / f"f{suffix}")
    assert out.stat().st_size > 0
    if suffix == ".svg":
        assert ET.parse(out).getroot().tag.endswith("svg")
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("backend", ["milp", "cpsat"])
def test_cli_json(tmp_path, backend):
    fig = tmp_path / "front.svg"
    res = runner.invoke(
        app,
        [
            *("pareto", str(TINY), "--x", "carbon", "--y", "throughput", "--points", "3"),
            *("--backend", backend, "--json", "--plot", str(fig)),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert (doc["x"], doc["y"], doc["x_unit"], doc["backend"]) == (
        "carbon",
        "throughput",
        "kg CO2",
        backend,
    )
    pts = doc["points"]
    assert len(pts) >= 2 and not any(p["dominated"] for p in pts)
    assert {
        "x",
        "y",
        "status",
        "gpu",
        "tp",
        "pp",
        "dp",
        "micro_batch",
        "power_cap_w",
        "sites",
    } <= set(pts[0])
    assert fig.stat().st_size > 0


def test_time_to_train_front_is_one_point(catalog):
    front = api.pareto(load(TINY), catalog, "time_to_train", "throughput", points=3)
    assert len(front.front) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--x", "throughput", "--y", "energy"],
        ["--x", "energy", "--y", "cost"],
        ["--x", "nonsense"],
        ["--plot", "front.pdf"],
    ],
)
def test_bad_axis_is_one_line_exit_2(args):
    res = runner.invoke(app, ["pareto", str(TINY), *args])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output
    assert "expected" in lines[0]


def test_several_jobs_are_refused(catalog):
    problem = load(TINY)
    job = problem.workloads.training[0]
    two = problem.model_copy(
        update={
            "workloads": problem.workloads.model_copy(
                update={"training": [job, job.model_copy(update={"id": "second"})]}
            )
        }
    )
    with pytest.raises(PlannerInputError, match="one training job"):
        api.pareto(two, catalog)
