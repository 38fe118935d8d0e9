"""ServiceStep: one microservice of a process, deployed by Stepline or reached at a URL.

Declarative only. A step is either an `image` (Stepline runs it as a Deployment behind a Service,
scaled by a HorizontalPodAutoscaler) or a `url` (an external service, called but not deployed);
exactly one of the two. Fields that only make sense for a deployed step carry no schema default,
so that the API server can refuse them next to `url`; `resolved_port` / `resolved_path` give
their effective values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from stepline.api.base import (
    DNS1035_LABEL,
    MAX_LABEL_LENGTH,
    ApiModel,
    KindInfo,
    KubeObject,
    PrinterColumn,
    Rule,
    RuleReason,
    ServiceName,
    SpecModel,
    list_type,
)
from stepline.api.conditions import Condition, ConditionStatus, ConditionType, find_condition
from stepline.api.policies import AdaptiveTimeout, RetryPolicy, Scaling

DEFAULT_PORT = 8080
DEFAULT_PATH = "/"
MAX_TIMEOUT_SECONDS = 3600
# Kubernetes' quantity syntax (resource.Quantity), as controller-gen writes it into CRDs.
_QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_IMAGE_ONLY = ("command", "args", "env", "port", "path", "resources", "probes", "scaling")

Quantity = Annotated[
    int | Annotated[str, StringConstraints(max_length=64, pattern=_QUANTITY)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": _QUANTITY}),
]
HttpPath = Annotated[str, StringConstraints(max_length=1024, pattern=r"^/[^\s?#]*$")]
Argument = Annotated[str, StringConstraints(max_length=4096)]


class KeyRef(SpecModel):
    """A key of a Secret or ConfigMap in the step's namespace."""

    name: ServiceName = Field(description="Name of the Secret or ConfigMap.")
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        pattern=r"^[-._a-zA-Z0-9]+$", description="The key whose value is used."
    )


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from: exactly one reference."""

    rules = (
        Rule(
            "has(self.secretKeyRef) != has(self.configMapKeyRef)",
            message="set exactly one of secretKeyRef or configMapKeyRef",
            reason=RuleReason.INVALID,
        ),
    )

    secret_key_ref: KeyRef | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeyRef | None = Field(default=None, description="A key of a ConfigMap.")


class EnvVar(SpecModel):
    """An environment variable of the step's container."""

    rules = (
        Rule(
            "!(has(self.value) && has(self.valueFrom))",
            message="value and valueFrom are mutually exclusive",
            reason=RuleReason.INVALID,
        ),
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="The variable's name."
    )
    value: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="A literal value."
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="A value taken from a Secret or ConfigMap."
    )


class ResourceList(SpecModel):
    """Amounts of CPU and memory, in Kubernetes quantities (`250m`, `1`, `256Mi`)."""

    cpu: Quantity | None = Field(default=None, description="CPU, in cores (`500m` is half).")
    memory: Quantity | None = Field(default=None, description="Memory, in bytes (`256Mi`).")


class Resources(SpecModel):
    """The container's resource requests and limits; the CPU request is what the autoscaler's
    utilisation target is a percentage of."""

    requests: ResourceList | None = Field(default=None, description="Guaranteed resources.")
    limits: ResourceList | None = Field(default=None, description="Resource ceilings.")


class HttpProbe(SpecModel):
    """An HTTP GET probe of the step's container."""

    path: HttpPath = Field(default="/healthz", description="The path probed.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="The port probed; default: the step's port."
    )
    initial_delay_seconds: int = Field(
        default=0, ge=0, le=3600, description="Wait after the container starts, in seconds."
    )
    period_seconds: int = Field(default=10, ge=1, le=3600, description="Interval, in seconds.")
    timeout_seconds: int = Field(default=1, ge=1, le=3600, description="Timeout, in seconds.")
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that count as failed."
    )


class Probes(SpecModel):
    """Health probes of the step's container."""

    readiness: HttpProbe | None = Field(
        default=None, description="Whether a replica receives calls."
    )
    liveness: HttpProbe | None = Field(default=None, description="Whether a replica is restarted.")


