"""Objective of the CP-SAT formulation: ``sum_c const[c] pick[c] + sum coef[c, d, i]
at[c, d, i]``, scaled to integers by :mod:`scaling`."""

from __future__ import annotations

from ortools.sat.python import cp_model

from planner.formulations.cpsat import scaling
from planner.formulations.cpsat.variables import Variables
from planner.formulations.index import Index


def objective(ix: Index, v: Variables) -> tuple[cp_model.LinearExprT, float]:
    """The scaled objective expression and its scale factor."""
    raw: list[tuple[float, cp_model.IntVar]] = [
        (col.const, v.pick[col.index]) for col in ix.space.columns if col.const
    ]
    for c in ix.pipeline:
        col = ix.space.columns[c]
        for d, row in enumerate(col.coef):
            raw.extend((coef, v.at[c, d, i]) for i, coef in enumerate(row) if coef)
    raw.extend((o.value, v.n[o.index]) for o in ix.svc.options if o.value)
    scale = scaling.objective_scale([coef for coef, _ in raw])
    expr = sum(scaling.scaled(coef, scale) * var for coef, var in raw)
    return expr, scale
