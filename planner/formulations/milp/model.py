"""Build, solve and decode the MILP with PuLP's bundled CBC."""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pulp

from planner.candidates import Space
from planner.formulations.index import Index, build_index
from planner.formulations.milp.constraints import Constraints
from planner.formulations.milp.objective import objective
from planner.formulations.milp.variables import Variables, make_variables
from planner.result import Choice, SolveOptions, Status
from planner.spec.cluster import Cluster

BACKEND = f"milp (PuLP {pulp.__version__} + CBC)"


@dataclass(frozen=True)
class Built:
    """The formulation with typed handles to its variables."""

    prob: pulp.LpProblem
    ix: Index
    v: Variables


@dataclass(frozen=True)
class Raw:
    """What the solver returned."""

    status: Status
    bound: float | None = None
    wall_s: float = 0.0
    stats: dict[str, object] = field(default_factory=dict)


def build(space: Space, cluster: Cluster) -> Built:
    """The MILP of ``space`` on ``cluster``."""
    ix = build_index(space, cluster)
    sense = pulp.LpMaximize if space.maximise else pulp.LpMinimize
    prob = pulp.LpProblem("planner", sense)
    v = make_variables(prob, ix)
    prob += objective(ix, v), "objective"
    Constraints(prob, ix, v).add_all()
    return Built(prob, ix, v)


def warm_start(built: Built, choices: list[Choice], counts: dict[int, int] | None = None) -> None:
    """Set initial values from a plan's choices and engine counts (CBC reads them with
    ``warmStart``)."""
    counts = counts or {}
    for o, var in built.v.n.items():
        var.setInitialValue(counts.get(o, 0))
    used = {(built.ix.svc.options[o].service, built.ix.svc.options[o].site) for o in counts}
    for key, var in built.v.y.items():
        var.setInitialValue(1 if key in used else 0)
    picked = {c.column: c for c in choices}
    for c, var in built.v.pick.items():
        var.setInitialValue(1 if c in picked else 0)
    for (c, d, i), var in built.v.at.items():
        ch = picked.get(c)
        pos = _positions(ch.stages) if ch is not None else []
        var.setInitialValue(1 if pos and pos[d] == i else 0)


def _positions(stages: tuple[int, ...]) -> list[int]:
    return [i for i, n in enumerate(stages) for _ in range(n)]


def _log_bound(log: str, objective: float | None, maximise: bool) -> float | None:
    """CBC's proven bound from its log ("Gap:" after a time limit; 0 when optimal)."""
    if objective is None:
        return None
    if "Optimal solution found" in log:
        return objective
    gap = re.search(r"^Gap:\s+([-\d.eE+]+)", log, re.MULTILINE)
    if gap is None:
        return None
    g = float(gap.group(1)) * max(abs(objective), 1e-12)
    return objective + g if maximise else objective - g


def _cbc(options: SolveOptions, log_path: str) -> pulp.LpSolver:
    return pulp.PULP_CBC_CMD(
        msg=False,
        timeLimit=max(1, round(options.time_limit_s)),
        gapRel=options.rel_gap,
        threads=options.threads,
        warmStart=options.warm_start,
        logPath=log_path,
        options=[f"randomSeed {options.seed + 1}", f"randomCbcSeed {options.seed + 1}"],
    )


def solve(built: Built, options: SolveOptions) -> Raw:
    """Run CBC (single thread, fixed seed: the same input gives the same plan)."""
    if options.export_model:
        built.prob.writeLP(options.export_model)
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "cbc.log"
        with warnings.catch_warnings():
            # PuLP 3.x deprecates the bundled-CBC command in favour of 4.0's; it still works.
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = _cbc(options, str(log_path))
        t0 = time.perf_counter()
        built.prob.solve(solver)
        wall = time.perf_counter() - t0
        log = log_path.read_text() if log_path.exists() else ""
    has_solution = built.prob.sol_status in (
        pulp.LpSolutionOptimal,
        pulp.LpSolutionIntegerFeasible,
    )
    if built.prob.status == pulp.LpStatusInfeasible:
        return Raw(Status.INFEASIBLE, wall_s=wall)
    if not has_solution:
        timed_out = "time limit" in log.lower()
        return Raw(Status.TIME_LIMIT_NO_SOLUTION if timed_out else Status.ERROR, wall_s=wall)
    value = pulp.value(built.prob.objective)
    status = Status.OPTIMAL if built.prob.sol_status == pulp.LpSolutionOptimal else Status.FEASIBLE
    bound = _log_bound(log, value, built.prob.sense == pulp.LpMaximize)
    stats: dict[str, object] = {
        "variables": built.prob.numVariables(),
        "constraints": built.prob.numConstraints(),
    }
    return Raw(status, bound, wall, stats)


def decode(built: Built, raw: Raw) -> list[Choice]:
    """One choice per job from the variable handles."""
    choices = []
    for cols in built.ix.by_job.values():
        for c in cols:
            if (built.v.pick[c].varValue or 0.0) > 0.5:
                choices.append(Choice(c, _stages(built, c)))
                break
    return choices


def decode_counts(built: Built, raw: Raw) -> dict[int, int]:
    """Engines of every serving option with at least one."""
    out = {}
    for o, var in built.v.n.items():
        k = round(var.varValue or 0.0)
        if k > 0:
            out[o] = k
    return out


def _stages(built: Built, c: int) -> tuple[int, ...]:
    col = built.ix.space.columns[c]
    if col.layout.mode != "pipeline":
        return ()
    counts = [0] * len(col.layout.pools)
    for d in range(col.pp):
        i = max(range(len(counts)), key=lambda j: built.v.at[c, d, j].varValue or 0.0)
        counts[i] += 1
    return tuple(counts)
