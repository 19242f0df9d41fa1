"""Workloads: training jobs and inference services."""

from __future__ import annotations

from pydantic import Field, model_validator

from planner.spec.base import Optimizer, Precision, Spec
from planner.spec.model import ModelSpec


class TrainingJob(Spec):
    """An LLM pre-training (or fine-tuning) job."""

    id: str
    model: str | ModelSpec
    """Catalog id (``models/llms``) or an inline architecture."""
    seq_len: int = Field(gt=0)
    global_batch_seqs: int = Field(gt=0)
    """Sequences per optimizer step."""
    tokens_to_train: float = Field(gt=0)
    precision: Precision = Precision.BF16
    optimizer: Optimizer = Optimizer.ADAM
    allowed_sites: list[str] | None = None
    allowed_gpus: list[str] | None = None
    deadline_h: float | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0)
    min_gpus: int | None = Field(default=None, gt=0)
    """Fewest GPUs the job may run on (e.g. a reservation it must keep busy)."""
    max_gpus: int | None = Field(default=None, gt=0)
    """Most GPUs the job may take (a quota)."""

    @model_validator(mode="after")
    def _gpu_range(self) -> TrainingJob:
        if (
            self.min_gpus is not None
            and self.max_gpus is not None
            and self.min_gpus > self.max_gpus
        ):
            raise ValueError(f"min_gpus {self.min_gpus} exceeds max_gpus {self.max_gpus}")
        return self

    @property
    def global_batch_tokens(self) -> int:
        """Tokens per optimizer step."""
        return self.seq_len * self.global_batch_seqs


class LengthDist(Spec):
    """A token-length distribution: mean with an optional spread (lognormal) and bounds."""

    mean: float = Field(gt=0)
    std: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> LengthDist:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        if self.max is not None and self.mean > self.max:
            raise ValueError(f"mean {self.mean} exceeds max {self.max}")
        return self


class Slo(Spec):
    """Latency targets met by a percentile of requests."""

    ttft_ms: float = Field(gt=0)
    tpot_ms: float = Field(gt=0)
    percentile: float = Field(default=90.0, gt=0, lt=100)
    """Share of requests (in %) that must meet both targets; below 100 (a tail percentile
    of an unbounded distribution)."""


class InferenceService(Spec):
    """An LLM serving workload."""

    id: str
    model: str | ModelSpec
    arrival_rate_rps: float = Field(gt=0)
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    slo: Slo
    precision: Precision = Precision.BF16
    allowed_sites: list[str] | None = None
    allowed_gpus: list[str] | None = None
    prefill_in_bubbles: bool = False
    """Whether its prefill may run inside training pipeline bubbles."""
    max_gpus: int | None = Field(default=None, gt=0)
    """Most GPUs the service may take (a quota)."""
    disaggregated: bool | None = None
    """True: prefill and decode on separate engines (DistServe); False: colocated engines;
    None: the planner chooses."""


class Workloads(Spec):
    """Every workload of an instance."""

    training: list[TrainingJob] = Field(default_factory=list)
    inference: list[InferenceService] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids_unique(self) -> Workloads:
        ids = [w.id for w in self.training] + [w.id for w in self.inference]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate workload ids {dup}")
        return self

    def training_job(self, job_id: str) -> TrainingJob:
        """The training job with this id."""
        return next(j for j in self.training if j.id == job_id)

    def service(self, service_id: str) -> InferenceService:
        """The inference service with this id."""
        return next(s for s in self.inference if s.id == service_id)
