"""Policies shared by several kinds: how a failed call is retried and how a step scales.

Declarative only. `RetryPolicy` is a ServiceStep's default for calls to it and a Workflow step's
override; `Scaling` becomes the step's HorizontalPodAutoscaler, whose `behavior` it mirrors
field for field (autoscaling/v2), so the builder copies it without translation.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from stepline.api.base import Rule, RuleReason, SpecModel, list_type

# A backoff longer than an hour is a stuck run, not a retry.
MAX_BACKOFF_SECONDS = 3600
# Replica bounds: well above what one step of a business process needs, low enough to catch typos.
MAX_REPLICAS = 1000


class RetryOn(StrEnum):
    """A kind of failed call that may be retried."""

    TIMEOUT = "Timeout"
    CONNECTION_ERROR = "ConnectionError"
    SERVER_ERROR = "ServerError"
    TOO_MANY_REQUESTS = "TooManyRequests"


class Backoff(SpecModel):
    """Exponential backoff between attempts. Before retry n the wait is at least
    d(n) = min(maxSeconds, initialSeconds * factor^(n-1)); jitter adds up to a fifth of d(n),
    never past maxSeconds."""

    rules = (
        Rule(
            "self.initialSeconds <= self.maxSeconds",
            message="initialSeconds must not exceed maxSeconds",
            field_path=".initialSeconds",
            reason=RuleReason.INVALID,
        ),
    )

    initial_seconds: float = Field(
        default=1.0,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description="Shortest wait before the first retry, in seconds; jitter adds up to a "
        "fifth of it. A step is given at least the sum of the shortest waits to recover before "
        "the call gives up.",
    )
    factor: float = Field(
        default=2.0,
        ge=1,
        le=10,
        description="Multiplier of the shortest wait after each further attempt; 1 keeps it "
        "constant.",
    )
    max_seconds: float = Field(
        default=30.0,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description="Longest wait between two attempts, in seconds, jitter included; the "
        "shortest waits grow up to it and stay there.",
    )


class RetryPolicy(SpecModel):
    """How a failed call to a step is retried. Calls carry an idempotency key, so retries are
    safe for a step that honours it."""

    limit: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries after the first attempt; 0 disables retrying.",
    )
    backoff: Backoff = Field(default_factory=Backoff, description="The wait between attempts.")
    retry_on: list[RetryOn] = Field(
        default_factory=lambda: list(RetryOn),
        max_length=len(RetryOn),
        json_schema_extra=list_type("set"),
        description="The failures that are retried: Timeout, ConnectionError, ServerError "
        "(HTTP 5xx) and TooManyRequests (HTTP 429). Other failures (HTTP 4xx, an invalid "
        "response) fail the step at once.",
    )


class ScalingPolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


class ScalingPolicy(SpecModel):
    """One bound on how fast replicas change, as in autoscaling/v2 HPAScalingPolicy."""

    type: ScalingPolicyType = Field(description="Pods (a number) or Percent (of current).")
    value: int = Field(ge=1, le=10000, description="How many pods, or which percentage.")
    period_seconds: int = Field(
        ge=1, le=1800, description="The window the change is counted over, in seconds."
    )


class ScalingRules(SpecModel):
    """Scaling in one direction, as in autoscaling/v2 HPAScalingRules."""

    stabilization_window_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Past recommendations considered, in seconds; damps flapping.",
    )
    select_policy: SelectPolicy | None = Field(
        default=None, description="Which policy wins: Max, Min, or Disabled (no scaling)."
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None, max_length=10, description="Bounds on the rate of change."
    )


class ScalingBehavior(SpecModel):
    """How fast the step scales up and down (autoscaling/v2 HorizontalPodAutoscalerBehavior);
    unset fields take the HorizontalPodAutoscaler's defaults."""

    scale_up: ScalingRules | None = Field(default=None, description="Rules for scaling up.")
    scale_down: ScalingRules | None = Field(default=None, description="Rules for scaling down.")


class Scaling(SpecModel):
    """Elastic scaling of a step's Deployment by a HorizontalPodAutoscaler on CPU use."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            reason=RuleReason.INVALID,
        ),
    )

    min_replicas: int = Field(
        default=1, ge=1, le=MAX_REPLICAS, description="Fewest replicas, also when idle."
    )
    max_replicas: int = Field(
        default=5, ge=1, le=MAX_REPLICAS, description="Most replicas, also under load."
    )
    target_cpu_utilization_percentage: int = Field(
        default=80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU use, as a percentage of the CPU request, that the autoscaler "
        "aims for.",
    )
    behavior: ScalingBehavior | None = Field(
        default=None, description="How fast to scale up and down."
    )
