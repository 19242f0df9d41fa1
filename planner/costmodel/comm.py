"""Communication time: alpha-beta model of NCCL collectives and point-to-point transfers.

Ring collectives over ``n`` ranks with per-rank bus bandwidth ``B`` and step latency ``a``
(Thakur et al. 2005; NCCL's "bus bandwidth" convention, nccl-tests PERFORMANCE.md):

    all-reduce      t = 2 (n-1)/n * S / B + 2 (n-1) a
    reduce-scatter  t =   (n-1)/n * S / B +   (n-1) a      (S = full, unsharded size)
    all-gather      t =   (n-1)/n * S / B +   (n-1) a
    all-to-all      t =   (n-1)/n * S / B +   (n-1) a      (S = bytes a rank holds)
    point-to-point  t = S / B + a

Bus bandwidth of a group whose ``k`` members share a node and which spans nodes is
``min(B_nvlink * e_nvlink, k * B_nic * e_net)``: every member drives its own NIC (rail-optimised
fabrics: DGX SuperPOD reference architecture), and a ring crosses each node boundary once per
channel so only ``1/k`` of a member's traffic leaves the node. Inside one node it is
``B_nvlink * e_nvlink``.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.spec.hardware import GpuSpec


@dataclass(frozen=True)
class Link:
    """Bandwidth (bytes/s per rank) and per-step latency (s) seen by one collective group."""

    bw_bytes_s: float
    latency_s: float
    kind: str = "nvlink"
    """``nvlink``, ``network`` (inter-node fabric) or ``wan``."""


def all_reduce_time(n: int, size_bytes: float, link: Link) -> float:
    """Ring all-reduce of ``size_bytes`` over ``n`` ranks."""
    if n <= 1 or size_bytes <= 0:
        return 0.0
    return 2.0 * (n - 1) / n * size_bytes / link.bw_bytes_s + 2.0 * (n - 1) * link.latency_s


def reduce_scatter_time(n: int, size_bytes: float, link: Link) -> float:
    """Ring reduce-scatter (or all-gather) of a ``size_bytes`` buffer over ``n`` ranks."""
    if n <= 1 or size_bytes <= 0:
        return 0.0
    return (n - 1) / n * size_bytes / link.bw_bytes_s + (n - 1) * link.latency_s


all_gather_time = reduce_scatter_time
all_to_all_time = reduce_scatter_time


def p2p_time(size_bytes: float, link: Link) -> float:
    """One point-to-point transfer."""
    if size_bytes <= 0:
        return 0.0
    return size_bytes / link.bw_bytes_s + link.latency_s


def members_per_node(group_size: int, stride: int, gpus_per_node: int) -> int:
    """How many members of a group with rank ``stride`` share one node (at least 1)."""
    if stride >= gpus_per_node:
        return 1
    return max(1, min(group_size, gpus_per_node // stride))


def group_link(
    gpu: GpuSpec,
    group_size: int,
    stride: int,
    gpus_per_node: int,
    intra_bw_gb_s: float | None = None,
    nic_bw_gbps: float | None = None,
    nic_latency_us: float | None = None,
) -> Link:
    """The bus bandwidth seen by a collective group (see the module docstring)."""
    e = gpu.efficiency
    nvlink = (intra_bw_gb_s or gpu.nvlink_bw_gb_s) * 1e9 * e.nvlink
    k = members_per_node(group_size, stride, gpus_per_node)
    if k >= group_size:
        return Link(nvlink, e.collective_latency_us * 1e-6 / 2.0, "nvlink")
    nic = (nic_bw_gbps or gpu.nic_bw_gbps) * 1e9 / 8.0 * e.network
    latency = (nic_latency_us if nic_latency_us is not None else 0.0) * 1e-6
    return Link(min(nvlink, k * nic), e.collective_latency_us * 1e-6 + latency, "network")
