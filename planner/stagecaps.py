"""Per-stage power caps on non-critical pipeline stages (after Perseus), solver-free.

Perseus (Chung et al., SOSP 2024, "Reducing Energy Bloat in Large Model Training") slows the
computations off a pipeline's critical path. A stage that finishes its micro-batch before the
slowest one (the last stage with the LM head and loss, a stage with more layers or a slower
GPU, or any stage while a WAN round trip sets the period) can run at a lower clock without
stretching the steady state. Here each pipeline device gets one static power cap
(``TrainingConfig.stage_power_caps_w``), chosen by the cost model:

    minimise  E(caps)   subject to   t_iter(caps) <= (1 + tolerance) * t_iter(original)

A static cap also slows the device's first forward and last backward, which lie on the
critical path of the fill and drain: in ``pipeline_time`` every device but the slowest adds
``T_d / v`` once. So the devices share one time budget and are not independent. The search is
greedy on the time-energy trade-off: from the original caps, each round tries lowering every
device by one level, scores each trial with :func:`evaluate_training` and replays it with
:func:`planner.simulate.simulate`, keeps those that save energy while neither the cost model's
nor the replayed iteration time grows by more than the tolerance, and applies the one that
saves most energy per unit of added time (free savings first). A device whose next level
breaks the budget or saves nothing stays where it is. The replay guards against one
simplification of ``pipeline_time``: when a WAN round trip sets the period, the formula lets
the slowest device grow up to that period for free, while the replay still charges its fill
and drain. The result never takes longer than the tolerance allows (by either measure) and
never uses more energy than the original; with no saving the original comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from planner.catalog import Catalog
from planner.costmodel.energy import busy_power_w
from planner.costmodel.kernels import clock_ratio
from planner.costmodel.metrics import TrainingMetrics
from planner.costmodel.placement import resolve_placement
from planner.costmodel.training import evaluate_training
from planner.result import Result, relative_gap
from planner.simulate import simulate
from planner.solution import evaluate_plan, plan_objective
from planner.spec.cluster import Cluster
from planner.spec.hardware import GpuSpec
from planner.spec.model import ModelSpec
from planner.spec.plan import TrainingConfig
from planner.spec.problem import ObjectiveKind, Problem
from planner.spec.workload import TrainingJob

DEFAULT_TOLERANCE = 1e-3
"""Largest relative growth of the iteration time the caps may cause (0.1%)."""
STEP_FRACTION_OF_TDP = 0.05
"""Spacing of the default cap levels: 5% of the GPU's TDP."""


@dataclass(frozen=True)
class StageCapReport:
    """What per-stage caps did to one training job."""

    job: str
    tolerance: float
    caps_before_w: list[float]
    """Effective cap of each pipeline device before (clamped to the GPU's range)."""
    caps_w: list[float]
    """Cap chosen for each pipeline device."""
    iteration_s_before: float
    iteration_s_after: float
    simulated_s_before: float
    """Iteration time of the discrete-event replay (``planner.simulate``)."""
    simulated_s_after: float
    energy_per_iteration_j_before: float
    energy_per_iteration_j_after: float
    energy_to_train_kwh_before: float
    energy_to_train_kwh_after: float
    evaluations: int
    """Cost-model evaluations the search used."""

    @property
    def saving(self) -> float:
        """Relative energy saved: ``1 - E_after / E_before``."""
        return 1.0 - self.energy_per_iteration_j_after / self.energy_per_iteration_j_before

    @property
    def slowdown(self) -> float:
        """Relative growth of the iteration time: ``t_after / t_before - 1``."""
        return self.iteration_s_after / self.iteration_s_before - 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "tolerance": self.tolerance,
            "caps_before_w": self.caps_before_w,
            "caps_w": self.caps_w,
            "iteration_s_before": self.iteration_s_before,
            "iteration_s_after": self.iteration_s_after,
            "slowdown": self.slowdown,
            "simulated_s_before": self.simulated_s_before,
            "simulated_s_after": self.simulated_s_after,
            "energy_per_iteration_j_before": self.energy_per_iteration_j_before,
            "energy_per_iteration_j_after": self.energy_per_iteration_j_after,
            "energy_to_train_kwh_before": self.energy_to_train_kwh_before,
            "energy_to_train_kwh_after": self.energy_to_train_kwh_after,
            "saving": self.saving,
            "evaluations": self.evaluations,
        }


