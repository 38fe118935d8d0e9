"""Endpoint resolution: in-cluster Services, external URLs, and overrides for local runs."""

from __future__ import annotations

from stepline.engine import resolve_endpoint
from tests.unit.engine.stepservers import build_service_step


def test_a_deployed_step_is_called_at_its_service_in_the_cluster() -> None:
    step = build_service_step("user-validation", path="/validate")

    assert resolve_endpoint(step) == "http://user-validation.shop.svc:8080/validate"


def test_an_external_step_is_called_at_its_url() -> None:
    step = build_service_step("fx", url="https://rates.example.com/v1/convert?pair=EURUSD")

    assert resolve_endpoint(step) == "https://rates.example.com/v1/convert?pair=EURUSD"


def test_an_override_replaces_the_host_and_keeps_the_steps_path() -> None:
    step = build_service_step("user-validation", path="/validate")

    url = resolve_endpoint(step, overrides={"user-validation": "http://127.0.0.1:9001/"})

    assert url == "http://127.0.0.1:9001/validate"


def test_an_override_by_namespace_and_name_wins_over_one_by_name() -> None:
    step = build_service_step("user-validation", path="/validate")
    overrides = {"user-validation": "http://127.0.0.1:1", "shop/user-validation": "http://h:2"}

    assert resolve_endpoint(step, overrides=overrides) == "http://h:2/validate"


def test_an_override_of_another_namespace_does_not_apply() -> None:
    step = build_service_step("user-validation", path="/validate")

    url = resolve_endpoint(step, overrides={"bank/user-validation": "http://127.0.0.1:1"})

    assert url == "http://user-validation.shop.svc:8080/validate"


def test_an_override_of_an_external_step_keeps_its_path_and_query() -> None:
    step = build_service_step("fx", url="https://rates.example.com/v1/convert?pair=EURUSD")

    url = resolve_endpoint(step, overrides={"fx": "http://127.0.0.1:9003"})

    assert url == "http://127.0.0.1:9003/v1/convert?pair=EURUSD"


def test_a_path_prefix_in_the_override_comes_before_the_steps_path() -> None:
    step = build_service_step("user-validation", path="/validate")

    url = resolve_endpoint(step, overrides={"user-validation": "http://proxy:8000/shop"})

    assert url == "http://proxy:8000/shop/validate"
