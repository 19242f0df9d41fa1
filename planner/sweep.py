"""``planner sweep``: a what-if grid over any field of the inputs, one solve per grid point.

A field is addressed by its dotted path with list indices, as in the inputs
(``cluster.links[0].bw_gbps``, ``workloads.training[0].model``); each ``--vary`` gives one
field and its values, and the grid is their Cartesian product. Every point edits the merged
input mapping, is validated by the normal loader (a bad path or value is one line naming the
``--vary`` it came from), solved, and recorded as tidy rows (one per training job): the varied
values, status, objective, the chosen configuration, iteration time, tokens/s, and for plans
that cross sites the TCP connections per transfer, the DP-cell size and the activation traffic
of pipeline crossings (``pp_wan_*``; a ``data`` layout's cross-site gradient reduction shows in
``dp_exposed_s``).

Points run in local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`), or
as Ray tasks on an existing Ray cluster (``ray_address``; ``"local"`` starts one here). Ray is
an optional extra, imported only then.
"""

from __future__ import annotations

import copy
import itertools
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import InputProblem, PlannerInputError

Point = tuple[tuple[str, Any], ...]
"""One grid point: ``(field path, value)`` per varied field."""
Tick = Callable[[int, int], None]

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
_SECTIONS = ("cluster", "workloads", "objective")


@dataclass(frozen=True)
class Vary:
    """One varied field and its values."""

    path: str
    values: tuple[Any, ...]

    @property
    def parts(self) -> list[str | int]:
        return parse_path(self.path)


def _bad(where: str, message: str, expected: str) -> PlannerInputError:
    return PlannerInputError([InputProblem("--vary", where, message, expected)])


def parse_path(path: str) -> list[str | int]:
    """``cluster.links[0].bw_gbps`` -> ``["cluster", "links", 0, "bw_gbps"]``."""
    parts: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.match(seg)
        if m is None:
            raise _bad(
                path, f"cannot parse {seg!r}", "a dotted field path like cluster.links[0].bw_gbps"
            )
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    if parts[0] not in _SECTIONS:
        raise _bad(path, f"{parts[0]!r} cannot be varied", f"a path under {', '.join(_SECTIONS)}")
    return parts