@dataclass(frozen=True)
class _Trial:
    """One set of caps: its cost-model figures and its replayed iteration time."""

    metrics: TrainingMetrics
    simulated_s: float

    @property
    def energy_j(self) -> float:
        return self.metrics.energy.energy_per_iteration_j

    def slowdown(self, base: _Trial) -> float:
        """Relative growth over ``base`` of the slower of cost model and replay."""
        return max(
            self.metrics.iteration_time_s / base.metrics.iteration_time_s - 1.0,
            self.simulated_s / base.simulated_s - 1.0,
        )


def effective_cap_w(gpu: GpuSpec, cap_w: float | None) -> float:
    """The cap a GPU runs at: ``cap_w`` (default its maximum) clamped to its allowed range."""
    cap = gpu.power_cap_max_w if cap_w is None else cap_w
    return min(max(cap, gpu.power_cap_min_w), gpu.power_cap_max_w)


def cap_ladder(gpu: GpuSpec, top_w: float, levels: Sequence[float] | None = None) -> list[float]:
    """Caps to try below ``top_w``, highest first: ``levels`` (default ``top_w - k * 5% TDP``
    down to ``power_cap_min_w``), clamped to the GPU's range. Levels that run the GPU exactly
    as the one above (same clock and busy powers, e.g. caps above the loaded draw) collapse
    into the lowest of them."""
    if levels is None:
        step = STEP_FRACTION_OF_TDP * gpu.tdp_w
        n = int((top_w - gpu.power_cap_min_w) / step + 1e-9)
        levels = [top_w - k * step for k in range(1, n + 1)] + [gpu.power_cap_min_w]
    caps = sorted({effective_cap_w(gpu, c) for c in levels if c < top_w}, reverse=True)

    def effect(c: float) -> tuple[float, float, float]:
        return (clock_ratio(gpu, c), *busy_power_w(gpu, c))

    out: list[float] = []
    last = effect(top_w)
    for c in caps:
        if effect(c) == last and out:
            out[-1] = c
        elif effect(c) != last:
            out.append(c)
        last = effect(c)
    return out


