"""`planner sweep`: field paths, the grid, local processes, Ray tasks, and one clear line for
a bad --vary."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from planner import api
from planner.cli import app
from planner.errors import PlannerInputError
from planner.load import load
from planner.sweep import grid, parse_path, parse_vary, read_inputs, set_path, validate_point
from tests.conftest import ROOT

runner = CliRunner()
TINY = ROOT / "instances" / "tiny-2site-slow-wan.yaml"
BW = "cluster.links[0].bw_gbps"


def test_paths_and_values_parse():
    assert parse_path("cluster.links[0].bw_gbps") == ["cluster", "links", 0, "bw_gbps"]
    v = parse_vary("workloads.training[0].model=llama3-8b, gpt3-1.3b")
    assert v.values == ("llama3-8b", "gpt3-1.3b")
    assert parse_vary(f"{BW}=1,2.5,1e3").values == (1, 2.5, 1000.0)
    g = grid([parse_vary(f"{BW}=1,10"), parse_vary("cluster.links[0].rtt_ms=5,50,150")])
    assert len(g) == 6 and g[0] == ((BW, 1), ("cluster.links[0].rtt_ms", 5))


def test_set_path_edits_a_copy_and_creates_optional_sections():
    raw = read_inputs([TINY])
    doc: dict[str, object] = {"cluster": {"links": [{"bw_gbps": 5}]}}
    set_path(doc, BW, 40)
    set_path(doc, "objective.kind", "energy")
    assert doc == {"cluster": {"links": [{"bw_gbps": 40}]}, "objective": {"kind": "energy"}}
    problem = validate_point(raw, ((BW, 40), ("cluster.sites[0].pue", 1.5)))
    assert problem.cluster.links[0].bw_gbps == 40 and problem.cluster.sites[0].pue == 1.5
    assert raw.doc["cluster"]["links"][0]["bw_gbps"] == 5, "the inputs are not modified"


@pytest.mark.parametrize(
    ("vary", "says"),
    [
        ("cluster.links[3].bw_gbps=1,2", "cluster.links has no item 3 (it has 1)"),
        ("cluster.links[0].bw_gbs=1,2", "unknown field 'bw_gbs'"),
        ("cluster.links[0].bw_gbps=-1,2", "greater than 0"),
        ("plan.training[0].tp=1", "'plan' cannot be varied"),
        ("cluster.links[0].bw_gbps", "not FIELD=VALUES"),
    ],
)
def test_cli_bad_vary_is_one_clear_line(vary, says):
    res = runner.invoke(app, ["sweep", str(TINY), "--vary", vary, "--workers", "1"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("--vary") and says in lines[0], res.output


def test_local_sweep_in_processes_table_plot(tmp_path):
    table, fig = tmp_path / "wan.csv", tmp_path / "wan.svg"
    args = ["sweep", str(TINY), "--vary", f"{BW}=1,10,100", "--workers", "2"]
    res = runner.invoke(app, [*args, "--out", str(table), "--plot", str(fig), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["runner"] == "2 local processes"
    rows = doc["rows"]
    assert [r[BW] for r in rows] == [1, 10, 100]
    assert all(r["status"] == "optimal" and r["tp"] and r["iteration_time_s"] > 0 for r in rows)
    # More bandwidth never makes the optimum worse.
    tps = [r["tokens_per_s"] for r in rows]
    assert tps == sorted(tps)
    crossing = [r for r in rows if r["sites"] == "east+west"]
    assert crossing and all(r["tcp_connections"] >= 1 for r in crossing)
    parsed = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [float(r[BW]) for r in parsed] == [1, 10, 100]
    assert {"dp_cell_size", "tcp_connections", "tokens_per_s"} <= set(parsed[0])
    assert fig.read_text().lstrip().startswith("<?xml")


def test_library_sweep_in_this_process_matches_a_plan(catalog):
    found = api.what_if([TINY], [f"{BW}=5"], workers=1)
    (row,) = found.rows
    assert row["objective"] == pytest.approx(api.plan(load(TINY), catalog).objective)
    with pytest.raises(PlannerInputError):
        api.what_if([TINY], [])


def test_ray_sweep_on_a_local_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        found = api.what_if([TINY], [f"{BW}=1,100"], ray="local")
    finally:
        ray.shutdown()
    assert found.runner == "ray (local)"
    local = api.what_if([TINY], [f"{BW}=1,100"], workers=1)
    assert [r["objective"] for r in found.rows] == pytest.approx(
        [r["objective"] for r in local.rows], rel=1e-12
    )
