"""Decision variables of the CP-SAT formulation (names match docs/formulation.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from planner.formulations.index import Index, Term


@dataclass(frozen=True)
class Variables:
    """Typed handles to every variable; decode reads these, never variable names."""

    # pick[c] = 1 if column c (a configuration on a layout) is the plan of its job
    pick: dict[int, cp_model.IntVar]
    # at[c, d, i] = 1 if pipeline device (stage) d of column c runs on pool i of its chain
    at: dict[tuple[int, int, int], cp_model.IntVar]
    # n[o] = engines of serving option o (integer, 0..upper[o])
    n: dict[int, cp_model.IntVar]
    # y[s, site] = 1 if service s runs in site
    y: dict[tuple[str, str], cp_model.IntVar]


def make_variables(model: cp_model.CpModel, ix: Index) -> Variables:
    """One Boolean per column and per (pipeline column, device, chain position); one integer
    per serving option and one Boolean per (service, site)."""
    pick = {c.index: model.new_bool_var(f"pick_{c.index}") for c in ix.space.columns}
    at: dict[tuple[int, int, int], cp_model.IntVar] = {}
    for c in ix.pipeline:
        col = ix.space.columns[c]
        for d in range(col.pp):
            for i in range(len(col.layout.pools)):
                at[c, d, i] = model.new_bool_var(f"at_{c}_{d}_{i}")
    n = {o.index: model.new_int_var(0, o.upper, f"n_{o.index}") for o in ix.svc.options}
    y = {
        (svc, site): model.new_bool_var(f"y_{svc}_{site}")
        for svc, sites in ix.svc_sites.items()
        for site in sites
    }
    return Variables(pick, at, n, y)


def usage(v: Variables, ix: Index, t: Term, coef: int) -> cp_model.LinearExprT:
    """``coef * pick[c]`` or ``coef * sum_d at[c, d, i]`` for one index term (integer coef)."""
    if t.position is None:
        return coef * v.pick[t.column]
    pp = ix.space.columns[t.column].pp
    return coef * sum(v.at[t.column, d, t.position] for d in range(pp))
