"""The operator's settings: read once from the environment (prefix `STEPLINE_`) at start-up and
passed down. Nothing else in Stepline reads the environment.

Loading does no I/O beyond reading the environment. Lists are comma-separated
(`STEPLINE_NAMESPACES=shop,factory`); an empty namespace list means every namespace.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """How the operator runs. Every field can be set as `STEPLINE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="STEPLINE_", frozen=True, extra="ignore")

    namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Namespaces to watch; empty: all namespaces (cluster-wide)."
    )
    http_host: str = Field(default="0.0.0.0", description="Address of the HTTP server.")  # noqa: S104
    http_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of invoke, /metrics and /healthz."
    )
    liveness_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of kopf's liveness probe; 0 disables it."
    )
    field_manager: str = Field(
        default="stepline",
        max_length=128,
        description="Server-side apply field manager of the objects Stepline owns.",
    )
    peering: str | None = Field(
        default=None,
        description="Name of a kopf peering object to run several replicas (HA); "
        "default: standalone, one replica.",
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
        default=64, ge=1, description="ServiceStep reconciles (applies and status) at once."
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
