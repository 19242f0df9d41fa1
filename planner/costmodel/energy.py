"""Power and energy of a training iteration, and the footprint of a whole run.

Per GPU: compute-bound kernels draw ``min(cap, P_load)``, memory-bound kernels
``min(cap, f_mem * TDP)`` and waiting (bubbles, exposed communication) the idle power
(Zeus, You et al. NSDI 2023; POLCA, Patel et al. ASPLOS 2024). Each node adds its non-GPU
power. Facility energy = IT energy x PUE; carbon = facility kWh x gCO2/kWh; water =
IT kWh x WUE (L/kWh, The Green Grid 2011); money = facility MWh x price + GPU-hours x rate +
WAN egress GB x price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.spec.cluster import GpuPool, Site
from planner.spec.hardware import GpuSpec
from planner.units import J_PER_KWH

if TYPE_CHECKING:
    from planner.costmodel.placement import Placement


def busy_power_w(gpu: GpuSpec, power_cap_w: float | None) -> tuple[float, float]:
    """(compute-bound, memory-bound) board power under a cap."""
    cap = power_cap_w if power_cap_w is not None else gpu.power_cap_max_w
    cap = min(max(cap, gpu.power_cap_min_w), gpu.power_cap_max_w)
    p_compute = min(cap, gpu.power.load_fraction_of_tdp * gpu.tdp_w)
    p_memory = min(cap, gpu.power.memory_bound_power_fraction * gpu.tdp_w)
    return p_compute, p_memory


def device_energy(
    gpu: GpuSpec,
    pool: GpuPool,
    compute_s: float,
    memory_s: float,
    iteration_s: float,
    power_cap_w: float | None,
) -> tuple[float, float]:
    """(GPU board energy, node-overhead share) in joules for one GPU over one iteration."""
    p_c, p_m = busy_power_w(gpu, power_cap_w)
    idle = max(0.0, iteration_s - compute_s - memory_s)
    board = p_c * compute_s + p_m * memory_s + gpu.idle_w * idle
    node = pool.node_idle_power_w / pool.gpus_per_node * iteration_s
    return board, node


@dataclass(frozen=True)
class Footprint:
    """Totals of a whole run at one site."""

    facility_kwh: float
    carbon_kg: float
    water_l: float
    electricity_usd: float


def footprint(site: Site, it_energy_j: float) -> Footprint:
    """Facility energy, carbon, water and electricity cost of ``it_energy_j`` at ``site``."""
    it_kwh = it_energy_j / J_PER_KWH
    facility_kwh = it_kwh * site.pue
    return Footprint(
        facility_kwh=facility_kwh,
        carbon_kg=facility_kwh * site.carbon_g_per_kwh / 1e3,
        water_l=it_kwh * site.water_l_per_kwh,
        electricity_usd=facility_kwh / 1e3 * site.electricity_usd_per_mwh,
    )


@dataclass(frozen=True)
class RunShare:
    """What ``n`` GPUs of one pipeline device in one pool contribute to a whole run."""

    it_j_per_iteration: float
    facility_kwh: float
    carbon_kg: float
    water_l: float
    electricity_usd: float
    gpu_rental_usd: float


def run_share(
    gpu: GpuSpec,
    pool: GpuPool,
    site: Site,
    n_gpus: int,
    compute_s: float,
    memory_s: float,
    iteration_s: float,
    iterations: float,
    power_cap_w: float | None,
) -> RunShare:
    """Energy, footprint and money of ``n_gpus`` GPUs (with their node share) that are
    compute-bound ``compute_s`` and memory-bound ``memory_s`` per iteration, over
    ``iterations`` iterations. Linear in ``n_gpus``: the planner's formulations use it as
    the coefficient of placing a device in a pool."""
    board, node = device_energy(gpu, pool, compute_s, memory_s, iteration_s, power_cap_w)
    joules = n_gpus * (board + node)
    fp = footprint(site, joules * iterations)
    return RunShare(
        it_j_per_iteration=joules,
        facility_kwh=fp.facility_kwh,
        carbon_kg=fp.carbon_kg,
        water_l=fp.water_l,
        electricity_usd=fp.electricity_usd,
        gpu_rental_usd=n_gpus * pool.usd_per_gpu_hour * iterations * iteration_s / 3600.0,
    )


def provisioned_power_w(gpu: GpuSpec, pool: GpuPool, power_cap_w: float | None) -> float:
    """IT power to provision per GPU: the board at its cap (clamped to the GPU's range) plus
    its share of the node's non-GPU power. Site budgets bound ``PUE x sum`` of this."""
    cap = power_cap_w if power_cap_w is not None else gpu.power_cap_max_w
    cap = min(max(cap, gpu.power_cap_min_w), gpu.power_cap_max_w)
    return cap + pool.node_idle_power_w / pool.gpus_per_node


def provisioned_by_pool_w(pl: Placement) -> dict[str, float]:
    """IT power to provision in each pool a placed configuration uses: every GPU at its
    device's cap (``TrainingConfig.cap_w``, per-stage caps included) plus its node share."""
    cfg = pl.cfg
    out: dict[str, float] = {}
    for d, shares in enumerate(pl.shares):
        for pool_id, share in shares:
            pool = pl.pools[pool_id]
            w = provisioned_power_w(pl.gpus[pool.gpu], pool, cfg.cap_w(d))
            out[pool_id] = out.get(pool_id, 0.0) + share * cfg.tp * cfg.cp * w
    return out
