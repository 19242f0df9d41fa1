"""``planner bench``: the instance suite, every instance x backend timed, and each plan's
quality relative to the baselines of :mod:`planner.heuristics.baselines`.

Timing is the wall time of the whole :func:`planner.solve.plan` call (enumeration, formulation,
solve, decode, re-scoring), ``repeat`` times in one process: the first run of a process pays
imports and warms caches, so the median is the figure to quote, with min and max beside it.
Peak memory is the resident set of this process during the call (:class:`PeakRss`). Claims
made from the bench are medians and ratios, never timed assertions.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from planner.candidates import MAXIMISE
from planner.catalog import Catalog, default_catalog
from planner.errors import InputProblem, PlannerInputError
from planner.heuristics.baselines import BASELINES, Baseline, run_baseline
from planner.io import read_document
from planner.load import load
from planner.result import Result, SolveOptions, Status
from planner.solve import serving_goal
from planner.spec.problem import Objective, Problem

TIERS = ("tiny", "small", "medium", "large")
EXACT = ("milp", "cpsat", "exhaustive")
"""Backends that prove their objective (checked against an instance's ``expected:``)."""

Progress = Callable[[str], None]


class PeakRss:
    """Resident memory of this process inside a ``with`` block, MiB.

    On Linux the kernel's high-water mark (``VmHWM``) is reset before the block by writing
    ``5`` to ``/proc/self/clear_refs`` and read after it: ``peak_mib`` is the true peak of the
    block (Python objects and the solvers' native memory alike; CBC runs in a child process
    and is not counted) and ``added_mib`` its rise above the resident set at entry. Where that
    is not possible, ``peak_mib`` is None and ``added_mib`` is the growth of ``ru_maxrss``
    (0 when the block stays under an earlier peak of the process)."""

    def __init__(self) -> None:
        self.method = "ru_maxrss delta"
        self.peak_mib: float | None = None
        self.added_mib: float | None = None
        self._start = 0.0

    @staticmethod
    def _status_kib(key: str) -> float | None:
        try:
            text = Path("/proc/self/status").read_text(encoding="ascii")
        except OSError:
            return None
        m = re.search(rf"{key}:\s+(\d+)", text)
        return float(m.group(1)) if m else None

    def __enter__(self) -> PeakRss:
        rss = self._status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
            if rss is not None and self._status_kib("VmHWM") is not None:
                self.method = "VmHWM, reset via /proc/self/clear_refs"
                self._start = rss
                return self
        except OSError:
            pass
        self._start = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hwm = self._status_kib("VmHWM") if self.method.startswith("VmHWM") else None
        if hwm is not None:
            self.peak_mib = hwm / 1024.0
            self.added_mib = max(0.0, hwm - self._start) / 1024.0
        else:
            # ru_maxrss is KiB on Linux, bytes on macOS.
            scale = 1024.0 * 1024.0 if platform.system() == "Darwin" else 1024.0
            now = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            self.added_mib = (now - self._start) / scale


@dataclass
class Run:
    """One backend on one instance, ``repeat`` times."""

    backend: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    times_s: list[float]
    columns: int | None
    peak_mib: float | None
    """Peak resident set of the process during a run (max over the runs)."""
    added_mib: float | None
    """Its rise above the resident set at the start of the run (max over the runs)."""
    expected_ok: bool | None
    """Status and objective as the instance's ``expected:`` block says (None: not checked)."""
    ratios: dict[str, float | None] = field(default_factory=dict)
    """Per baseline: how many times better this plan is (ours / baseline when maximising,
    baseline / ours when minimising); None where the baseline has no usable plan."""
    error: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s) if self.times_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "median_s": self.median_s,
            "min_s": min(self.times_s, default=0.0),
            "max_s": max(self.times_s, default=0.0),
            "times_s": self.times_s,
            "columns": self.columns,
            "peak_mib": self.peak_mib,
            "added_mib": self.added_mib,
            "expected_ok": self.expected_ok,
            "better_than": self.ratios,
            "error": self.error,
        }


