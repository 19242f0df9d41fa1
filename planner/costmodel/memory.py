"""Memory per GPU of one pipeline stage: model states, activations, buffers.

Model states per parameter with mixed-precision Adam (Rajbhandari et al. 2020, ZeRO, Sec. 3.1;
Megatron-LM distributed optimizer, docs/distrib_optimizer.md): 2 B BF16/FP16 weights,
4 B FP32 gradient accumulation buffer (Megatron keeps ``main_grad`` in FP32), 4 B FP32 master
weights, 4 + 4 B Adam moments. ZeRO-1 shards the 12 B of optimizer state over DP, ZeRO-2 also
the 4 B of gradients, ZeRO-3 / FSDP also the 2 B of weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.spec.base import Optimizer, Schedule

WEIGHT_BYTES = 2.0
"""BF16/FP16 working copy of the weights (mixed precision, Micikevicius et al. 2018)."""
GRAD_BYTES = 4.0
"""FP32 gradient accumulation buffer (Megatron ``--accumulate-allreduce-grads-in-fp32``)."""
OPTIMIZER_BYTES = {Optimizer.ADAM: 12.0, Optimizer.SGD: 8.0}
"""FP32 master weights + moments: Adam 4 + 4 + 4 B; SGD with momentum 4 + 4 B."""


@dataclass(frozen=True)
class StageMemory:
    """Bytes per GPU of one stage, by component."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    reserved: float

    @property
    def total(self) -> float:
        """Sum of every component."""
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.activations
            + self.buffers
            + self.reserved
        )


def model_state_bytes(
    params: float, dp: int, zero: int, optimizer: Optimizer
) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per GPU for ``params`` parameters held by it."""
    weights = params * WEIGHT_BYTES / (dp if zero >= 3 else 1)
    grads = params * GRAD_BYTES / (dp if zero >= 2 else 1)
    opt = params * OPTIMIZER_BYTES[optimizer] / (dp if zero >= 1 else 1)
    return weights, grads, opt


def in_flight_microbatches(schedule: Schedule, pp: int, vpp: int, m: int, stage: int) -> float:
    """Micro-batches whose activations a device holds at the peak, in units of its layers.

    GPipe holds all ``m``; 1F1B holds ``min(m, pp - stage)`` (Narayanan et al. 2021, Sec. 2.2);
    interleaved 1F1B holds ``2 (pp - stage - 1) + (vpp - 1) pp + 1`` chunks of ``1/vpp`` of the
    device's layers (Megatron-LM warm-up count, ``schedules.py``).
    """
    if schedule is Schedule.GPIPE:
        return float(m)
    if schedule is Schedule.INTERLEAVED:
        chunks = 2 * (pp - stage - 1) + (vpp - 1) * pp + 1
        return min(float(m * vpp), float(chunks)) / vpp
    return float(min(m, pp - stage))


RUNTIME_RESERVED_BYTES = 1.5 * 1024**3
"""CUDA context, cuBLAS workspaces and NCCL channel buffers per GPU (~0.5 GiB context +
~1 GiB library buffers; PyTorch CUDA memory notes, NCCL_BUFFSIZE x channels)."""


def stage_memory(
    dense_params: float,
    expert_params: float,
    activation_bytes_per_mb: float,
    in_flight: float,
    dense_dp: int,
    expert_dp: int,
    zero: int,
    optimizer: Optimizer,
    buffer_bytes: float,
) -> StageMemory:
    """Memory per GPU of one pipeline device.

    ``activation_bytes_per_mb`` are the activations one micro-batch leaves on this device
    (all its layers); ``in_flight`` how many micro-batches are held at the peak
    (:func:`in_flight_microbatches`).
    """
    wd, gd, od = model_state_bytes(dense_params, dense_dp, zero, optimizer)
    we, ge, oe = model_state_bytes(expert_params, expert_dp, zero, optimizer)
    return StageMemory(
        weights=wd + we,
        gradients=gd + ge,
        optimizer=od + oe,
        activations=activation_bytes_per_mb * in_flight,
        buffers=buffer_bytes,
        reserved=RUNTIME_RESERVED_BYTES,
    )
