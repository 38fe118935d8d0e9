"""Names, labels and the endpoint of a step's objects."""

from __future__ import annotations

import pytest

from stepline.api import ServiceStep
from stepline.resources import build_endpoint, build_labels, build_service
from tests.unit.resources.samples import make_step


def test_the_endpoint_is_the_in_cluster_service_url_with_port_and_path() -> None:
    step = make_step(image="svc:1", port=9000, path="/v1/validate")
    assert build_endpoint(step) == "http://validate.shop.svc:9000/v1/validate"


def test_the_endpoint_defaults_to_port_8080_and_the_root_path() -> None:
    assert build_endpoint(make_step()) == "http://validate.shop.svc:8080/"


def test_the_endpoint_of_an_external_step_is_its_url() -> None:
    step = make_step(url="https://partner.example/api/validate")
    assert build_endpoint(step) == "https://partner.example/api/validate"


def test_labels_are_deterministic_and_name_the_step() -> None:
    assert build_labels(make_step("order")) == build_labels(make_step("order"))
    assert build_labels(make_step("order"))["stepline.io/step"] == "order"


def test_a_step_without_uid_or_namespace_cannot_own_objects() -> None:
    step = ServiceStep.from_body(
        {"metadata": {"name": "orphan"}, "spec": {"image": "svc:1"}, "kind": "ServiceStep"}
    )
    with pytest.raises(ValueError, match="uid and namespace"):
        build_service(step)