@dataclass
class InstanceBench:
    """Every run and baseline of one instance."""

    name: str
    path: str
    tier: str
    objective_kind: str
    maximise: bool
    runs: list[Run]
    baselines: list[Baseline]
    baseline_backend: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "tier": self.tier,
            "objective_kind": self.objective_kind,
            "sense": "max" if self.maximise else "min",
            "runs": [r.to_json() for r in self.runs],
            "baselines": [b.to_json() for b in self.baselines],
            "baseline_backend": self.baseline_backend,
        }


@dataclass
class BenchReport:
    """The bench of a set of instances."""

    instances: list[InstanceBench]
    repeat: int
    memory_method: str
    baselines: tuple[str, ...]
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No run failed and every checked run met its instance's ``expected:`` block."""
        return all(
            r.expected_ok is not False and not r.error for i in self.instances for r in i.runs
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "planner-bench/v1",
            "environment": self.environment,
            "repeat": self.repeat,
            "memory": self.memory_method,
            "baselines": list(self.baselines),
            "ok": self.ok,
            "instances": [i.to_json() for i in self.instances],
        }


def environment() -> dict[str, Any]:
    """Where the bench ran (for the report's header)."""
    from importlib.metadata import version

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "planner": version("planner"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": cpus,
        "date": time.strftime("%Y-%m-%d"),
    }