class ServiceStepSpec(SpecModel):
    """The desired state of a ServiceStep: what to run (or call) and how calls behave."""

    rules = (
        Rule(
            "has(self.image) || has(self.url)",
            message="set one of image (a service Stepline deploys) or url (an external service)",
            reason=RuleReason.REQUIRED,
        ),
        Rule(
            "!(has(self.image) && has(self.url))",
            message="image and url are mutually exclusive: set only one",
            field_path=".url",
            reason=RuleReason.FORBIDDEN,
        ),
        Rule(
            "!has(self.url) || " + " && ".join(f"!has(self.{name})" for name in _IMAGE_ONLY),
            message=f"{', '.join(_IMAGE_ONLY)} apply to a deployed step (image) only, not to url",
            reason=RuleReason.FORBIDDEN,
        ),
    )

    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        pattern=r"^[^\s]+$",
        description="Container image of the service, which Stepline deploys. Exclusive with url.",
    )
    command: list[Argument] | None = Field(
        default=None, max_length=64, description="Entrypoint; default: the image's."
    )
    args: list[Argument] | None = Field(
        default=None, max_length=64, description="Arguments; default: the image's."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=128,
        json_schema_extra=list_type("map", "name"),
        description="Environment variables of the container.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=f"Port the service listens on; default {DEFAULT_PORT}.",
    )
    path: HttpPath | None = Field(
        default=None,
        description=f"Path Stepline POSTs a JSON input to; default {DEFAULT_PATH!r}.",
    )
    resources: Resources | None = Field(
        default=None, description="CPU and memory requests and limits of each replica."
    )
    probes: Probes | None = Field(default=None, description="Readiness and liveness probes.")
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="URL of an external service that Stepline calls (HTTP POST of JSON) but "
        "does not deploy. Exclusive with image.",
    )
    scaling: Scaling | None = Field(
        default=None,
        description="Elastic scaling; default: minReplicas 1, maxReplicas 5 at 80% CPU.",
    )
    timeout_seconds: int = Field(
        default=30,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="Default time limit of one call, in seconds; a workflow step may override it.",
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Default retry policy of calls; a workflow step may override it.",
    )
    adaptive_timeout: AdaptiveTimeout | None = Field(
        default=None,
        description="Opt-in: each call's time limit becomes multiplier x the p99 of the step's "
        "last successful calls (at least floorSeconds, at most timeoutSeconds) once 20 are "
        "observed; a workflow step that sets its own timeoutSeconds keeps it.",
    )

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORT

    @property
    def resolved_path(self) -> str:
        return self.path or DEFAULT_PATH

    @property
    def resolved_scaling(self) -> Scaling:
        return self.scaling or Scaling()


class ScalingMode(StrEnum):
    REACTIVE = "Reactive"  # on the load now
    PREDICTIVE = "Predictive"  # on the larger of now and the forecast one lead time ahead


class ScalingStatus(ApiModel):
    """How the step's autoscaler is fed now, and why; written when it changes."""

    mode: ScalingMode = Field(description="Reactive (the load now) or Predictive (ahead of it).")
    reason: str = Field(
        max_length=64,
        description="Why: NotPredictive, InsufficientHistory, Forecasting or MetricsUnavailable.",
    )
    message: str = Field(max_length=1024, description="The same, for people.")


class ServiceStepStatus(ApiModel):
    """The observed state of a ServiceStep, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_type("map", "type"),
        description="Ready, Progressing and Degraded.",
    )
    replicas: int | None = Field(default=None, ge=0, description="Replicas that exist.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Replicas that are ready.")
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the autoscaler currently wants."
    )
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        description="The URL Stepline calls: the in-cluster Service, or spec.url.",
    )
    scaling: ScalingStatus | None = Field(
        default=None,
        description="How the autoscaler is fed, for a step that scales on InFlight or "
        "CallsPerSecond or whose autoscaler cannot read its metrics.",
    )


class ServiceStep(KubeObject):
    """A microservice that is one step of a business process: deployed from an image and
    scaled elastically, or reached at a URL."""

    kind_info = KindInfo(
        plural="servicesteps",
        short_names=("sstep",),
        columns=(
            PrinterColumn(
                "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Serving."
            ),
            PrinterColumn("Replicas", ".status.replicas", "integer", "Replicas that exist."),
            PrinterColumn("Available", ".status.readyReplicas", "integer", "Ready replicas."),
            PrinterColumn("Desired", ".status.desiredReplicas", "integer", "Autoscaler's want."),
            PrinterColumn("Endpoint", ".status.endpoint", description="URL called.", priority=1),
            PrinterColumn("Image", ".spec.image", description="Container image.", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
    rules = (
        Rule(
            f"!has(self.metadata.name) || (size(self.metadata.name) <= {MAX_LABEL_LENGTH} && "
            f"self.metadata.name.matches('{DNS1035_LABEL}'))",
            message="a ServiceStep's name names its Service: a DNS-1035 label of at most "
            f"{MAX_LABEL_LENGTH} characters (lowercase letters, digits, '-', starting with a "
            "letter)",
            field_path=".metadata.name",
            reason=RuleReason.INVALID,
        ),
    )

    kind: Literal["ServiceStep"] = "ServiceStep"
    spec: ServiceStepSpec = Field(description="What to run, or call, and how calls behave.")
    status: ServiceStepStatus = Field(
        default_factory=ServiceStepStatus, description="Observed state, written by Stepline."
    )


def is_step_ready(step: ServiceStep | None) -> bool:
    """The step exists and its Ready condition is True."""
    ready = find_condition(step.status.conditions, ConditionType.READY) if step else None
    return ready is not None and ready.status is ConditionStatus.TRUE
