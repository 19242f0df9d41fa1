"""Decision variables of the MILP (names match docs/formulation.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pulp

from planner.formulations.index import Index, Term


@dataclass(frozen=True)
class Variables:
    """Typed handles to every variable; decode reads these, never variable names."""

    # pick[c] = 1 if column c (a configuration on a layout) is the plan of its job
    pick: dict[int, pulp.LpVariable]
    # at[c, d, i] = 1 if pipeline device (stage) d of column c runs on pool i of its chain
    at: dict[tuple[int, int, int], pulp.LpVariable]
    # n[o] = engines of serving option o (integer, 0..upper[o])
    n: dict[int, pulp.LpVariable]
    # y[s, site] = 1 if service s runs in site
    y: dict[tuple[str, str], pulp.LpVariable]


def make_variables(prob: pulp.LpProblem, ix: Index) -> Variables:
    """One binary per column and per (pipeline column, device, chain position); one integer
    per serving option and one binary per (service, site)."""
    pick = {c.index: prob.add_variable(f"pick_{c.index}", cat="Binary") for c in ix.space.columns}
    at: dict[tuple[int, int, int], pulp.LpVariable] = {}
    for c in ix.pipeline:
        col = ix.space.columns[c]
        for d in range(col.pp):
            for i in range(len(col.layout.pools)):
                at[c, d, i] = prob.add_variable(f"at_{c}_{d}_{i}", cat="Binary")
    n = {
        o.index: prob.add_variable(f"n_{o.index}", lowBound=0, upBound=o.upper, cat="Integer")
        for o in ix.svc.options
    }
    y = {
        (svc, site): prob.add_variable(f"y_{svc}_{site}", cat="Binary")
        for svc, sites in ix.svc_sites.items()
        for site in sites
    }
    return Variables(pick, at, n, y)


def usage(v: Variables, ix: Index, t: Term) -> pulp.LpAffineExpression:
    """``coef * pick[c]`` or ``coef * sum_d at[c, d, i]`` for one index term."""
    if t.position is None:
        return t.coef * v.pick[t.column]
    pp = ix.space.columns[t.column].pp
    return t.coef * pulp.lpSum(v.at[t.column, d, t.position] for d in range(pp))
