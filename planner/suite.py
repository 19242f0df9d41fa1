"""The benchmark instance suite: each instance's metadata and what it stresses, and the table
of ``instances/README.md`` (regenerated with ``planner bench instances/ --list --update
instances/README.md``). Solver-free."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from planner.catalog import Catalog, default_catalog
from planner.load import load
from planner.spec.problem import ObjectiveKind, Problem

BEGIN = "<!-- begin instance table"
END = "<!-- end instance table -->"
COMMAND = "planner bench instances/ --list --update instances/README.md"


@dataclass(frozen=True)
class Entry:
    """One instance of the suite, as the table shows it."""

    file: str
    name: str
    description: str
    tier: str
    sites: int
    gpus: str
    workloads: str
    objective: str
    stresses: str
    provenance: str
    expected: str


def _binding_power(problem: Problem, catalog: Catalog) -> bool:
    """Some site cannot power all its GPUs at their maximum cap (with node power, x PUE)."""
    for site in problem.cluster.sites:
        watts = 0.0
        for p in problem.cluster.pools:
            if p.site == site.id:
                gpu = catalog.gpu(p.gpu)
                watts += p.n_gpus * gpu.power_cap_max_w + p.nodes * p.node_idle_power_w
        if watts * site.pue > site.power_budget_mw * 1e6:
            return True
    return False


def stresses(problem: Problem, catalog: Catalog) -> list[str]:
    """What an instance exercises, derived from its contents."""
    c, w, obj = problem.cluster, problem.workloads, problem.objective
    out = []
    n_gpus = sum(p.n_gpus for p in c.pools)
    if n_gpus >= 10_000:
        out.append("scale (>=10k GPUs)")
    if len(c.sites) > 1:
        out.append(f"{len(c.sites)} sites")
    if c.links:
        lo, hi = min(x.bw_gbps for x in c.links), max(x.bw_gbps for x in c.links)
        rtt = max(x.rtt_ms for x in c.links)
        speed = "slow" if lo < 10 else "fast" if lo >= 100 else "mid"
        bw = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        out.append(f"{speed} WAN ({bw} Gbps, RTT <= {rtt:g} ms)")
    if len({p.gpu for p in c.pools}) > 1:
        out.append("mixed GPU types")
    if _binding_power(problem, catalog):
        out.append("binding power budget")
    if any(catalog.model(j.model).moe is not None for j in w.training):
        out.append("MoE")
    if len(w.training) > 1 or (w.training and w.inference):
        out.append("multi-tenant")
    if w.inference:
        out.append("serving SLO")
    if any(s.prefill_in_bubbles for s in w.inference):
        out.append("prefill in bubbles")
    if any(j.min_gpus or j.max_gpus or j.deadline_h or j.weight != 1.0 for j in w.training):
        out.append("quotas/weights/deadlines")
    if obj.kind is not ObjectiveKind.THROUGHPUT:
        out.append(f"{obj.kind.value} objective")
    if obj.min_tokens_per_s is not None:
        out.append("throughput floor")
    if obj.deadline_h is not None:
        out.append("deadline")
    expected = problem.expected or {}
    if expected.get("status") == "infeasible":
        out.append("infeasibility explanation")
    return out


def _gpus(problem: Problem) -> str:
    by: dict[str, int] = {}
    for p in problem.cluster.pools:
        by[p.gpu] = by.get(p.gpu, 0) + p.n_gpus
    return " + ".join(f"{n:,} {g}" for g, n in by.items())


def _workloads(problem: Problem, catalog: Catalog) -> str:
    jobs = [catalog.model(j.model).id for j in problem.workloads.training]
    svcs = [catalog.model(s.model).id for s in problem.workloads.inference]
    parts = []
    if jobs:
        parts.append("train " + ", ".join(jobs))
    if svcs:
        parts.append("serve " + ", ".join(svcs))
    return "; ".join(parts) or "-"


def _expected(problem: Problem) -> str:
    e = problem.expected or {}
    if not e:
        return "-"
    if "objective" in e:
        v = float(e["objective"])
        return f"{e['status']} {v:,.0f}" if abs(v) >= 1000 else f"{e['status']} {v:,.6g}"
    return str(e.get("status", "-"))


def entry(path: str | Path, catalog: Catalog | None = None) -> Entry:
    """The table entry of one instance file."""
    cat = catalog or default_catalog()
    problem = load(path, catalog=cat)
    prov = problem.provenance or "-"
    provenance = prov if isinstance(prov, str) else " ".join(prov)
    return Entry(
        Path(path).name,
        problem.name or Path(path).stem,
        problem.description or "-",
        problem.tier or "-",
        len(problem.cluster.sites),
        _gpus(problem),
        _workloads(problem, cat),
        problem.objective.kind.value,
        "; ".join(stresses(problem, cat)) or "-",
        provenance,
        _expected(problem),
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(entries: Sequence[Entry]) -> str:
    """The suite as a Markdown table (one row per instance)."""
    head = (
        "| instance | tier | what it is | sites | GPUs | workloads | objective | stresses"
        " | expected | provenance |"
    )
    lines = [head, "|" + "---|" * 10]
    for e in entries:
        cells = (
            f"[{e.name}]({e.file})",
            e.tier,
            e.description,
            str(e.sites),
            e.gpus,
            e.workloads,
            e.objective,
            e.stresses,
            e.expected,
            e.provenance,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def update_readme(readme: Path, entries: Sequence[Entry]) -> str:
    """``readme`` with the text between its table markers replaced by the current table
    (the whole file is written if it has no markers); returns the new text."""
    block = f"{BEGIN} (generated: {COMMAND}) -->\n{markdown_table(entries)}\n{END}"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < 0:
        return f"{text.rstrip()}\n\n{block}\n".lstrip()
    return text[:start] + block + text[stop + len(END) :]


__all__ = ["Entry", "entry", "markdown_table", "stresses", "update_readme"]
