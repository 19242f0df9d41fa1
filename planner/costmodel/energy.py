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

from planner.spec.cluster import GpuPool, Site
from planner.spec.hardware import GpuSpec
from planner.units import J_PER_KWH


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