def stage_caps(
    job: TrainingJob,
    model: ModelSpec,
    cfg: TrainingConfig,
    cluster: Cluster,
    gpus: dict[str, GpuSpec],
    levels: Sequence[float] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[TrainingConfig, StageCapReport]:
    """Lower the power cap of each pipeline device as far as the iteration time allows.

    Parameters
    ----------
    job, model, cfg, cluster, gpus
        As for :func:`~planner.costmodel.training.evaluate_training`.
    levels
        Caps (W) to try on every device; default steps of 5% of TDP from the device's
        current cap down to the GPU's ``power_cap_min_w`` (see :func:`cap_ladder`).
    tolerance
        Largest relative growth of the iteration time allowed (default 0.1%).

    Returns
    -------
    (TrainingConfig, StageCapReport)
        ``cfg`` with ``stage_power_caps_w`` set, or ``cfg`` itself when no cap saves energy,
        and what the caps did.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance {tolerance} must be >= 0")
    pl = resolve_placement(cfg, cluster, gpus)
    dev_gpus = [pl.gpu_of(d) for d in range(cfg.pp)]
    start = [effective_cap_w(g, cfg.cap_w(d)) for d, g in enumerate(dev_gpus)]
    ladders = [cap_ladder(g, c, levels) for g, c in zip(dev_gpus, start, strict=True)]
    seen: dict[tuple[float, ...], _Trial] = {}

    def score(caps: list[float] | None) -> _Trial:
        key = tuple(caps or ())
        if key not in seen:
            trial = cfg.model_copy(update={"stage_power_caps_w": caps}) if caps else cfg
            m = evaluate_training(job, model, trial, cluster, gpus)
            seen[key] = _Trial(m, simulate(trial, m).iteration_s)
        return seen[key]

    base = score(None)
    caps, best = _descend(score, start, ladders, tolerance)
    out = cfg if best is base else cfg.model_copy(update={"stage_power_caps_w": caps})
    before, after = base.metrics, best.metrics
    report = StageCapReport(
        job=job.id,
        tolerance=tolerance,
        caps_before_w=start,
        caps_w=caps,
        iteration_s_before=before.iteration_time_s,
        iteration_s_after=after.iteration_time_s,
        simulated_s_before=base.simulated_s,
        simulated_s_after=best.simulated_s,
        energy_per_iteration_j_before=before.energy.energy_per_iteration_j,
        energy_per_iteration_j_after=after.energy.energy_per_iteration_j,
        energy_to_train_kwh_before=before.energy.energy_to_train_kwh,
        energy_to_train_kwh_after=after.energy.energy_to_train_kwh,
        evaluations=len(seen),
    )
    return out, report


def _descend(
    score: Callable[[list[float] | None], _Trial],
    start: list[float],
    ladders: list[list[float]],
    tolerance: float,
) -> tuple[list[float], _Trial]:
    """Greedy descent from ``start`` (see the module docstring): the caps and their trial, or
    ``start`` and the original's trial when no step saves energy within the tolerance."""
    base = score(None)
    caps, best, pos = list(start), base, [0] * len(start)
    while True:
        moves: list[tuple[bool, float, int, _Trial]] = []
        for d, ladder in enumerate(ladders):
            if pos[d] >= len(ladder):
                continue
            t = score([*caps[:d], ladder[pos[d]], *caps[d + 1 :]])
            saved = best.energy_j - t.energy_j
            added = t.slowdown(base) - best.slowdown(base)
            if t.slowdown(base) > tolerance or saved <= 0:
                pos[d] = len(ladder)  # deeper levels are slower still and save less
                continue
            moves.append((added <= 0, saved if added <= 0 else saved / added, d, t))
        if not moves:
            return (caps, best) if best is not base else (list(start), base)
        _, _, d, best = max(moves, key=lambda x: (x[0], x[1], -x[2]))
        caps[d] = ladders[d][pos[d]]
        pos[d] += 1


def apply_stage_caps(
    result: Result,
    problem: Problem,
    catalog: Catalog,
    levels: Sequence[float] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Result, list[StageCapReport]]:
    """:func:`stage_caps` on every training configuration of a solved plan, with the plan's
    metrics and objective re-evaluated by the cost model. The solver's bound covers plans
    without per-stage caps; it is kept, and the gap is measured against it."""
    if result.plan is None:
        return result, []
    configs: list[TrainingConfig] = []
    reports: list[StageCapReport] = []
    for cfg in result.plan.training:
        job = problem.workloads.training_job(cfg.job)
        model = catalog.model(job.model)
        capped, rep = stage_caps(job, model, cfg, problem.cluster, catalog.gpus, levels, tolerance)
        configs.append(capped)
        reports.append(rep)
    plan = result.plan.model_copy(update={"training": configs})
    metrics = evaluate_plan(problem, plan, catalog)
    kind = ObjectiveKind(result.objective_kind or problem.objective.kind.value)
    objective = plan_objective(problem, kind, metrics)
    stats = {**result.stats, "objective_without_stage_caps": result.objective}
    gap = relative_gap(objective, result.bound)
    out = replace(result, plan=plan, metrics=metrics, objective=objective, gap=gap, stats=stats)
    return out, reports


__all__ = [
    "DEFAULT_TOLERANCE",
    "StageCapReport",
    "apply_stage_caps",
    "cap_ladder",
    "effective_cap_w",
    "stage_caps",
]
