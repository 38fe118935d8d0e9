"""Policies shared by several kinds: how a failed call is retried and how a step scales.

Declarative only. `RetryPolicy` is a ServiceStep's default for calls to it and a Workflow step's
override; `Scaling` becomes the step's HorizontalPodAutoscaler, whose `behavior` it mirrors
field for field (autoscaling/v2), so the builder copies it without translation. Its `metrics`
say what the autoscaler follows: CPU use (the default), or the load the operator itself sees on
the step — calls in flight or calls per second per replica (see docs/scaling.md).
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


class AdaptiveTimeout(SpecModel):
    """A call's time limit from how long the step's calls take: `multiplier` times the p99 of
    its last successful calls, at least `floorSeconds`, at most the step's `timeoutSeconds`."""

    multiplier: float = Field(
        default=3.0, ge=1.0, le=100.0, description="Times the observed p99, from 1 to 100."
    )
    floor_seconds: float = Field(
        default=1.0,
        ge=0.01,
        le=MAX_BACKOFF_SECONDS,
        description="The shortest limit it may set, in seconds: a fast step's p99 is no measure "
        "of a slow moment.",
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


class ScalingMetricType(StrEnum):
    """What a step's autoscaler follows."""

    CPU = "CPU"  # average CPU use, as a percentage of the CPU request (metrics-server)
    IN_FLIGHT = "InFlight"  # calls the operator has in flight to the step, per replica
    CALLS_PER_SECOND = "CallsPerSecond"  # calls the operator starts per second, per replica


# The load metrics the operator measures and exports for the autoscaler (the adapter serves them).
LOAD_METRICS = (ScalingMetricType.IN_FLIGHT, ScalingMetricType.CALLS_PER_SECOND)
MAX_LOAD_TARGET = 1_000_000.0


class ScalingMetric(SpecModel):
    """One figure the autoscaler follows, and the value per replica it aims for."""

    rules = (
        Rule(
            "self.type != 'CPU' || !has(self.target) || "
            "(self.target >= 1.0 && self.target <= 100.0)",
            message="a CPU target is a utilisation percentage from 1 to 100",
            field_path=".target",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "self.type == 'CPU' || has(self.target)",
            message="InFlight and CallsPerSecond need a target: the value per replica to aim for",
            field_path=".target",
            reason=RuleReason.REQUIRED,
        ),
    )

    type: ScalingMetricType = Field(
        description="CPU (utilisation of the CPU request), InFlight (calls in flight per "
        "replica, a concurrency target as Knative's) or CallsPerSecond (calls started per "
        "second per replica)."
    )
    target: float | None = Field(
        default=None,
        gt=0,
        le=MAX_LOAD_TARGET,
        description="The value per replica the autoscaler aims for; above 0. For CPU, a "
        "percentage from 1 to 100 (default: targetCPUUtilizationPercentage).",
    )


class Scaling(SpecModel):
    """Elastic scaling of a step's Deployment by a HorizontalPodAutoscaler: on CPU use by
    default, or on the calls the operator makes to the step (`metrics`), optionally ahead of a
    forecast (`predictive`)."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "!has(self.predictive) || !self.predictive || (has(self.metrics) && "
            "self.metrics.exists(m, m.type != 'CPU'))",
            message="predictive scaling forecasts the step's calls: it needs an InFlight or "
            "CallsPerSecond metric in metrics",
            field_path=".predictive",
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
    metrics: list[ScalingMetric] | None = Field(
        default=None,
        min_length=1,
        max_length=len(ScalingMetricType),
        json_schema_extra=list_type("map", "type"),
        description="What the autoscaler follows, each at most once; the replicas are the "
        "largest any of them asks for. Default: CPU alone. InFlight and CallsPerSecond are read "
        "through the external metrics API (the chart's scaling.adapter, or any adapter serving "
        "stepline_step_scaling_value).",
    )
    predictive: bool = Field(
        default=False,
        description="Scale ahead of the load: the InFlight and CallsPerSecond figures become "
        "the larger of now and their forecast one lead time ahead (the step's measured time "
        "from scale-up to a Ready replica). Until enough history is seen it scales on now, and "
        "the status says so.",
    )
    behavior: ScalingBehavior | None = Field(
        default=None, description="How fast to scale up and down."
    )

    @property
    def resolved_metrics(self) -> tuple[ScalingMetric, ...]:
        """What the autoscaler follows, CPU's target filled in."""
        cpu = float(self.target_cpu_utilization_percentage)
        found = self.metrics or [ScalingMetric(type=ScalingMetricType.CPU)]
        return tuple(m.model_copy(update={"target": cpu}) if m.target is None else m for m in found)

    @property
    def load_targets(self) -> dict[ScalingMetricType, float]:
        """The target per replica of each load metric the step scales on (none: CPU only)."""
        # From `metrics` as written, not `resolved_metrics`: the scaling loop asks for every
        # step every few seconds, and the default CPU metric it would build is never a load one.
        return {
            m.type: m.target
            for m in self.metrics or ()
            if m.type in LOAD_METRICS and m.target is not None
        }