def discover(paths: Sequence[str | Path], tiers: Sequence[str] | None = None) -> list[Path]:
    """Instance files under ``paths`` (directories give their ``*.yaml``/``*.json``), kept if
    their ``tier:`` is in ``tiers``, in tier order then by name."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml"), *p.glob("*.json")]))
        else:
            found.append(p)
    if tiers is not None:
        bad = [t for t in tiers if t not in TIERS]
        if bad:
            raise PlannerInputError(
                [
                    InputProblem(
                        "--tier", "", f"unknown tier {bad[0]!r}", f"one of {', '.join(TIERS)}"
                    )
                ]
            )
    rank = {t: i for i, t in enumerate(TIERS)}
    keyed = []
    for p in dict.fromkeys(found):
        tier = str(read_document(p).get("tier") or "")
        if tiers is None or tier in tiers:
            keyed.append((rank.get(tier, len(TIERS)), p.stem, p))
    return [p for _, _, p in sorted(keyed)]


def better_by(maximise: bool, ours: float | None, base: Baseline) -> float | None:
    """How many times better ``ours`` is than the baseline (>= 1: at least as good)."""
    if ours is None or not base.usable or base.objective is None:
        return None
    if maximise:
        return ours / base.objective if base.objective > 0 else None
    return base.objective / ours if ours > 0 else None


def expected_ok(problem: Problem, result: Result, backend: str) -> bool | None:
    """Whether an exact backend's result matches the instance's ``expected:`` block."""
    exp = problem.expected
    if not exp or backend not in EXACT or "status" not in exp:
        return None
    if result.status.value != exp["status"]:
        return False
    if "objective" in exp and result.objective is not None:
        tol = float(exp.get("rel_tol", 1e-3))
        return abs(result.objective - float(exp["objective"])) <= tol * abs(float(exp["objective"]))
    return True


def _timed(
    problem: Problem,
    catalog: Catalog,
    backend: str,
    repeat: int,
    opts: SolveOptions,
    progress: Progress | None,
) -> tuple[Run, str]:
    from planner.solve import plan

    times: list[float] = []
    peaks: list[float] = []
    added: list[float] = []
    result: Result | None = None
    method = ""
    for k in range(repeat):
        if progress is not None:
            progress(f"{problem.name or 'instance'}: {backend} ({k + 1}/{repeat})")
        meter = PeakRss()
        try:
            with meter:
                t0 = time.perf_counter()
                result = plan(problem, catalog, backend=backend, options=opts)
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # a bench reports failures; it does not stop at one
            return Run(
                backend,
                Status.ERROR.value,
                None,
                None,
                None,
                times,
                None,
                None,
                None,
                False,
                error=f"{type(exc).__name__}: {exc}",
            ), meter.method
        method = meter.method
        if meter.peak_mib is not None:
            peaks.append(meter.peak_mib)
        if meter.added_mib is not None:
            added.append(meter.added_mib)
    assert result is not None
    cols = result.stats.get("columns")
    return (
        Run(
            backend,
            result.status.value,
            result.objective,
            result.bound,
            result.gap,
            times,
            int(cols) if cols is not None else None,
            max(peaks) if peaks else None,
            max(added) if added else None,
            expected_ok(problem, result, backend),
        ),
        method,
    )


def bench_instance(
    path: str | Path,
    backends: Sequence[str] = ("milp",),
    repeat: int = 3,
    baselines: Sequence[str] = BASELINES,
    catalog: Catalog | None = None,
    options: SolveOptions | None = None,
    progress: Progress | None = None,
) -> tuple[InstanceBench, str]:
    """Every backend on one instance, then every baseline; and the memory method used."""
    cat = catalog or default_catalog()
    opts = options or SolveOptions()
    problem = load(path, catalog=cat)
    goal: Objective = serving_goal(problem, problem.objective)
    maximise = goal.kind in MAXIMISE
    runs, method = [], ""
    for backend in backends:
        run, method = _timed(problem, cat, backend, repeat, opts, progress)
        runs.append(run)
    solver = next((b for b in backends if b in ("milp", "cpsat")), "milp")
    done = []
    for name in baselines:
        if progress is not None:
            progress(f"{problem.name or 'instance'}: baseline {name}")
        try:
            done.append(run_baseline(name, problem, cat, goal, solver, opts))
        except Exception as exc:  # a failing baseline is reported, not fatal
            done.append(Baseline(name, Status.ERROR.value, note=f"{type(exc).__name__}: {exc}"))
    for run in runs:
        run.ratios = {b.name: better_by(maximise, run.objective, b) for b in done}
    name = problem.name or Path(path).stem
    tier = problem.tier or ""
    inst = InstanceBench(name, str(path), tier, goal.kind.value, maximise, runs, done, solver)
    return inst, method


def bench(
    paths: Sequence[str | Path],
    backends: Sequence[str] = ("milp",),
    tiers: Sequence[str] | None = None,
    repeat: int = 3,
    baselines: Sequence[str] = BASELINES,
    catalog: Catalog | None = None,
    options: SolveOptions | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Bench every instance under ``paths`` (of ``tiers``) with every backend, ``repeat``
    times, and every baseline once. ``progress`` is called before each step."""
    from planner.solve import BACKENDS

    for b in backends:
        if b not in BACKENDS:
            raise PlannerInputError(
                [
                    InputProblem(
                        "--backends", "", f"unknown backend {b!r}", f"one of {', '.join(BACKENDS)}"
                    )
                ]
            )
    for b in baselines:
        if b not in BASELINES:
            raise PlannerInputError(
                [
                    InputProblem(
                        "--baselines",
                        "",
                        f"unknown baseline {b!r}",
                        f"one of {', '.join(BASELINES)} or none",
                    )
                ]
            )
    cat = catalog or default_catalog()
    out, method = [], "ru_maxrss delta"
    for p in discover(paths, tiers):
        inst, used = bench_instance(p, backends, repeat, baselines, cat, options, progress)
        out.append(inst)
        method = used or method
    return BenchReport(out, repeat, method, tuple(baselines), environment())


def steps(n_instances: int, backends: Sequence[str], repeat: int, baselines: Sequence[str]) -> int:
    """Progress steps of a bench (for the bar's total)."""
    return n_instances * (len(backends) * repeat + len(baselines))


__all__ = [
    "TIERS",
    "BenchReport",
    "InstanceBench",
    "PeakRss",
    "Run",
    "bench",
    "bench_instance",
    "better_by",
    "discover",
]
