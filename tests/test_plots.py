"""Figures render headless (Agg), as PNG and SVG, from the CLI and the library."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner import load, plan
from planner.api import site_power
from planner.cli import app
from planner.plots import link_figure, plan_figure
from tests.conftest import ROOT

runner = CliRunner()
GEO = ROOT / "instances" / "geo-2site-llama70b.yaml"


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plan_plot_power_and_wan(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"plan{suffix}"
    res = runner.invoke(app, ["plan", str(GEO), "--plot", str(target)])
    assert res.exit_code == 0, res.output
    assert target.stat().st_size > 1000


def test_simulate_plot_link_utilisation(tmp_path: Path) -> None:
    target = tmp_path / "links.png"
    res = runner.invoke(app, ["simulate", str(GEO), "--plot", str(target)])
    assert res.exit_code == 0, res.output
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_figures_without_wan_or_sites(tmp_path: Path) -> None:
    problem = load(ROOT / "instances" / "serving-distserve-opt13b.yaml")
    result = plan(problem)
    assert plan_figure(site_power(result, problem), result.metrics, tmp_path / "a.svg").exists()
    assert plan_figure([], [], tmp_path / "b.png").exists()
    assert link_figure([], tmp_path / "c.png").exists()


def test_bad_plot_suffix_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["plan", str(GEO), "--plot", str(tmp_path / "x.pdf")])
    assert res.exit_code == 2 and "unknown suffix" in res.output
