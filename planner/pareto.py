"""``pareto``: the trade-off between a cost-like objective and throughput.

An epsilon-constraint sweep over :func:`planner.solve.plan` (Haimes et al. 1971; Ehrgott,
*Multicriteria Optimization*, 2005, ch. 4): with ``x`` a kind to minimise (energy, carbon,
cost, time to train) and ``y`` one to maximise (throughput),

1. ``max y`` gives the top of the range, ``T_max`` (its tokens/s);
2. ``min x`` with no floor gives the bottom, ``T_lo`` (its tokens/s);
3. for floors ``f`` evenly spaced in ``(T_lo, T_max]``, ``min x  s.t.  tokens/s >= f``.

Every optimal answer of step 3 is weakly Pareto-optimal; the non-dominated ones form the
front, the others are kept and flagged. The floor is ``Objective.min_tokens_per_s``, which
binds *each* training job, so the sweep is defined for one training job: with several, one
common floor would not trace the trade-off of their sum and ``pareto`` refuses the input.
For a ``y`` other than throughput the floors are still on tokens/s (the only floor the
formulations have), so the front is the best of the plans found, not a proven front of ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from planner.candidates import MAXIMISE
from planner.catalog import Catalog, default_catalog
from planner.errors import InputProblem, PlannerInputError
from planner.result import Result, SolveOptions
from planner.solution import plan_objective
from planner.solve import plan
from planner.spec.problem import ObjectiveKind, Problem

UNITS = {
    "throughput": "tokens/s",
    "goodput": "tokens/s",
    "time_to_train": "h",
    "energy": "kWh",
    "carbon": "kg CO2",
    "cost": "USD",
}
"""Unit of each objective (as ``Result.objective`` reports it)."""

_TOP = 1.0 - 1e-9
"""The last floor sits this far below ``T_max`` so the solver's own answer stays feasible."""


@dataclass(frozen=True)
class ParetoPoint:
    """One solve of the sweep: its objectives, status and the plan's key configuration."""

    x: float | None
    y: float | None
    status: str
    floor_tokens_per_s: float | None
    """The throughput floor of this solve (None: the unconstrained ``min x`` / ``max y``)."""
    tokens_per_s: float | None = None
    gpu: str = ""
    tp: int = 0
    pp: int = 0
    dp: int = 0
    micro_batch: int = 0
    power_cap_w: float | None = None
    """The cap the plan runs at (the GPU's maximum where the plan sets none)."""
    sites: tuple[str, ...] = ()
    dominated: bool = False

    @property
    def ok(self) -> bool:
        return self.x is not None and self.y is not None

    def label(self, full: bool = False) -> str:
        """The configuration in a few characters: ``h100 TP2 PP1 DP32 mb2 700W`` (and the
        number of sites when there are several); ``full`` keeps the GPU's whole name."""
        if not self.gpu:
            return self.status
        cap = f" {self.power_cap_w:.0f}W" if self.power_cap_w is not None else ""
        where = f" {len(self.sites)} sites" if len(self.sites) > 1 else ""
        gpu = self.gpu if full else self.gpu.split("-")[0]
        return f"{gpu} TP{self.tp} PP{self.pp} DP{self.dp} mb{self.micro_batch}{cap}{where}"


@dataclass(frozen=True)
class ParetoFront:
    """Every point of a sweep, sorted by ``y``; ``front`` holds the non-dominated ones."""

    x: str
    y: str
    backend: str
    points: list[ParetoPoint]

    @property
    def front(self) -> list[ParetoPoint]:
        return [p for p in self.points if p.ok and not p.dominated]

    @property
    def x_label(self) -> str:
        return axis_label(self.x)

    @property
    def y_label(self) -> str:
        return axis_label(self.y)

    def to_json(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "x_unit": UNITS.get(self.x, ""),
            "y_unit": UNITS.get(self.y, ""),
            "backend": self.backend,
            "points": [{**asdict(p), "sites": list(p.sites)} for p in self.points],
        }


def axis_label(kind: str) -> str:
    """``energy (kWh)``: an objective with its unit."""
    unit = UNITS.get(kind)
    name = kind.replace("_", " ")
    return f"{name} ({unit})" if unit else name


def axes(x: str, y: str) -> tuple[ObjectiveKind, ObjectiveKind]:
    """The two objectives of a sweep: ``x`` one to minimise, ``y`` one to maximise."""
    kinds = {k.value: k for k in ObjectiveKind}
    lower = [k for k in kinds if kinds[k] not in MAXIMISE]
    upper = [k for k in kinds if kinds[k] in MAXIMISE]
    if x not in lower or y not in upper:
        raise PlannerInputError(
            [
                InputProblem(
                    "pareto",
                    f"--x {x} --y {y}",
                    "not a pair of axes to sweep",
                    f"--x one of {', '.join(lower)} and --y {' or '.join(upper)}",
                )
            ]
        )
    return kinds[x], kinds[y]


def _one_job(problem: Problem) -> None:
    jobs = [j.id for j in problem.workloads.training]
    if len(jobs) != 1:
        raise PlannerInputError(
            [
                InputProblem(
                    problem.name or "<input>",
                    "workloads.training",
                    f"pareto sweeps one training job, the inputs have {len(jobs)}"
                    + (f" ({', '.join(jobs)})" if jobs else ""),
                    "exactly one training job (the throughput floor binds each job)",
                )
            ]
        )


