"""Load inputs: read files, merge their sections, validate once, resolve catalog references.

Each file holds some top-level sections (``cluster``, ``workloads``, ``objective``, ``plan``,
metadata); several files merge into one :class:`Problem`. ``workloads`` lists and ``plan``
lists concatenate; any other section may appear in one file only. Every problem found is
reported as one line: file, field path, what is wrong, what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from planner.catalog import Catalog, default_catalog
from planner.errors import InputProblem, PlannerInputError
from planner.io import read_document
from planner.spec.cluster import unknown_site_refs
from planner.spec.model import ModelSpec
from planner.spec.problem import SECTIONS, Problem
from planner.spec.workload import InferenceService, TrainingJob

_LIST_SECTIONS = {"workloads": ("training", "inference"), "plan": ("training", "serving")}
_ITEM = re.compile(
    r"^(workloads\.training|workloads\.inference|plan\.training|plan\.serving)\[(\d+)\]"
)


def _relocate(origin: dict[str, str], problem: InputProblem) -> InputProblem:
    """Point a problem in a merged list item (``workloads``/``plan`` lists concatenate
    across files) at the file that item came from and its index in that file."""
    m = _ITEM.match(problem.path)
    file = origin.get(m.group(0)) if m else None
    if m is None or file is None:
        return problem
    prefix, i = m.group(1), int(m.group(2))
    local = sum(origin.get(f"{prefix}[{j}]") == file for j in range(i))
    return InputProblem(
        file, f"{prefix}[{local}]{problem.path[m.end() :]}", problem.message, problem.expected
    )


def _is_union_tag(part: str) -> bool:
    """A pydantic location tag (union member or validator), not a field name."""
    return part == "str" or part.startswith("function-") or part[:1].isupper()


def _path_str(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_fields(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Field names of the model reached by following ``loc`` (for unknown-field errors)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            break
        ann = field.annotation
        for candidate in (*getattr(ann, "__args__", ()), ann):
            inner = getattr(candidate, "__args__", (candidate,))
            found = [c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)]
            if found:
                current = found[0]
                break
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _problems_from(exc: ValidationError, origin: dict[str, str]) -> list[InputProblem]:
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        if (
            loc
            and loc[-1] == "str"
            and err["type"] == "string_type"
            and isinstance(err.get("input"), dict)
        ):
            continue  # the str branch of `str | ModelSpec` when an inline mapping was given
        # drop pydantic's union/validator tags ("ModelSpec", "function-after[...]", "str")
        loc = tuple(p for p in loc if not (isinstance(p, str) and _is_union_tag(p)))
        section = str(loc[0]) if loc else ""
        file = origin.get(section, origin.get("", "<input>"))
        path = _path_str(loc)
        kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
        expected = ""
        if kind == "extra_forbidden":
            parent = loc[:-1]
            allowed = _allowed_fields(Problem, parent) if parent else list(SECTIONS)
            msg, expected = f"unknown field {loc[-1]!r}", f"one of {', '.join(allowed)}"
        elif kind == "missing":
            msg, expected = "required field is missing", "a value"
        elif "input" in err and kind not in ("value_error", "model_type"):
            msg = f"{msg}; got {err['input']!r}"
        problems.append(_relocate(origin, InputProblem(file, path, msg, expected)))
    return problems


def merge_documents(
    docs: Sequence[tuple[str, dict[str, Any]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge ``(file, mapping)`` pairs; return the merged mapping and section -> file."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems: list[InputProblem] = []
    for file, doc in docs:
        for key, value in doc.items():
            if key not in SECTIONS:
                problems.append(
                    InputProblem(file, str(key), "unknown section", f"one of {', '.join(SECTIONS)}")
                )
                continue
            if (
                key in _LIST_SECTIONS
                and isinstance(value, dict)
                and isinstance(merged.get(key, {}), dict)
            ):
                target = merged.setdefault(key, {})
                origin.setdefault(key, file)
                for sub, items in value.items():
                    path = f"{key}.{sub}"
                    if sub not in _LIST_SECTIONS[key]:
                        allowed = ", ".join(_LIST_SECTIONS[key])
                        problems.append(
                            InputProblem(file, path, f"unknown field {sub!r}", f"one of {allowed}")
                        )
                    elif not isinstance(items, list):
                        problems.append(
                            InputProblem(file, path, f"not a list; got {items!r}", "a list")
                        )
                    elif isinstance(target.get(sub, []), list):
                        start = len(target.get(sub, []))
                        target[sub] = [*target.get(sub, []), *items]
                        origin.update({f"{path}[{start + n}]": file for n in range(len(items))})
                continue
            if key in merged:
                problems.append(
                    InputProblem(
                        file, str(key), f"section also given in {origin[key]}", "each section once"
                    )
                )
                continue
            merged[key] = dict(value) if isinstance(value, dict) else value
            origin[key] = file
    if problems:
        raise PlannerInputError(problems)
    return merged, origin


def _site_reference_problems(data: dict[str, Any], file: str) -> list[InputProblem]:
    """Pools and links naming a missing site, at their exact field paths."""
    cluster = data.get("cluster")
    if not isinstance(cluster, dict):
        return []
    return [
        InputProblem(file, f"cluster.{path}", f"unknown site {site!r}", f"one of {known}")
        for path, site, known in unknown_site_refs(cluster)
    ]


def problem_from_dict(
    data: dict[str, Any], origin: dict[str, str] | None = None, catalog: Catalog | None = None
) -> Problem:
    """Validate a merged mapping and resolve catalog references (GPU types, model names)."""
    origin = origin or {}
    refs = _site_reference_problems(data, origin.get("cluster", "<input>"))
    if refs:
        raise PlannerInputError(refs)
    try:
        problem = Problem.model_validate(data)
    except ValidationError as exc:
        raise PlannerInputError(_problems_from(exc, origin)) from None
    return resolve(problem, origin, catalog or default_catalog())


def resolve(problem: Problem, origin: dict[str, str], catalog: Catalog) -> Problem:
    """Check cross-references against the catalog and the cluster; canonicalise GPU ids and
    fill pool bandwidth defaults from the GPU datasheet."""
    probs: list[InputProblem] = []

    def where(section: str) -> str:
        return origin.get(section, "<input>")

    gpu_list = ", ".join(sorted(catalog.gpus))
    pools = []
    for i, pool in enumerate(problem.cluster.pools):
        gpu = catalog.find_gpu(pool.gpu)
        if gpu is None:
            probs.append(
                InputProblem(
                    where("cluster"),
                    f"cluster.pools[{i}].gpu",
                    f"unknown GPU type {pool.gpu!r}",
                    f"one of {gpu_list}",
                )
            )
            pools.append(pool)
            continue
        pools.append(
            pool.model_copy(
                update={
                    "gpu": gpu.id,
                    "intra_node_bw_gb_s": pool.intra_node_bw_gb_s or gpu.nvlink_bw_gb_s,
                    "inter_node_bw_gbps": pool.inter_node_bw_gbps or gpu.nic_bw_gbps,
                }
            )
        )
    sites = {s.id for s in problem.cluster.sites}
    model_list = ", ".join(sorted(catalog.models))
    kinds: tuple[tuple[str, Sequence[TrainingJob | InferenceService]], ...] = (
        ("training", problem.workloads.training),
        ("inference", problem.workloads.inference),
    )
    for kind, items in kinds:
        for i, w in enumerate(items):
            base = f"workloads.{kind}[{i}]"
            if isinstance(w.model, str) and catalog.find_model(w.model) is None:
                probs.append(
                    InputProblem(
                        where("workloads"),
                        f"{base}.model",
                        f"unknown model {w.model!r}",
                        f"one of {model_list} or an inline architecture",
                    )
                )
            for s in w.allowed_sites or []:
                if s not in sites:
                    probs.append(
                        InputProblem(
                            where("workloads"),
                            f"{base}.allowed_sites",
                            f"unknown site {s!r}",
                            f"one of {sorted(sites)}",
                        )
                    )
            for g in w.allowed_gpus or []:
                if catalog.find_gpu(g) is None:
                    probs.append(
                        InputProblem(
                            where("workloads"),
                            f"{base}.allowed_gpus",
                            f"unknown GPU type {g!r}",
                            f"one of {gpu_list}",
                        )
                    )
    plan = problem.plan
    if plan is not None:
        jobs = {j.id for j in problem.workloads.training}
        pool_ids = {p.id for p in problem.cluster.pools}
        configs = []
        for i, cfg in enumerate(plan.training):
            base = f"plan.training[{i}]"
            if cfg.job not in jobs:
                probs.append(
                    InputProblem(
                        where("plan"),
                        f"{base}.job",
                        f"no training job {cfg.job!r}",
                        f"one of {sorted(jobs)}",
                    )
                )
            gpu = catalog.find_gpu(cfg.gpu)
            if gpu is None:
                probs.append(
                    InputProblem(
                        where("plan"),
                        f"{base}.gpu",
                        f"unknown GPU type {cfg.gpu!r}",
                        f"one of {gpu_list}",
                    )
                )
            for k, pl in enumerate(cfg.placement):
                if pl.pool not in pool_ids:
                    probs.append(
                        InputProblem(
                            where("plan"),
                            f"{base}.placement[{k}].pool",
                            f"unknown pool {pl.pool!r}",
                            f"one of {sorted(pool_ids)}",
                        )
                    )
            configs.append(cfg.model_copy(update={"gpu": gpu.id}) if gpu else cfg)
            if cfg.job in jobs and gpu is not None:
                job = problem.workloads.training_job(cfg.job)
                model = catalog.find_model(job.model) if isinstance(job.model, str) else job.model
                if isinstance(model, ModelSpec):
                    probs.extend(_config_problems(where("plan"), base, cfg, model))
        plan = plan.model_copy(update={"training": configs})
        services = {s.id for s in problem.workloads.inference}
        for i, scfg in enumerate(plan.serving):
            base = f"plan.serving[{i}]"
            if scfg.service not in services:
                probs.append(
                    InputProblem(
                        where("plan"),
                        f"{base}.service",
                        f"no inference service {scfg.service!r}",
                        f"one of {sorted(services)}",
                    )
                )
            for k, group in enumerate(scfg.engines):
                if group.pool not in pool_ids:
                    probs.append(
                        InputProblem(
                            where("plan"),
                            f"{base}.engines[{k}].pool",
                            f"unknown pool {group.pool!r}",
                            f"one of {sorted(pool_ids)}",
                        )
                    )
    if probs:
        raise PlannerInputError([_relocate(origin, p) for p in probs])
    cluster = problem.cluster.model_copy(update={"pools": pools})
    return problem.model_copy(update={"cluster": cluster, "plan": plan})


def _config_problems(file: str, base: str, cfg: Any, model: ModelSpec) -> list[InputProblem]:
    """Divisibility rules of the parallel configuration against the architecture."""
    out = []
    if model.n_heads % cfg.tp:
        out.append(
            InputProblem(
                file,
                f"{base}.tp",
                f"tp={cfg.tp} does not divide the {model.n_heads} attention heads of {model.id}",
                "a divisor of n_heads",
            )
        )
    chunks = cfg.pp * cfg.vpp
    if cfg.layers_per_stage is not None and sum(cfg.layers_per_stage) != model.n_layers:
        out.append(
            InputProblem(
                file,
                f"{base}.layers_per_stage",
                f"sums to {sum(cfg.layers_per_stage)}",
                f"{model.n_layers} layers of {model.id}",
            )
        )
    elif chunks > model.n_layers:
        out.append(
            InputProblem(
                file,
                f"{base}.pp",
                f"pp*vpp={chunks} exceeds the {model.n_layers} layers of {model.id}",
                "at most one chunk per layer",
            )
        )
    if model.moe is not None and model.moe.n_experts % cfg.ep:
        out.append(
            InputProblem(
                file,
                f"{base}.ep",
                f"ep={cfg.ep} does not divide {model.moe.n_experts} experts",
                "a divisor of n_experts",
            )
        )
    if model.moe is None and cfg.ep > 1:
        out.append(InputProblem(file, f"{base}.ep", f"ep={cfg.ep} on a dense model", "ep: 1"))
    return out


RESULT_KEYS = {"status", "backend", "plan", "objective", "bound", "gap", "solve_time_s"}


def saved_plan_as_input(doc: Any) -> Any:
    """A document written by ``planner plan --out`` becomes its ``plan:`` section (the
    configurations); the solve record and metrics around it are not input."""
    if isinstance(doc, dict) and set(doc) >= RESULT_KEYS and isinstance(doc["plan"], dict):
        plan = doc["plan"]
        return {"plan": {k: plan[k] for k in ("training", "serving") if plan.get(k)}}
    return doc


INPUT_KEY = "input"
"""Where ``planner plan --out`` keeps the input sections it solved (cluster, workloads,
objective), so that the saved result alone is a complete input."""


def input_sections(problem: Problem) -> dict[str, Any]:
    """The cluster, workloads, objective and name of ``problem`` as input sections (what a
    saved result carries under :data:`INPUT_KEY`)."""
    out: dict[str, Any] = {
        "cluster": problem.cluster.model_dump(mode="json", exclude_defaults=True, by_alias=True),
        "workloads": problem.workloads.model_dump(
            mode="json", exclude_defaults=True, by_alias=True
        ),
        "objective": problem.objective.model_dump(
            mode="json", exclude_defaults=True, by_alias=True
        ),
    }
    if problem.name:
        out["name"] = problem.name
    return out


def saved_input_sections(doc: Any) -> dict[str, Any]:
    """The input sections a saved result carries (empty for any other document)."""
    if isinstance(doc, dict) and set(doc) >= RESULT_KEYS and isinstance(doc.get(INPUT_KEY), dict):
        return {k: v for k, v in doc[INPUT_KEY].items() if k in SECTIONS and k != "plan"}
    return {}


def load(*paths: str | Path, catalog: Catalog | None = None) -> Problem:
    """Read, merge and validate input files into one :class:`Problem`. A saved result of
    ``planner plan --out`` gives its plan, and the input sections it carries wherever no other
    file gives them (so ``load("plan.json")`` alone is the problem with its plan)."""
    if not paths:
        raise PlannerInputError(
            [
                InputProblem(
                    "<command line>", "", "no input file given", "one or more YAML/JSON files"
                )
            ]
        )
    docs, problems = [], []
    embedded: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        try:
            raw = read_document(Path(p))
        except PlannerInputError as exc:
            problems.extend(exc.problems)
            continue
        docs.append((str(p), saved_plan_as_input(raw)))
        embedded.append((str(p), saved_input_sections(raw)))
    if problems:
        raise PlannerInputError(problems)
    given = {k for _, d in docs if isinstance(d, dict) for k in d}
    for file, sections in embedded:
        extra = {k: v for k, v in sections.items() if k not in given}
        if extra:
            docs.append((file, extra))
            given |= set(extra)
    merged, origin = merge_documents(docs)
    if "cluster" not in merged:
        raise PlannerInputError(
            [
                InputProblem(
                    ", ".join(str(p) for p in paths),
                    "cluster",
                    "no cluster section in any input",
                    "a cluster: section",
                )
            ]
        )
    return problem_from_dict(merged, origin, catalog)
