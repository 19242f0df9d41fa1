"""What a plan means on the machines: stage -> site map with layer ranges, rank -> (site, node,
GPU), WAN crossings with their TCP connections and DP-cell rotations, provisioned power.
Solver-free; used by reports, exports and the JSON of ``planner plan``."""

from __future__ import annotations

from typing import Any

from planner.catalog import Catalog
from planner.costmodel.energy import provisioned_by_pool_w
from planner.costmodel.iteration import cell_size_for
from planner.costmodel.metrics import ServingMetrics, TrainingMetrics
from planner.costmodel.placement import resolve_placement
from planner.costmodel.wan import cells
from planner.spec.plan import Plan, TrainingConfig
from planner.spec.problem import Problem
from planner.topology import pool_path

ROTATION = (
    "pipelines of a cell send one at a time in the listed order at the cell's full rate; "
    "cells send side by side (costmodel.wan)"
)


def _layer_ranges(m: TrainingMetrics, pp: int) -> dict[int, list[list[int]]]:
    """Per device, the [first, last] layer of each of its chunks (virtual stages)."""
    chunks: list[tuple[int, int]] = []
    per_device = [list(d.layers) for d in m.devices]
    n_chunks = sum(len(x) for x in per_device)
    start = 0
    out: dict[int, list[list[int]]] = {d: [] for d in range(pp)}
    for c in range(n_chunks):
        d = c % pp
        n = per_device[d][c // pp]
        chunks.append((start, n))
        out[d].append([start, start + n - 1])
        start += n
    return out


def describe_training(
    cfg: TrainingConfig,
    m: TrainingMetrics,
    problem: Problem,
    catalog: Catalog,
    node_offset: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Machine-level description of one configuration (``node_offset``: GPUs already handed
    out per pool, for several jobs in one plan)."""
    cluster = problem.cluster
    pl = resolve_placement(cfg, cluster, catalog.gpus)
    offset = node_offset if node_offset is not None else {}
    per_replica = cfg.tp * cfg.cp
    layers = _layer_ranges(m, cfg.pp)
    stages = []
    for d in range(cfg.pp):
        dp_start = 0
        for pool_id, share in pl.shares[d]:
            pool = cluster.pool(pool_id)
            first_rank = per_replica * (dp_start + cfg.dp * d)
            n = share * per_replica
            gpu0 = offset.get(pool_id, 0)
            offset[pool_id] = gpu0 + n
            stages.append(
                {
                    "stage": d,
                    "pool": pool_id,
                    "site": pool.site,
                    "layers": layers[d],
                    "dp_replicas": [dp_start, dp_start + share - 1],
                    "ranks": [first_rank, first_rank + n - 1],
                    "nodes": [gpu0 // pool.gpus_per_node, (gpu0 + n - 1) // pool.gpus_per_node],
                    "first_gpu_in_node": gpu0 % pool.gpus_per_node,
                    "power_cap_w": cfg.cap_w(d),
                }
            )
            dp_start += share
    crossings = []
    for c in range(cfg.pp * cfg.vpp - 1):
        a, b = c % cfg.pp, (c + 1) % cfg.pp
        path = pool_path(cluster, pl.pool_of(a).id, pl.pool_of(b).id)
        if path is None or path.kind != "wan":
            continue
        size = cell_size_for(cfg, path)
        crossings.append(
            {
                "from_stage": a,
                "to_stage": b,
                "sites": list(path.sites),
                "bw_gbps": path.bw_gbps,
                "rtt_ms": 2 * path.latency_ms,
                "tcp_connections": cfg.tcp_connections,
                "effective_gbps_per_transfer": path.bw_with_flows(cfg.tcp_connections),
                "sharing": cfg.wan_sharing.value,
                "cell_size": size,
                "cells": [
                    {"cell": i, "pipelines": [cell[0], cell[-1]]}
                    for i, cell in enumerate(cells(cfg.dp, size))
                ],
                "rotation": ROTATION,
            }
        )
    power: dict[str, float] = {}
    for pool_id, w in provisioned_by_pool_w(pl).items():
        site = cluster.site(cluster.pool(pool_id).site)
        power[site.id] = power.get(site.id, 0.0) + w * site.pue
    return {
        "job": cfg.job,
        "gpu": cfg.gpu,
        "n_gpus": cfg.n_gpus,
        "power_cap_w": cfg.power_cap_w,
        "stage_power_caps_w": cfg.stage_power_caps_w,
        "rank_order": "tp-cp-dp-pp (Megatron): rank = t + tp*(c + cp*(d + dp*p))",
        "stages": stages,
        "wan_crossings": crossings,
        "provisioned_facility_power_w": power,
    }


def describe_plan(
    plan: Plan, metrics: list[TrainingMetrics], problem: Problem, catalog: Catalog
) -> list[dict[str, Any]]:
    """:func:`describe_training` of every configuration, GPUs handed out in plan order."""
    offset: dict[str, int] = {}
    return [
        describe_training(cfg, m, problem, catalog, offset)
        for cfg, m in zip(plan.training, metrics, strict=True)
    ]


def site_power(
    problem: Problem, plan: Plan, catalog: Catalog, serving: list[ServingMetrics]
) -> list[dict[str, Any]]:
    """Per site: the budget, the facility watts counted against it (training GPUs at their
    caps; serving engines at their caps, or at their expected peak draw where the site
    oversubscribes), the margin left, and by how much the caps alone would exceed the budget
    (the oversubscription that POLCA-style provisioning relies on)."""
    rows: dict[str, dict[str, float]] = {}
    for cfg in plan.training:
        pl = resolve_placement(cfg, problem.cluster, catalog.gpus)
        for pool_id, w in provisioned_by_pool_w(pl).items():
            site = problem.cluster.site(problem.cluster.pool(pool_id).site)
            row = rows.setdefault(site.id, {"training": 0.0, "caps": 0.0, "peaks": 0.0})
            row["training"] += w * site.pue
    for m in serving:
        for e in m.engines:
            site = problem.cluster.site(e.site)
            row = rows.setdefault(site.id, {"training": 0.0, "caps": 0.0, "peaks": 0.0})
            row["caps"] += e.count * e.provisioned_w * site.pue
            row["peaks"] += e.count * e.peak_w * site.pue
    out = []
    for site in problem.cluster.sites:
        if site.id not in rows:
            continue
        r = rows[site.id]
        budget = site.power_budget_mw * 1e6
        serving_w = r["peaks"] if site.power_oversubscription else r["caps"]
        counted = r["training"] + serving_w
        out.append(
            {
                "site": site.id,
                "budget_w": budget,
                "training_w": r["training"],
                "serving_caps_w": r["caps"],
                "serving_peaks_w": r["peaks"],
                "oversubscription": site.power_oversubscription,
                "counted_w": counted,
                "margin_w": budget - counted,
                "caps_over_budget_w": max(0.0, r["training"] + r["caps"] - budget),
            }
        )
    return out
