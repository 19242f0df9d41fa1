"""Failures, checkpoints and goodput of a training job.

A job on ``n`` GPUs, each interrupted at ``lambda`` per hour (exponential, independent), is
interrupted at ``n lambda``: its mean time between interruptions is ``M = 1 / (n lambda)``
(Llama 3: 419 unexpected interruptions in 54 days on 16,384 GPUs, Dubey et al. 2024,
Sec. 3.3.4). Training stops for ``delta`` to write each checkpoint (weights and optimizer
state over the storage bandwidth) after every ``tau`` of compute; an interruption loses the
work since the last checkpoint and costs ``R`` to restart.

Expected wall time per unit of useful compute (Daly 2006, "A higher order estimate of the
optimum checkpoint interval for restart dumps", Future Generation Computer Systems 22(3);
exponential failures that may also strike during checkpoints and restarts)::

    T_wall / T_solve = M exp(R/M) (exp((tau + delta)/M) - 1) / tau

so the goodput fraction is ``f = tau / (M exp(R/M) (exp((tau + delta)/M) - 1))``; to first
order its waste ``1 - f ~ delta/tau + (tau/2 + R)/M``. The optimum intervals:

* Young (1974), "A first order approximation to the optimum checkpoint interval", CACM
  17(9): ``tau_Y = sqrt(2 delta M)``;
* Daly (2006), the higher-order estimate: ``tau_D = sqrt(2 delta M) [1 + (1/3)
  sqrt(delta/(2M)) + (1/9) delta/(2M)] - delta`` for ``delta < 2M``, else ``tau_D = M``.

``f`` falls as ``M`` falls at every ``tau`` (the denominator grows), so it falls with the GPU
count; the checkpoint time here depends on the ModelSpec and the storage only.
"""

from __future__ import annotations

import math
from functools import lru_cache

from planner.costmodel.flops import total_params
from planner.costmodel.memory import model_state_bytes
from planner.costmodel.metrics import ReliabilityMetrics, TrainingMetrics
from planner.spec.base import Optimizer
from planner.spec.cluster import Reliability
from planner.spec.model import ModelSpec


def job_mtbf_s(n_gpus: int, gpu_failures_per_hour: float) -> float:
    """Mean time between interruptions of a job on ``n_gpus`` GPUs, seconds:
    ``M = 3600 / (n lambda)`` (independent exponential failures; inf when ``lambda = 0``)."""
    rate_per_s = n_gpus * gpu_failures_per_hour / 3600.0
    return math.inf if rate_per_s <= 0 else 1.0 / rate_per_s


@lru_cache(maxsize=256)
def checkpoint_bytes(model: ModelSpec, optimizer: Optimizer) -> float:
    """Bytes of one checkpoint: BF16 weights plus the FP32 optimizer state (master weights and
    moments) of every parameter, ``P (2 + 12)`` B with Adam (:mod:`costmodel.memory`); the
    gradients are not saved."""
    weights, _, opt = model_state_bytes(total_params(model), 1, 0, optimizer)
    return weights + opt


def checkpoint_time_s(state_bytes: float, write_gb_s: float) -> float:
    """``delta = bytes / bandwidth``: a synchronous write over the job's aggregate storage
    bandwidth (GB/s, 10^9 B/s)."""
    return state_bytes / (write_gb_s * 1e9)


def young_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Young (1974): ``tau = sqrt(2 delta M)``."""
    return math.sqrt(2.0 * checkpoint_s * mtbf_s)


def daly_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Daly (2006) higher-order optimum: ``sqrt(2 delta M) [1 + (1/3) sqrt(delta/(2M)) +
    (1/9) delta/(2M)] - delta`` for ``delta < 2M``, else ``M``."""
    if math.isinf(mtbf_s):
        return math.inf
    if checkpoint_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = checkpoint_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * checkpoint_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - (
        checkpoint_s
    )


def _log_expm1(x: float) -> float:
    """``log(exp(x) - 1)`` without overflow for large ``x``."""
    return x + math.log1p(-math.exp(-x)) if x > 1.0 else math.log(math.expm1(x))


def goodput_fraction(
    interval_s: float, checkpoint_s: float, restart_s: float, mtbf_s: float
) -> float:
    """Expected share of wall time that advances training (Daly 2006, exponential failures):
    ``f = tau / (M exp(R/M) (exp((tau + delta)/M) - 1))``. Without failures (``M`` inf) it
    is ``tau / (tau + delta)``, and 1 when ``tau`` is inf too."""
    if math.isinf(mtbf_s):
        return 1.0 if math.isinf(interval_s) else interval_s / (interval_s + checkpoint_s)
    if math.isinf(interval_s):
        return 0.0
    log_f = (
        math.log(interval_s)
        - math.log(mtbf_s)
        - restart_s / mtbf_s
        - _log_expm1((interval_s + checkpoint_s) / mtbf_s)
    )
    return min(1.0, math.exp(log_f))


def interval_for(rel: Reliability, checkpoint_s: float, mtbf_s: float) -> float:
    """The stated checkpoint interval, else Daly's optimum."""
    if rel.checkpoint_interval_s is not None:
        return rel.checkpoint_interval_s
    return daly_interval_s(checkpoint_s, mtbf_s)


def job_checkpoint_s(model: ModelSpec, optimizer: Optimizer, rel: Reliability) -> float:
    """Checkpoint time of a job training ``model`` with ``optimizer`` on storage ``rel``."""
    return checkpoint_time_s(checkpoint_bytes(model, optimizer), rel.checkpoint_write_gb_s)


def job_goodput_fraction(n_gpus: int, checkpoint_s: float, rel: Reliability) -> float:
    """Goodput fraction of a job on ``n_gpus`` GPUs at its checkpoint interval: a function of
    the GPU count alone for one job, non-increasing in it."""
    mtbf = job_mtbf_s(n_gpus, rel.gpu_failures_per_hour)
    return goodput_fraction(
        interval_for(rel, checkpoint_s, mtbf), checkpoint_s, rel.restart_s, mtbf
    )


def training_reliability(
    m: TrainingMetrics, model: ModelSpec, optimizer: Optimizer, rel: Reliability
) -> ReliabilityMetrics:
    """Failures, checkpoints and goodput of the job evaluated in ``m``: expected wall time
    ``time_to_train / f`` and ``wall time / M`` interruptions over it."""
    delta = job_checkpoint_s(model, optimizer, rel)
    mtbf = job_mtbf_s(m.n_gpus, rel.gpu_failures_per_hour)
    tau = interval_for(rel, delta, mtbf)
    f = goodput_fraction(tau, delta, rel.restart_s, mtbf)
    wall_h = m.time_to_train_h / f if f > 0 else math.inf
    return ReliabilityMetrics(
        mtbf_h=mtbf / 3600.0,
        checkpoint_s=delta,
        restart_s=rel.restart_s,
        interval_s=tau,
        young_interval_s=young_interval_s(delta, mtbf),
        optimal_interval_s=daly_interval_s(delta, mtbf),
        goodput_fraction=f,
        failures_to_train=0.0 if math.isinf(mtbf) else wall_h * 3600.0 / mtbf,
        wall_time_to_train_h=wall_h,
        goodput_tokens_per_s=m.tokens_per_s * f,
    )