def _point(
    problem: Problem,
    catalog: Catalog,
    result: Result,
    x: ObjectiveKind,
    y: ObjectiveKind,
    floor: float | None,
) -> ParetoPoint:
    if not result.ok or result.plan is None or not result.metrics:
        return ParetoPoint(None, None, result.status.value, floor)
    m = result.metrics[0]
    cfg = result.plan.training[0]
    sites = tuple(dict.fromkeys(d.site for d in m.devices))
    return ParetoPoint(
        x=plan_objective(problem, x, result.metrics),
        y=plan_objective(problem, y, result.metrics),
        status=result.status.value,
        floor_tokens_per_s=floor,
        tokens_per_s=m.tokens_per_s,
        gpu=cfg.gpu,
        tp=cfg.tp,
        pp=cfg.pp,
        dp=cfg.dp,
        micro_batch=cfg.micro_batch,
        power_cap_w=cfg.power_cap_w or catalog.gpu(cfg.gpu).power_cap_max_w,
        sites=sites,
    )


def _xy(p: ParetoPoint) -> tuple[float, float]:
    return (p.x or 0.0, p.y or 0.0)


def _same(a: ParetoPoint, b: ParetoPoint) -> bool:
    return all(math.isclose(u, v, rel_tol=1e-9) for u, v in zip(_xy(a), _xy(b), strict=True))


def _dominates(a: ParetoPoint, b: ParetoPoint, tol: float = 1e-9) -> bool:
    """``a`` is no worse than ``b`` on both axes and better on one (relative tolerance)."""
    (ax, ay), (bx, by) = _xy(a), _xy(b)
    no_worse = ax <= bx + tol * abs(bx) and ay >= by - tol * abs(by)
    better = ax < bx - tol * abs(bx) or ay > by + tol * abs(by)
    return no_worse and better


def non_dominated(points: list[ParetoPoint]) -> list[ParetoPoint]:
    """The points sorted by ``y`` (failed solves last), repeats of one ``(x, y)`` dropped,
    each flagged ``dominated`` if another point dominates it."""
    ok: list[ParetoPoint] = []
    for p in sorted((p for p in points if p.ok), key=lambda p: _xy(p)[::-1]):
        if not any(_same(p, q) for q in ok):
            ok.append(p)
    flagged = [replace(p, dominated=any(_dominates(q, p) for q in ok)) for p in ok]
    return flagged + [p for p in points if not p.ok]


def sweep(
    problem: Problem,
    catalog: Catalog | None = None,
    x: str = "energy",
    y: str = "throughput",
    points: int = 8,
    backend: str = "milp",
    options: SolveOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ParetoFront:
    """Sweep the trade-off between minimising ``x`` and maximising ``y`` for the problem's
    one training job.

    Parameters
    ----------
    problem, catalog
        The inputs; the problem's own objective contributes its deadline and throughput
        floor (the ``kind`` is replaced by the sweep's).
    x, y
        Objective kinds: ``x`` one to minimise (``energy``, ``carbon``, ``cost``,
        ``time_to_train``), ``y`` one to maximise (``throughput``).
    points
        Solves along the sweep, both extremes included (at least 2); each solve gets
        ``options.time_limit_s``.
    backend
        ``milp`` or ``cpsat`` (any :func:`planner.solve.plan` backend works).
    progress
        Called with ``(done, total)`` after each solve.

    Returns
    -------
    ParetoFront
        Every point sorted by ``y``, the dominated ones flagged; ``.front`` is the rest.

    Raises
    ------
    PlannerInputError
        For an axis of the wrong kind or inputs with other than one training job.
    """
    kx, ky = axes(x, y)
    _one_job(problem)
    cat = catalog or default_catalog()
    base = problem.objective
    n = max(2, points)
    total = n + 1
    done = 0

    def solve(kind: ObjectiveKind, floor: float | None) -> ParetoPoint:
        nonlocal done
        goal = base.model_copy(
            update={"kind": kind, "min_tokens_per_s": floor or base.min_tokens_per_s}
        )
        point = _point(problem, cat, plan(problem, cat, goal, backend, options), kx, ky, floor)
        done += 1
        if progress is not None:
            progress(done, total)
        return point

    top, bottom = solve(ky, None), solve(kx, None)
    found = [top, bottom]
    if top.tokens_per_s is not None and bottom.tokens_per_s is not None:
        lo, hi = bottom.tokens_per_s, top.tokens_per_s
        floors = [lo + (hi - lo) * i / (n - 1) for i in range(1, n)] if hi > lo else []
        for f in floors[:-1]:
            found.append(solve(kx, f))
        # The last floor is T_max itself: min x among the plans of top throughput.
        if floors:
            found.append(solve(kx, hi * _TOP))
    if progress is not None and done < total:
        progress(total, total)
    return ParetoFront(x=kx.value, y=ky.value, backend=backend, points=non_dominated(found))


__all__ = ["UNITS", "ParetoFront", "ParetoPoint", "axes", "axis_label", "non_dominated", "sweep"]
