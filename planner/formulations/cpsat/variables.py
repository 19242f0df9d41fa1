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


def make_variables(model: cp_model.CpModel, ix: Index) -> Variables:
    """One Boolean per column, and one per (pipeline column, device, chain position)."""
    pick = {c.index: model.new_bool_var(f"pick_{c.index}") for c in ix.space.columns}
    at: dict[tuple[int, int, int], cp_model.IntVar] = {}
    for c in ix.pipeline:
        col = ix.space.columns[c]
        for d in range(col.pp):
            for i in range(len(col.layout.pools)):
                at[c, d, i] = model.new_bool_var(f"at_{c}_{d}_{i}")
    return Variables(pick, at)


def usage(v: Variables, ix: Index, t: Term, coef: int) -> cp_model.LinearExprT:
    """``coef * pick[c]`` or ``coef * sum_d at[c, d, i]`` for one index term (integer coef)."""
    if t.position is None:
        return coef * v.pick[t.column]
    pp = ix.space.columns[t.column].pp
    return coef * sum(v.at[t.column, d, t.position] for d in range(pp))
