"""Integer scaling for CP-SAT (which needs integer coefficients), in one place.

* Objective: every coefficient times ``OBJECTIVE_RESOLUTION / max|coef|``, rounded, so the
  largest term keeps 9 significant digits; the bound is scaled back.
* GPUs are integers already.
* Serving rows in units of ``1 / RATE_RESOLUTION`` requests/s: engine goodput rounded down,
  demand rounded up (conservative, as for power). Every backend, the checker and the oracle
  accept a cover within ``COVER_TOL`` (relative 1e-6) of the demand, which is far wider than
  this rounding, so the backends agree.
* Power rows in whole watts, rounded up on the left and down on the right, so CP-SAT never
  accepts a plan the exact (MILP) row rejects; it may reject a plan within a few watts of a
  budget that the MILP accepts.
"""

from __future__ import annotations

import math

OBJECTIVE_RESOLUTION = 1e9
RATE_RESOLUTION = 1e9


def objective_scale(coefs: list[float]) -> float:
    """Factor turning the objective's coefficients into integers with 9 significant digits."""
    biggest = max((abs(c) for c in coefs), default=0.0)
    return OBJECTIVE_RESOLUTION / biggest if biggest > 0 else 1.0


def scaled(coef: float, scale: float) -> int:
    """A coefficient in objective units."""
    return round(coef * scale)


def unscaled(value: float, scale: float) -> float:
    """Back to the objective's units."""
    return value / scale


def watts_left(coef: float) -> int:
    """A power coefficient, rounded up (conservative on the left-hand side)."""
    return math.ceil(coef - 1e-9)


def watts_right(budget_w: float) -> int:
    """A power budget, rounded down."""
    return math.floor(budget_w + 1e-9)


def rate_left(rate_rps: float) -> int:
    """An engine's goodput in rate units, rounded down."""
    return math.floor(rate_rps * RATE_RESOLUTION + 1e-9)


def rate_right(demand_rps: float) -> int:
    """A demand in rate units, rounded up."""
    return math.ceil(demand_rps * RATE_RESOLUTION - 1e-9)
