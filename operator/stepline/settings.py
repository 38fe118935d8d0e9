"""The operator's settings: read once from the environment (prefix `STEPLINE_`) at start-up and
passed down. Nothing else in Stepline reads the environment.

Loading does no I/O beyond reading the environment. Lists are comma-separated
(`STEPLINE_NAMESPACES=shop,factory`); an empty namespace list means every namespace.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A standby reads the Lease every retry period stretched by up to this factor (client-go's
# JitterFactor). client-go also asks for a renew deadline above retry period x this factor, so
# that a leader has more than one try at renewing before it must step down.
JITTER_FACTOR = 1.2


class Settings(BaseSettings):
    """How the operator runs. Every field can be set as `STEPLINE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="STEPLINE_", frozen=True, extra="ignore")

    namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Namespaces to watch; empty: all namespaces (cluster-wide)."
    )
    http_host: str = Field(default="0.0.0.0", description="Address of the HTTP server.")  # noqa: S104
    http_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of invoke (and /healthz)."
    )
    metrics_port: int = Field(
        default=8082,
        ge=1,
        le=65535,
        description="Port of /metrics (and /healthz), apart from invoke's: scraping needs no "
        "token, and a NetworkPolicy can admit Prometheus to it alone.",
    )
    liveness_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of kopf's liveness probe; 0 disables it."
    )
    field_manager: str = Field(
        default="stepline",
        max_length=128,
        description="Server-side apply field manager of the objects Stepline owns.",
    )
    watch_server_timeout_seconds: int = Field(
        default=300, ge=10, description="Server-side timeout of each watch request."
    )
    watch_client_timeout_seconds: int = Field(
        default=330, ge=10, description="Client-side timeout of each watch request."
    )
    api_timeout_seconds: float = Field(
        default=30, gt=0, description="Timeout of one request to the Kubernetes API."
    )
    invoke_timeout_seconds: float = Field(
        default=60, gt=0, description="Deadline of one synchronous invoke, in seconds."
    )
    invoke_auth: bool = Field(
        default=True,
        description="Invoke needs a bearer token (checked with a TokenReview) whose user may "
        "`invoke` the Workflow (a SubjectAccessReview). false: anyone who reaches the HTTP port "
        "may invoke any workflow the operator watches; for local demos and tests only.",
    )
    ui: bool = Field(
        default=False,
        description="Serve the web view of workflows and runs under /ui/ on the HTTP port "
        "(docs/ui.md); its pages ask for a bearer token as invoke does.",
    )
    invoke_auth_audiences: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Audiences a caller's token must be issued for; empty: the API server's own "
        "(what `kubectl create token` issues by default).",
    )
    invoke_auth_allowed_ttl_seconds: float = Field(
        default=10,
        ge=0,
        description="How long an allowed caller is remembered (per token, namespace and "
        "workflow): a revoked token or binding works at most this much longer. 0: no cache.",
    )
    invoke_auth_denied_ttl_seconds: float = Field(
        default=2,
        ge=0,
        description="How long a refused caller (401, 403) is remembered: a new binding takes "
        "effect at most this much later. 0: no cache.",
    )
    endpoint_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="JSON map from a step (`namespace/name` or `name`) to a base URL that "
        "replaces its in-cluster address: local runs and the demo, where kwok simulates pods.",
    )
    balance_calls: bool = Field(
        default=True,
        description="Send each call of a deployed step to one of its ready replicas (from its "
        "Service's EndpointSlices, the less loaded of two); false: to the Service's address.",
    )
    scaling_sample_seconds: float = Field(
        default=5,
        gt=0,
        le=300,
        description="How often each step's load is sampled, forecast and exported for its "
        "autoscaler (InFlight and CallsPerSecond scaling), in seconds.",
    )
    scaling_default_lead_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="The lead time predictive scaling assumes for a step until it has measured "
        "one (seconds from a scale-up to its Ready replicas).",
    )
    retention_interval_seconds: float = Field(
        default=30,
        gt=0,
        description="How often finished runs are pruned and run statistics written, in seconds.",
    )
    worker_limit: int = Field(
        default=16, ge=1, description="ServiceStep reconciles (applies and status) at once."
    )
    run_limit: int = Field(
        default=500,
        ge=1,
        description="WorkflowRuns executing at once in this operator; the others wait for their "
        "turn in a queue (phase Pending), in the order they came, holding no memory to speak "
        "of. Each Workflow's spec.concurrency applies as well.",
    )
    approvals: bool = Field(
        default=True,
        description="Follow Approvals and decide approval steps with them; false where the "
        "Approval admission policies are not installed (the chart's approvals.enabled): then "
        "no approval step is ever decided by a person.",
    )
    approval_policy_check_seconds: float = Field(
        default=60,
        gt=0,
        description="How often the Approval admission policies are checked; until they are in "
        "place no Approval is honoured.",
    )
    # Leader election among replicas: client-go's defaults (kube-controller-manager's too).
    lease_name: str = Field(
        default="stepline",
        min_length=1,
        max_length=253,
        description="Name of the coordination.k8s.io/v1 Lease the replicas elect a leader on.",
    )
    lease_namespace: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="Namespace of that Lease (in a pod: the operator's own, set by the chart); "
        "default: the first watched namespace, else `default`.",
    )
    pod_id: str | None = Field(
        default=None,
        description="This replica's name in the Lease (the chart sets the pod's name); "
        "default: the host's name. A random suffix is added either way.",
    )
    lease_duration_seconds: int = Field(
        default=15,
        ge=1,
        description="How long a standby waits, from when it saw the Lease last change, before "
        "it takes the Lease over.",
    )
    lease_renew_deadline_seconds: float = Field(
        default=10,
        gt=0,
        description="How long the leader may write after sending its last successful renewal "
        "(its fence); it steps down when it has not renewed by then.",
    )
    lease_retry_period_seconds: float = Field(
        default=2,
        gt=0,
        description="How often the leader renews and a standby reads the Lease (the standby "
        "jittered up to 2.2 times it).",
    )

    tracing_endpoint: str = Field(
        default="",
        max_length=2048,
        pattern=r"^(https?://\S+)?$",
        description="Base URL of an OTLP/HTTP collector (Jaeger's port 4318, an OpenTelemetry "
        "Collector): spans go to <it>/v1/traces. Empty: no spans are recorded or sent.",
    )
    tracing_sampling_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces kept (a caller's sampled traceparent is always "
        "followed): 1 keeps all, 0 none.",
    )
    tracing_export_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long one batch of spans may take to send before it is dropped "
        "(counted in stepline_spans_dropped_total).",
    )

    @field_validator("namespaces", "invoke_auth_audiences", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_lease_timings(self) -> Settings:
        duration, renew = self.lease_duration_seconds, self.lease_renew_deadline_seconds
        if not duration > renew > JITTER_FACTOR * self.lease_retry_period_seconds:
            raise ValueError(
                f"lease timings: need duration ({duration}) > renew deadline ({renew}) > "
                f"{JITTER_FACTOR} x retry period ({self.lease_retry_period_seconds}); "
                "set STEPLINE_LEASE_*_SECONDS accordingly"
            )
        return self

    @model_validator(mode="after")
    def _check_ports(self) -> Settings:
        ports = {"http": self.http_port, "metrics": self.metrics_port}
        if self.liveness_port:
            ports["liveness"] = self.liveness_port
        if len(set(ports.values())) < len(ports):
            raise ValueError(
                f"ports {ports}: each server needs a port of its own; "
                "set STEPLINE_HTTP_PORT, STEPLINE_METRICS_PORT and STEPLINE_LIVENESS_PORT apart"
            )
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def lease_scope(self) -> str:
        """The namespace of the leader election's Lease."""
        return self.lease_namespace or next(iter(self.namespaces), "default")