def _value(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    return text


def parse_vary(text: str) -> Vary:
    """``FIELD=V1,V2,...`` (numbers, true/false, null, or words such as model names)."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip() or not values.strip():
        raise _bad(text, "not FIELD=VALUES", "e.g. cluster.links[0].bw_gbps=1,10,100")
    vals = tuple(_value(v) for v in values.split(",") if v.strip())
    vary = Vary(path.strip(), vals)
    vary.parts  # noqa: B018 - parse now, so a bad path fails before any solve
    return vary


def _item(node: Any, key: int, parts: Sequence[str | int], i: int, path: str) -> Any:
    """``node[key]`` of a list, or a one-line error naming the list and its length."""
    at = _render(parts[:i])
    if not isinstance(node, list):
        raise _bad(path, f"{at} is not a list", "a field name after it, not an index")
    if key >= len(node):
        n = len(node)
        raise _bad(path, f"{at} has no item {key} (it has {n})", f"an index below {n}")
    return node[key]


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set the field at ``path`` in ``doc`` (missing mappings on the way are created, so an
    optional field absent from the file can be varied; the loader rejects unknown names)."""
    parts = parse_path(path)
    node: Any = doc
    for i, key in enumerate(parts[:-1]):
        if isinstance(key, int):
            node = _item(node, key, parts, i, path)
            if not isinstance(node, dict | list):
                at = _render(parts[: i + 1])
                raise _bad(path, f"{at} is a value, not a section", "a path to a field")
            continue
        if not isinstance(node, dict):
            raise _bad(path, f"{_render(parts[:i])} is not a mapping", "a path to a field")
        if node.get(key) is None:
            if isinstance(parts[i + 1], int):
                at = _render(parts[: i + 1])
                raise _bad(path, f"{at} is not a list in the inputs", "an existing list")
            node[key] = {}
        node = node[key]
    last = parts[-1]
    if isinstance(last, int):
        _item(node, last, parts, len(parts) - 1, path)
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise _bad(path, f"{_render(parts[:-1])} is not a mapping", "a path to a field")


def _render(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def grid(varies: Sequence[Vary]) -> list[Point]:
    """Every combination of the varied values, the first field varying slowest."""
    return [
        tuple(zip((v.path for v in varies), combo, strict=True))
        for combo in itertools.product(*(v.values for v in varies))
    ]


@dataclass(frozen=True)
class Inputs:
    """The merged input mapping (without its ``plan:``; each point is solved) and where each
    section came from."""

    doc: dict[str, Any]
    origin: dict[str, str]
    files: tuple[str, ...]


def read_inputs(paths: Sequence[str | Path]) -> Inputs:
    """Read and merge input files as the loader does, keeping the raw mapping."""
    from planner.io import read_document
    from planner.load import merge_documents, saved_plan_as_input

    docs = [(str(p), saved_plan_as_input(read_document(Path(p)))) for p in paths]
    merged, origin = merge_documents(docs)
    merged.pop("plan", None)
    return Inputs(merged, origin, tuple(str(p) for p in paths))


def point_doc(inputs: Inputs, point: Point) -> dict[str, Any]:
    """The merged mapping with the point's values set."""
    doc = copy.deepcopy(inputs.doc)
    for path, value in point:
        set_path(doc, path, value)
    return doc


def validate_point(inputs: Inputs, point: Point) -> Any:
    """The point's :class:`~planner.spec.problem.Problem`; a problem in a varied field is
    reported against its ``--vary``."""
    from planner.load import problem_from_dict

    try:
        return problem_from_dict(point_doc(inputs, point), inputs.origin)
    except PlannerInputError as exc:
        varied = [p for p, _ in point]
        fixed = []
        for prob in exc.problems:
            hit = next((p for p in varied if prob.path.startswith(p)), None)
            if hit is not None and prob.file != "--vary":
                value = dict(point)[hit]
                prob = InputProblem(f"--vary {hit}={value}", prob.path, prob.message, prob.expected)
            fixed.append(prob)
        raise PlannerInputError(fixed) from None


def _layout(cfg: Any) -> str:
    if len(cfg.placement) <= 1:
        return "single"
    return "data" if any(e.dp is not None for e in cfg.placement) else "pipeline"


def rows_for(point: Point, result: Any, problem: Any) -> list[dict[str, Any]]:
    """Tidy rows of one solved point: one per training job (one row if there is none)."""
    base: dict[str, Any] = dict(point)
    base.update(
        status=result.status.value,
        objective=result.objective,
        objective_kind=result.objective_kind,
        gap=result.gap,
        solve_time_s=result.solve_time_s,
        serving_gpus=sum(m.n_gpus for m in result.serving),
    )
    if result.plan is None or not result.plan.training:
        return [{**base, "job": None, "error": result.explanation if not result.ok else ""}]
    rows = []
    for cfg, m in zip(result.plan.training, result.metrics, strict=True):
        sites = sorted({problem.cluster.pool(e.pool).site for e in cfg.placement})
        crossings = len({b.chunk for b in m.boundaries if b.link})
        rows.append(
            {
                **base,
                "job": cfg.job,
                "gpu": cfg.gpu,
                "n_gpus": cfg.n_gpus,
                "tp": cfg.tp,
                "pp": cfg.pp,
                "dp": cfg.dp,
                "micro_batch": cfg.micro_batch,
                "schedule": cfg.schedule.value,
                "recompute": cfg.recompute.value,
                "layout": _layout(cfg),
                "sites": "+".join(sites),
                "iteration_time_s": m.iteration_time_s,
                "tokens_per_s": m.tokens_per_s,
                "mfu": m.mfu,
                "bubble_fraction": m.bubble_fraction,
                "wan_crossings": crossings,
                "dp_cell_size": m.dp_cell_size,
                "tcp_connections": cfg.tcp_connections if len(sites) > 1 else None,
                "wan_sharing": cfg.wan_sharing.value if m.wan else None,
                "pp_wan_gb_per_iteration": sum(u.bytes_per_iteration for u in m.wan) / 1e9,
                "pp_wan_utilisation": max((u.utilisation for u in m.wan), default=0.0),
                "dp_exposed_s": m.breakdown.dp_exposed_s,
                "error": "",
            }
        )
    return rows


@dataclass(frozen=True)
class Task:
    """What a worker needs to solve one point (plain data: it crosses process boundaries)."""

    index: int
    inputs: Inputs
    point: Point
    backend: str
    time_limit_s: float


def solve_point(task: Task) -> tuple[int, list[dict[str, Any]]]:
    """Validate and solve one point (runs in a worker process or a Ray task)."""
    from planner.result import SolveOptions
    from planner.solve import plan

    t0 = time.perf_counter()
    try:
        problem = validate_point(task.inputs, task.point)
        result = plan(
            problem, backend=task.backend, options=SolveOptions(time_limit_s=task.time_limit_s)
        )
        return task.index, rows_for(task.point, result, problem)
    except Exception as exc:  # one failing point is a row, not a failed sweep
        row = {**dict(task.point), "status": "error", "solve_time_s": time.perf_counter() - t0}
        return task.index, [{**row, "job": None, "error": f"{type(exc).__name__}: {exc}"}]


@dataclass
class SweepResult:
    """The tidy table of a sweep and how it ran."""

    files: tuple[str, ...]
    vary: list[Vary]
    backend: str
    runner: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def fields(self) -> list[str]:
        """Column names: the varied fields first, then every other key in first-seen order."""
        names = [v.path for v in self.vary]
        for row in self.rows:
            names.extend(k for k in row if k not in names)
        return names

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "planner-sweep/v1",
            "inputs": list(self.files),
            "vary": {v.path: list(v.values) for v in self.vary},
            "backend": self.backend,
            "runner": self.runner,
            "wall_s": self.wall_s,
            "rows": self.rows,
        }


def _local(
    tasks: list[Task], workers: int, tick: Tick | None
) -> list[tuple[int, list[dict[str, Any]]]]:
    out = []
    if workers <= 1:
        for t in tasks:
            out.append(solve_point(t))
            if tick is not None:
                tick(len(out), len(tasks))
        return out
    # spawn: a fresh interpreter per worker (no forked solver or progress-bar threads).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(solve_point, t) for t in tasks]
        for f in as_completed(futures):
            out.append(f.result())
            if tick is not None:
                tick(len(out), len(tasks))
    return out


def _ray(
    tasks: list[Task], address: str, workers: int, tick: Tick | None
) -> list[tuple[int, list[dict[str, Any]]]]:
    try:
        import ray
    except ImportError:
        raise PlannerInputError(
            [InputProblem("--ray", address, "ray is not installed", "pip install 'planner[ray]'")]
        ) from None
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(solve_point)
        pending = [remote.remote(t) for t in tasks]
        out: list[tuple[int, list[dict[str, Any]]]] = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            out.extend(ray.get(done))
            if tick is not None:
                tick(len(out), len(tasks))
        return out
    finally:
        if started:
            ray.shutdown()


def sweep(
    inputs: Sequence[str | Path],
    varies: Sequence[Vary],
    backend: str = "milp",
    workers: int | None = None,
    ray_address: str | None = None,
    time_limit_s: float = 60.0,
    progress: Tick | None = None,
) -> SweepResult:
    """Solve every point of the grid of ``varies`` over the merged ``inputs``.

    Every point is validated before any is solved (a bad path or value raises
    :class:`PlannerInputError`, one line each). ``workers`` local processes (default: the
    CPUs this process may use; 1 runs in this process), or Ray tasks when ``ray_address`` is
    given (an existing cluster's address, ``auto``, or ``local`` to start one here)."""
    if not varies:
        raise _bad("", "nothing to vary", "at least one --vary FIELD=VALUES")
    raw = read_inputs(inputs)
    points = grid(varies)
    for point in points:
        validate_point(raw, point)
    tasks = [Task(i, raw, p, backend, time_limit_s) for i, p in enumerate(points)]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = max(1, min(workers or cpus or 1, len(tasks)))
    t0 = time.perf_counter()
    if ray_address is not None:
        done = _ray(tasks, ray_address, n, progress)
        runner = f"ray ({ray_address})"
    else:
        done = _local(tasks, n, progress)
        runner = f"{n} local process{'es' if n > 1 else ''}"
    rows = [row for _, rs in sorted(done, key=lambda x: x[0]) for row in rs]
    return SweepResult(raw.files, list(varies), backend, runner, rows, time.perf_counter() - t0)


__all__ = ["SweepResult", "Vary", "grid", "parse_path", "parse_vary", "set_path", "sweep"]
