"""Bad input is reported, never crashed on (``planner evaluate`` and ``planner.load.load``).

Contract: every problem is one line ``FILE: FIELD.PATH: message (expected ...)``, the
command exits with code 2, and no Python traceback is shown. Each bad case starts from
``instances/quickstart.yaml``, is mutated, and is written into ``tmp_path``.

The per-case checks compare the CLI's stderr with the loader's lines ignoring whitespace;
``test_cli_prints_each_problem_on_one_line`` holds the one-line rule itself.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from planner import api
from planner.cli import app
from planner.errors import PlannerInputError
from planner.load import load

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "instances" / "quickstart.yaml"

# One problem line: "FILE: PATH: message" with an optional " (expected ...)" tail.
LINE_RE = re.compile(
    r"^(?P<file>[^:]+): (?P<path>[^:]+): (?P<msg>.+?)(?: \(expected (?P<exp>.+)\))?$"
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def doc() -> dict[str, Any]:
    """A fresh, mutable copy of the quickstart instance."""
    return yaml.safe_load(QUICKSTART.read_text())


def write(tmp_path: Path, name: str, data: Any) -> Path:
    """Dump ``data`` (YAML, or JSON for a ``.json`` name) into ``tmp_path / name``."""
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(data, indent=2))
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def mutated(doc: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    change(d)
    return d


def squash(text: str) -> str:
    """Text with all whitespace removed (robust to the console's line wrapping)."""
    return "".join(text.split())


def load_lines(*paths: Path) -> list[str]:
    """``load`` must raise PlannerInputError; return its lines (each a single line)."""
    with pytest.raises(PlannerInputError) as info:
        load(*paths)
    lines = info.value.lines()
    assert lines, "PlannerInputError without problems"
    for line in lines:
        assert "\n" not in line
        assert "Traceback" not in line
    assert str(info.value) == "\n".join(lines)
    return lines


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def cli_error(*paths: Path) -> str:
    """``planner evaluate PATHS`` must fail cleanly with exit code 2; return its stderr."""
    result = invoke(*paths)
    # CliRunner swallows uncaught exceptions (no traceback is printed); catch them here.
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    assert result.stdout == ""
    assert result.stderr.strip()
    return result.stderr


def assert_bad(paths: list[Path], where: str, *fragments: str, count: int = 1) -> list[str]:
    """Loader and CLI both report ``count`` problems; the first line starts with
    ``where`` (``"FILE: PATH: "``) and contains every fragment; the CLI prints the same lines."""
    lines = load_lines(*paths)
    assert len(lines) == count, lines
    line = lines[0]
    assert line.startswith(where), (where, line)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    err = cli_error(*paths)
    assert squash(err) == squash("\n".join(lines)), err
    return lines


# ------------------------------------------------------------------ the good case


def test_quickstart_evaluates_with_exit_0() -> None:
    assert load(QUICKSTART).plan is not None
    result = invoke(QUICKSTART)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "llama3-8b-pretrain" in result.stdout
    assert result.stderr == ""
    result = invoke(QUICKSTART, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training"]


def test_quickstart_roundtrip_through_yaml_dump_is_still_good(tmp_path, doc) -> None:
    """The bad cases below differ from a good input only by their mutation."""
    assert invoke(write(tmp_path, "good.yaml", doc)).exit_code == 0
    assert invoke(write(tmp_path, "good.json", doc)).exit_code == 0


# ----------------------------------------------------------- 1. unknown GPU type


def test_unknown_gpu_type_lists_catalog(tmp_path, doc) -> None:
    p = write(
        tmp_path, "gpu.yaml", mutated(doc, lambda d: d["cluster"]["pools"][0].update(gpu="tpu-v9"))
    )
    [line] = assert_bad(
        [p],
        f"{p}: cluster.pools[0].gpu: ",
        "unknown GPU type 'tpu-v9'",
        "(expected one of",
        "h100-sxm-80gb",
        "a100-sxm-80gb",
    )
    assert LINE_RE.match(line)


# ----------------------------------------------------------- 2. WAN link to a missing site


def test_link_to_missing_site(tmp_path, doc) -> None:
    link = {"src": "dc-east", "dst": "nowhere", "bw_gbps": 100, "rtt_ms": 10}
    p = write(tmp_path, "link.yaml", mutated(doc, lambda d: d["cluster"].update(links=[link])))
    assert_bad([p], f"{p}: cluster", "links[0]", "site 'nowhere'", "dc-east")


def test_link_to_missing_site_names_the_field(tmp_path, doc) -> None:
    link = {"src": "dc-east", "dst": "nowhere", "bw_gbps": 100, "rtt_ms": 10}
    p = write(tmp_path, "link.yaml", mutated(doc, lambda d: d["cluster"].update(links=[link])))
    [line] = load_lines(p)
    assert line.startswith(f"{p}: cluster.links[0].dst: ")
    assert "(expected " in line


# ----------------------------------------------------------- 3. negative bandwidth


def test_negative_link_bandwidth(tmp_path, doc) -> None:
    def change(d: dict[str, Any]) -> None:
        d["cluster"]["sites"].append({"id": "dc-west", "power_budget_mw": 1.0})
        d["cluster"]["links"] = [{"src": "dc-east", "dst": "dc-west", "bw_gbps": 100, "rtt_ms": 20}]
        d["cluster"]["links"][0]["bw_gbps"] = -5

    p = write(tmp_path, "bw.yaml", mutated(doc, change))
    assert_bad([p], f"{p}: cluster.links[0].bw_gbps: ", "greater than 0", "-5")


# ----------------------------------------------------------- 4. YAML syntax error


def test_yaml_syntax_error_gives_line_number(tmp_path, doc) -> None:
    lines = yaml.safe_dump(doc, sort_keys=False).splitlines()
    index = lines.index("  pools:")
    lines[index] = "  pools: ]["
    p = tmp_path / "syntax.yaml"
    p.write_text("\n".join(lines) + "\n")
    assert_bad([p], f"{p}: line {index + 1}, column ", "YAML syntax error", "(expected valid YAML)")


# ----------------------------------------------------------- 5-7. empty, binary, not a mapping


@pytest.mark.parametrize("text", ["", "\n   \n"], ids=["empty", "blank"])
def test_empty_file(tmp_path, text) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    assert_bad([p], f"{p}: ", "file is empty", "(expected a mapping of sections")


def test_binary_file(tmp_path) -> None:
    p = tmp_path / "model.yaml"
    p.write_bytes(b"cluster:\x00\x01\x02\xff\xfe binary junk \x00")
    assert_bad([p], f"{p}: ", "binary", "(expected a YAML or JSON text file)")


@pytest.mark.parametrize("name", ["list.yaml", "list.json"])
def test_top_level_list(tmp_path, doc, name) -> None:
    p = write(tmp_path, name, [doc])
    assert_bad([p], f"{p}: ", "top level is a list", "(expected a mapping of sections")


# ----------------------------------------------------------- 8. JSON syntax error


def test_json_syntax_error_gives_line_number(tmp_path, doc) -> None:
    lines = json.dumps(doc, indent=2).splitlines()
    index = next(i for i, line in enumerate(lines) if '"nodes": 8,' in line)
    lines[index] = lines[index] + ","  # a doubled comma
    p = tmp_path / "bad.json"
    p.write_text("\n".join(lines) + "\n")
    assert_bad([p], f"{p}: line {index + 1}, column ", "JSON syntax error", "(expected valid JSON)")


# ----------------------------------------------------------- 9-11. schema errors


def test_unknown_field_lists_allowed_fields(tmp_path, doc) -> None:
    p = write(
        tmp_path,
        "field.yaml",
        mutated(doc, lambda d: d["cluster"]["sites"][0].update(powr_budget_mw=2.0)),
    )
    [line] = assert_bad(
        [p],
        f"{p}: cluster.sites[0].powr_budget_mw: ",
        "unknown field 'powr_budget_mw'",
        "(expected one of",
        "power_budget_mw",
        "pue",
    )
    assert LINE_RE.match(line)


def test_unknown_top_level_section(tmp_path, doc) -> None:
    p = write(tmp_path, "section.yaml", mutated(doc, lambda d: d.update(clusterz={"sites": []})))
    assert_bad(
        [p],
        f"{p}: clusterz: ",
        "unknown section",
        "(expected one of",
        "cluster",
        "workloads",
        "plan",
    )


def test_missing_required_field(tmp_path, doc) -> None:
    p = write(
        tmp_path, "missing.yaml", mutated(doc, lambda d: d["cluster"]["pools"][0].pop("nodes"))
    )
    assert_bad([p], f"{p}: cluster.pools[0].nodes: ", "required field is missing", "(expected ")


# ----------------------------------------------------------- 12-13. catalog and plan references


def test_unknown_model_lists_catalog(tmp_path, doc) -> None:
    p = write(
        tmp_path,
        "model.yaml",
        mutated(doc, lambda d: d["workloads"]["training"][0].update(model="gpt-9")),
    )
    assert_bad(
        [p],
        f"{p}: workloads.training[0].model: ",
        "unknown model 'gpt-9'",
        "(expected one of",
        "llama3-8b",
        "llama3-70b",
        "inline architecture",
    )


@pytest.mark.parametrize(
    ("field", "value", "fragments"),
    [
        ("job", "ghost-job", ("no training job 'ghost-job'", "llama3-8b-pretrain")),
        ("tp", 3, ("tp=3", "32 attention heads", "llama3-8b", "divisor of n_heads")),
    ],
    ids=["missing-job", "tp-not-dividing-heads"],
)
def test_bad_plan_reference(tmp_path, doc, field, value, fragments) -> None:
    p = write(
        tmp_path,
        "plan.yaml",
        mutated(doc, lambda d: d["plan"]["training"][0].update({field: value})),
    )
    assert_bad([p], f"{p}: plan.training[0].{field}: ", *fragments)


def test_problem_names_the_file_holding_the_section(tmp_path, doc) -> None:
    """With several files, each problem names the file its section came from."""
    cluster = write(tmp_path, "cluster.yaml", {"cluster": doc["cluster"]})
    doc["workloads"]["training"][0]["model"] = "gpt-9"
    work = write(tmp_path, "work.yaml", {"workloads": doc["workloads"], "plan": doc["plan"]})
    assert_bad([cluster, work], f"{work}: workloads.training[0].model: ", "unknown model 'gpt-9'")


# ----------------------------------------------------------- 14-15. files


def test_section_in_two_files(tmp_path, doc) -> None:
    first = write(tmp_path, "first.yaml", doc)
    second = write(tmp_path, "second.yaml", {"cluster": doc["cluster"]})
    assert_bad(
        [first, second],
        f"{second}: cluster: ",
        f"section also given in {first}",
        "(expected each section once)",
    )


def test_nonexistent_file(tmp_path) -> None:
    p = tmp_path / "does-not-exist.yaml"
    assert_bad([p], f"{p}: ", "file not found", "(expected an existing YAML or JSON file)")


def test_nonexistent_file_next_to_a_good_one(tmp_path) -> None:
    p = tmp_path / "does-not-exist.yaml"
    assert_bad([QUICKSTART, p], f"{p}: ", "file not found")


# ----------------------------------------------------------- 16. several problems, one line each


def test_several_problems_one_line_each(tmp_path, doc) -> None:
    def change(d: dict[str, Any]) -> None:
        d["cluster"]["sites"][0]["pue"] = 0.5
        d["cluster"]["pools"][0]["nodes"] = -1
        d["workloads"]["training"][0]["seq_len"] = "long"

    p = write(tmp_path, "several.yaml", mutated(doc, change))
    lines = assert_bad([p], f"{p}: ", count=3)
    paths = {m["path"] for m in map(LINE_RE.match, lines) if m}
    assert paths == {
        "cluster.sites[0].pue",
        "cluster.pools[0].nodes",
        "workloads.training[0].seq_len",
    }
    assert all(line.startswith(f"{p}: ") for line in lines)
    assert "0.5" in lines[0] and "-1" in lines[1] and "'long'" in lines[2]


# ----------------------------------------------------------- 17. plan larger than the pool


def test_plan_larger_than_pool(tmp_path, doc) -> None:
    p = write(
        tmp_path, "big.yaml", mutated(doc, lambda d: d["plan"]["training"][0].update(dp=1000))
    )
    problem = load(p)  # valid input; it fails when placed on the cluster
    with pytest.raises(PlannerInputError) as info:
        api.evaluate(problem)
    [line] = info.value.lines()
    assert "plan.training[0]: " in line
    assert "east-h100" in line and "64 GPUs" in line and "2000" in line
    assert "(expected a configuration the cluster can host)" in line
    # The CLI prints the same problem (the file it names is checked in the next test).
    assert squash(cli_error(p)).endswith(squash(line.split(": ", 1)[1]))


def test_plan_larger_than_pool_names_the_file(tmp_path, doc) -> None:
    p = write(
        tmp_path, "big.yaml", mutated(doc, lambda d: d["plan"]["training"][0].update(dp=1000))
    )
    assert squash(cli_error(p)).startswith(squash(f"{p}: plan.training[0]: "))


# ----------------------------------------------------------- CLI-level contract


def test_cli_prints_each_problem_on_one_line(tmp_path, doc) -> None:
    # The unknown-model line lists the whole catalog: far wider than any console.
    p = write(
        tmp_path,
        "model.yaml",
        mutated(doc, lambda d: d["workloads"]["training"][0].update(model="gpt-9")),
    )
    [line] = load_lines(p)
    assert len(line) > 500
    assert cli_error(p).splitlines() == [line]


@pytest.mark.parametrize("case", ["yaml-syntax", "unknown-gpu"])
def test_console_script_shows_no_traceback(tmp_path, doc, case) -> None:
    """The real process (not CliRunner): exit code 2, the file named, no traceback."""
    if case == "yaml-syntax":
        p = tmp_path / "syntax.yaml"
        p.write_text("cluster:\n  sites: ][\n")
    else:
        p = write(
            tmp_path, "gpu.yaml", mutated(doc, lambda d: d["cluster"]["pools"][0].update(gpu="x"))
        )
    proc = subprocess.run(
        [sys.executable, "-c", "from planner.cli import main; main()", "evaluate", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    assert squash(str(p)) in squash(proc.stderr)


# ----------------------------------------------------------- further bugs found


@pytest.mark.parametrize(
    ("first_workloads", "second_workloads"),
    [
        (None, {"training": 5}),
        (None, {"training": None}),
        ({"training": 5}, {"training": []}),
        ([1], {"training": []}),
    ],
    ids=["second-int", "second-null", "first-int", "first-list"],
)
def test_workloads_in_two_files_with_bad_types(
    tmp_path, doc, first_workloads, second_workloads
) -> None:
    if first_workloads is not None:
        doc["workloads"] = first_workloads
    first = write(tmp_path, "first.yaml", doc)
    second = write(tmp_path, "second.yaml", {"workloads": second_workloads})
    lines = load_lines(first, second)
    assert any(
        re.match(rf"^({re.escape(str(first))}|{re.escape(str(second))}): workloads", line)
        for line in lines
    ), lines
    cli_error(first, second)


def test_merged_list_item_names_its_own_file(tmp_path, doc) -> None:
    first = write(tmp_path, "first.yaml", doc)
    job = dict(doc["workloads"]["training"][0], id="second-job", model="gpt-9")
    second = write(tmp_path, "second.yaml", {"workloads": {"training": [job]}})
    [line] = load_lines(first, second)
    assert line.startswith(f"{second}: workloads.training[0].model: unknown model 'gpt-9'"), line


def test_second_file_with_unknown_workloads_field(tmp_path, doc) -> None:
    first = write(tmp_path, "first.yaml", doc)
    second = write(
        tmp_path, "second.yaml", {"workloads": {"trainig": doc["workloads"]["training"]}}
    )
    lines = load_lines(first, second)
    assert any("trainig" in line and line.startswith(f"{second}: ") for line in lines), lines


def test_inline_model_error_has_clean_path(tmp_path, doc) -> None:
    inline = {
        "n_layers": 2,
        "hidden_size": 64,
        "n_heads": 4,
        "ffn_hidden_size": 256,
        "vocab_size": 1000,
        "hiden": 3,
    }
    p = write(
        tmp_path,
        "inline.yaml",
        mutated(doc, lambda d: d["workloads"]["training"][0].update(model=inline)),
    )
    lines = load_lines(p)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{p}: workloads.training[0].model.hiden: unknown field 'hiden'")
    assert "hidden_size" in lines[0]
