"""Unit conversions, in one place.

Naming convention used across the package (the suffix carries the unit):

- ``_gbps``  gigabits per second (network links: WAN, NICs)
- ``_gb_s``  gigabytes per second (NVLink, per direction)
- ``_tb_s``  terabytes per second (HBM)
- ``_gib``   gibibytes (memory capacity)
- ``_w`` watts, ``_mw`` megawatts, ``_ms`` milliseconds, ``_s`` seconds, ``_j`` joules
- ``_tflops`` tera floating-point operations per second (dense)

Internally the cost model works in SI base units: bytes, bytes/s, FLOP, FLOP/s, s, W, J.
"""

from __future__ import annotations

GIB = 1024**3
"""Bytes in one gibibyte."""
GB = 1e9
"""Bytes in one gigabyte (decimal)."""
TB = 1e12
"""Bytes in one terabyte (decimal)."""
TERA = 1e12
J_PER_KWH = 3.6e6


def gbps_to_bytes_s(bw_gbps: float) -> float:
    """Gigabits per second -> bytes per second."""
    return bw_gbps * 1e9 / 8.0


def bytes_s_to_gbps(bw_bytes_s: float) -> float:
    """Bytes per second -> gigabits per second."""
    return bw_bytes_s * 8.0 / 1e9


def gb_s_to_bytes_s(bw_gb_s: float) -> float:
    """Gigabytes per second -> bytes per second."""
    return bw_gb_s * GB


def tb_s_to_bytes_s(bw_tb_s: float) -> float:
    """Terabytes per second -> bytes per second."""
    return bw_tb_s * TB


def tflops_to_flops(tflops: float) -> float:
    """TFLOP/s -> FLOP/s."""
    return tflops * TERA


def gib_to_bytes(mem_gib: float) -> float:
    """GiB -> bytes."""
    return mem_gib * GIB


def bytes_to_gib(n_bytes: float) -> float:
    """Bytes -> GiB."""
    return n_bytes / GIB


def ms_to_s(t_ms: float) -> float:
    """Milliseconds -> seconds."""
    return t_ms / 1e3


def mw_to_w(p_mw: float) -> float:
    """Megawatts -> watts."""
    return p_mw * 1e6


def j_to_kwh(energy_j: float) -> float:
    """Joules -> kilowatt-hours."""
    return energy_j / J_PER_KWH
