"""Pipeline schedule time from per-device, per-micro-batch times.

With ``m`` micro-batches, per-device forward+backward time ``T_d`` per micro-batch, ``v``
virtual stages per device and a steady-state period ``P >= max_d T_d`` (the slowest device or
the busiest pipeline link):

    t_pipe = m * P + (sum_d T_d - P) / v + t_fill

For equal stages this is ``(m + (p - 1)/v) T``: the 1F1B/GPipe bubble ``(p-1)/m`` and the
interleaved bubble ``(p-1)/(v m)`` of Narayanan et al. 2021 (Sec. 2.2). When a link sets the
period (``P > max_d T_d``), the last micro-batch leaves its slot ``(m - 1) P`` after the first
and still crosses every device: ``(m - 1) P + sum_d T_d`` for ``v = 1``; a slower device
below the period never lengthens the iteration's steady state, only its fill and drain.
``t_fill`` adds the first micro-batch's point-to-point transfers (size / bandwidth + latency)
on every boundary crossing of the fill and the drain. GPipe and 1F1B take the same time;
they differ in memory.
"""

from __future__ import annotations


def pipeline_time(
    device_times_s: list[float],
    m: int,
    vpp: int,
    period_s: float | None = None,
    fill_s: float = 0.0,
) -> float:
    """Time of one iteration's forward/backward passes through the pipeline."""
    period = max(max(device_times_s), period_s or 0.0)
    return m * period + (sum(device_times_s) - period) / vpp + fill_s


def bubble_fraction(pp: int, m: int, vpp: int) -> float:
    """Ideal bubble share ``(p-1)/(v m + p - 1)`` of an iteration (equal stages)."""
    return (pp - 1) / (vpp * m + pp - 1)
