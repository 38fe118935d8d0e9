"""The operator's settings as the environment gives them: invoke authentication on unless turned
off, its audiences as a comma-separated list, one port per server, and tracing off unless an
endpoint is set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stepline.settings import Settings


def test_invoke_authentication_is_on_by_default_with_the_api_servers_audiences() -> None:
    settings = Settings()

    assert settings.invoke_auth is True
    assert settings.invoke_auth_audiences == ()
    assert settings.invoke_auth_allowed_ttl_seconds > settings.invoke_auth_denied_ttl_seconds


def test_invoke_authentication_is_turned_off_and_audiences_are_listed_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEPLINE_INVOKE_AUTH", "false")
    monkeypatch.setenv("STEPLINE_INVOKE_AUTH_AUDIENCES", "stepline, https://kubernetes.default.svc")

    settings = Settings()

    assert settings.invoke_auth is False
    assert settings.invoke_auth_audiences == ("stepline", "https://kubernetes.default.svc")


@pytest.mark.parametrize(
    "ports",
    [
        {"http_port": 8080, "metrics_port": 8080},
        {"metrics_port": 8081, "liveness_port": 8081},
    ],
)
def test_two_servers_on_one_port_are_refused_naming_the_settings(ports: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="STEPLINE_METRICS_PORT"):
        Settings(**ports)


def test_a_disabled_liveness_port_leaves_the_other_two_apart() -> None:
    assert Settings(liveness_port=0, metrics_port=8081).metrics_port == 8081


def test_tracing_is_off_by_default_and_samples_all_when_turned_on() -> None:
    settings = Settings()

    assert settings.tracing_endpoint == ""
    assert settings.tracing_sampling_ratio == 1.0


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("STEPLINE_TRACING_SAMPLING_RATIO", "1.5", "tracing_sampling_ratio"),
        ("STEPLINE_TRACING_SAMPLING_RATIO", "-0.1", "tracing_sampling_ratio"),
        ("STEPLINE_TRACING_ENDPOINT", "jaeger:4318", "tracing_endpoint"),
    ],
)
def test_a_wrong_tracing_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=field):
        Settings()
