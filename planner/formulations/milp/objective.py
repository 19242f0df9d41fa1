"""Objective of the MILP: ``sum_c const[c] pick[c] + sum coef[c, d, i] at[c, d, i]``."""

from __future__ import annotations

import pulp

from planner.formulations.index import Index
from planner.formulations.milp.variables import Variables


def objective(ix: Index, v: Variables) -> pulp.LpAffineExpression:
    """Column constants (throughput, time, egress) plus per-device placement terms (energy,
    carbon, money) plus each serving engine's value (energy, carbon, money, GPUs)."""
    terms = [col.const * v.pick[col.index] for col in ix.space.columns if col.const]
    for c in ix.pipeline:
        col = ix.space.columns[c]
        for d, row in enumerate(col.coef):
            terms.extend(coef * v.at[c, d, i] for i, coef in enumerate(row) if coef)
    terms.extend(o.value * v.n[o.index] for o in ix.svc.options if o.value)
    return pulp.lpSum(terms)
