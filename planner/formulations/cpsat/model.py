"""Build, solve and decode the CP-SAT formulation with OR-Tools."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.metadata import version

from ortools.sat.python import cp_model

from planner.candidates import Space
from planner.formulations.cpsat import scaling
from planner.formulations.cpsat.constraints import Constraints
from planner.formulations.cpsat.objective import objective
from planner.formulations.cpsat.variables import Variables, make_variables
from planner.formulations.index import Index, build_index
from planner.result import Choice, SolveOptions, Status
from planner.spec.cluster import Cluster

BACKEND = f"cpsat (OR-Tools {version('ortools')})"


@dataclass(frozen=True)
class Built:
    """The formulation with typed handles to its variables."""

    model: cp_model.CpModel
    ix: Index
    v: Variables
    scale: float
    maximise: bool


@dataclass(frozen=True)
class Raw:
    """What the solver returned."""

    status: Status
    solver: cp_model.CpSolver | None = None
    bound: float | None = None
    wall_s: float = 0.0
    stats: dict[str, object] = field(default_factory=dict)


def build(space: Space, cluster: Cluster) -> Built:
    """The CP-SAT model of ``space`` on ``cluster``."""
    ix = build_index(space, cluster)
    model = cp_model.CpModel()
    model.name = "planner"
    v = make_variables(model, ix)
    expr, scale = objective(ix, v)
    if space.maximise:
        model.maximize(expr)
    else:
        model.minimize(expr)
    Constraints(model, ix, v).add_all()
    return Built(model, ix, v, scale, space.maximise)


def warm_start(built: Built, choices: list[Choice], counts: dict[int, int] | None = None) -> None:
    """Hint the solver with a plan's choices and engine counts."""
    counts = counts or {}
    for o, var in built.v.n.items():
        built.model.add_hint(var, counts.get(o, 0))
    used = {(built.ix.svc.options[o].service, built.ix.svc.options[o].site) for o in counts}
    for key, var in built.v.y.items():
        built.model.add_hint(var, key in used)
    picked = {c.column: c for c in choices}
    for c, var in built.v.pick.items():
        built.model.add_hint(var, c in picked)
    for (c, d, i), var in built.v.at.items():
        ch = picked.get(c)
        pos = [j for j, n in enumerate(ch.stages) for _ in range(n)] if ch is not None else []
        built.model.add_hint(var, bool(pos) and pos[d] == i)


def solve(built: Built, options: SolveOptions) -> Raw:
    """Run CP-SAT (``threads`` workers, fixed seed: the same input gives the same plan)."""
    if options.export_model:
        with open(options.export_model, "w", encoding="utf-8") as fh:
            fh.write(str(built.model.proto))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = options.time_limit_s
    solver.parameters.num_workers = options.threads
    solver.parameters.random_seed = options.seed
    solver.parameters.relative_gap_limit = options.rel_gap
    t0 = time.perf_counter()
    code = solver.solve(built.model)
    wall = time.perf_counter() - t0
    stats: dict[str, object] = {
        "variables": len(built.model.proto.variables),
        "constraints": len(built.model.proto.constraints),
        "branches": solver.num_branches,
    }
    if code == cp_model.INFEASIBLE:
        return Raw(Status.INFEASIBLE, wall_s=wall, stats=stats)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        timed_out = code == cp_model.UNKNOWN
        status = Status.TIME_LIMIT_NO_SOLUTION if timed_out else Status.ERROR
        return Raw(status, wall_s=wall, stats=stats)
    status = Status.OPTIMAL if code == cp_model.OPTIMAL else Status.FEASIBLE
    bound = scaling.unscaled(solver.best_objective_bound, built.scale)
    return Raw(status, solver, bound, wall, stats)


def decode(built: Built, raw: Raw) -> list[Choice]:
    """One choice per job from the variable handles."""
    solver = raw.solver
    if solver is None:
        return []
    choices = []
    for cols in built.ix.by_job.values():
        for c in cols:
            if solver.boolean_value(built.v.pick[c]):
                choices.append(Choice(c, _stages(built, solver, c)))
                break
    return choices


def decode_counts(built: Built, raw: Raw) -> dict[int, int]:
    """Engines of every serving option with at least one."""
    solver = raw.solver
    if solver is None:
        return {}
    out = {}
    for o, var in built.v.n.items():
        k = int(solver.value(var))
        if k > 0:
            out[o] = k
    return out


def _stages(built: Built, solver: cp_model.CpSolver, c: int) -> tuple[int, ...]:
    col = built.ix.space.columns[c]
    if col.layout.mode != "pipeline":
        return ()
    counts = [0] * len(col.layout.pools)
    for d in range(col.pp):
        for i in range(len(counts)):
            if solver.boolean_value(built.v.at[c, d, i]):
                counts[i] += 1
    return tuple(counts)
