"""Calls spread over a step's ready replicas: what an EndpointSlice says is ready, the power of two
choices on calls in flight, and the step client sending each attempt to the replica picked."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from stepline.api import Reason, RetryPolicy, ServiceStep
from stepline.engine import Address, Balancer, StepFailedError, slice_addresses
from stepline.engine.balancing import Route
from stepline.engine.calling import StepCall, StepClient
from stepline.engine.endpoints import resolve_endpoint, resolve_route
from stepline.engine.errors import CallConnectionError
from stepline.httpclient.transports import Reply
from stepline.observability.tracing import TraceSpan


def endpoint(ip: str, *, ready: bool | None = True, terminating: bool = False) -> dict[str, Any]:
    conditions: dict[str, Any] = {"terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    return {"addresses": [ip], "conditions": conditions}


def endpoint_slice(*endpoints: dict[str, Any], port: int = 8080, **extra: Any) -> dict[str, Any]:
    return {
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
        **extra,
    }


def test_a_slice_yields_its_ready_not_terminating_endpoints_on_the_http_port() -> None:
    found = slice_addresses(
        endpoint_slice(
            endpoint("10.0.0.1"),
            endpoint("10.0.0.2", ready=False),
            endpoint("10.0.0.3", ready=None),  # unknown: ready, as the API says
            endpoint("10.0.0.4", ready=True, terminating=True),
            port=9000,
        )
    )
    assert found == (Address("10.0.0.1", 9000), Address("10.0.0.3", 9000))


@pytest.mark.parametrize(
    "body",
    [
        endpoint_slice(endpoint("10.0.0.1"), addressType="FQDN"),
        {"addressType": "IPv4", "ports": [{"name": "metrics", "port": 9090}],
         "endpoints": [endpoint("10.0.0.1")]},
        {"addressType": "IPv4", "ports": None, "endpoints": None},
        {},
    ],
)  # fmt: skip
def test_a_slice_without_the_http_port_or_of_names_yields_nothing(body: dict[str, Any]) -> None:
    assert slice_addresses(body) == ()


def test_an_ipv6_address_is_bracketed_in_its_base_url() -> None:
    assert Address("fd00::5", 8080).base == "http://[fd00::5]:8080"
    assert Address("10.0.0.5", 8080).base == "http://10.0.0.5:8080"


def test_the_ready_set_is_the_union_of_the_steps_slices_and_follows_their_changes() -> None:
    balancer = Balancer()
    a, b, c = (Address(f"10.0.0.{i}", 80) for i in (1, 2, 3))
    balancer.update("ns", "s", "s-x", [a, b])
    balancer.update("ns", "s", "s-y", [b, c])
    assert balancer.ready("ns", "s") == (a, b, c)
    balancer.update("ns", "s", "s-x", [])  # a and b no longer ready there
    assert balancer.ready("ns", "s") == (b, c)
    balancer.remove("ns", "s", "s-y")
    assert balancer.ready("ns", "s") == ()
    assert balancer.pick("ns", "s") is None
    assert balancer.ready("other", "s") == ()


def test_with_one_endpoint_it_is_picked_and_with_none_the_service_is_called() -> None:
    balancer = Balancer()
    assert balancer.pick("ns", "s") is None
    only = Address("10.0.0.1", 80)
    balancer.update("ns", "s", "s-x", [only])
    assert balancer.pick("ns", "s") == only


def test_of_two_the_one_with_fewer_calls_in_flight_is_picked() -> None:
    balancer = Balancer(rng=random.Random(7))  # noqa: S311
    busy, idle = Address("10.0.0.1", 80), Address("10.0.0.2", 80)
    balancer.update("ns", "s", "s-x", [busy, idle])
    with balancer.lease(busy), balancer.lease(busy):
        assert balancer.in_flight(busy) == 2
        assert {balancer.pick("ns", "s") for _ in range(50)} == {idle}
    assert balancer.in_flight(busy) == 0


def test_a_lease_is_returned_when_the_call_fails() -> None:
    balancer = Balancer()
    address = Address("10.0.0.1", 80)
    with pytest.raises(RuntimeError), balancer.lease(address):
        raise RuntimeError("the call failed")
    assert balancer.in_flight(address) == 0


def test_calls_that_stay_in_flight_spread_evenly_and_a_new_replica_catches_up() -> None:
    balancer = Balancer(rng=random.Random(1))  # noqa: S311
    old = Address("10.0.0.1", 80)
    balancer.update("ns", "s", "s-x", [old])
    held = [balancer.lease(balancer.pick("ns", "s")) for _ in range(30)]
    for lease in held:
        lease.__enter__()
    # Two replicas added while 30 calls are in flight on the old one: new calls go to them.
    added = [Address("10.0.0.2", 80), Address("10.0.0.3", 80)]
    balancer.update("ns", "s", "s-x", [old, *added])
    picks = Counter[Address]()
    for _ in range(30):
        address = balancer.pick("ns", "s")
        assert address is not None
        picks[address] += 1
        lease = balancer.lease(address)
        lease.__enter__()
        held.append(lease)
    assert picks[old] == 0
    assert balancer.in_flight(old) == 30
    assert all(10 <= balancer.in_flight(a) <= 20 for a in added), picks


class RecordingTransport:
    """Answers by URL: a ConnectionError for the URLs in `refuse`, else 200 with `{}`."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.urls: list[str] = []
        self._refuse = refuse

    async def post(self, url: str, body: bytes, *, headers: Any, timeout: float) -> Reply:
        self.urls.append(url)
        if url in self._refuse:
            raise CallConnectionError("connection refused")
        return Reply(200, b"{}", None)

    async def aclose(self) -> None:
        return None


def routed_call(**extra: Any) -> StepCall:
    return StepCall(
        step="validate", url="http://user-validation.shop.svc:8080/validate", body=b"{}",
        idempotency_key="k", trace=TraceSpan("1" * 32, "1" * 16, sampled=True), timeout=1,
        route=Route("shop", "user-validation", "/validate"), **extra,
    )  # fmt: skip


async def test_each_attempt_goes_to_a_replica_and_a_retry_may_pick_another() -> None:
    balancer = Balancer(rng=random.Random(3))  # noqa: S311
    down, up = Address("10.0.0.1", 8080), Address("10.0.0.2", 8080)
    balancer.update("shop", "user-validation", "uv-1", [down, up])
    transport = RecordingTransport(refuse={down.base + "/validate"})
    client = StepClient(transport, balancer=balancer, jitter=lambda: 0.0)
    retry = RetryPolicy.model_validate({"limit": 5, "backoff": {"initialSeconds": 0.001}})
    result = await client.call(routed_call(retry=retry))
    assert result.output == {}
    assert transport.urls[-1] == "http://10.0.0.2:8080/validate"
    assert set(transport.urls) <= {down.base + "/validate", up.base + "/validate"}
    assert balancer.in_flight(down) == balancer.in_flight(up) == 0


async def test_a_failure_names_the_replica_it_was_sent_to() -> None:
    balancer = Balancer()
    down = Address("10.0.0.1", 8080)
    balancer.update("shop", "user-validation", "uv-1", [down])
    client = StepClient(RecordingTransport(refuse={down.base + "/validate"}), balancer=balancer)
    with pytest.raises(StepFailedError) as failed:
        await client.call(routed_call(retry=RetryPolicy.model_validate({"limit": 0})))
    assert failed.value.error.reason == Reason.CONNECTION_ERROR
    assert "POST http://10.0.0.1:8080/validate: connection refused" in failed.value.error.message


async def test_without_a_known_replica_the_service_is_called() -> None:
    transport = RecordingTransport()
    client = StepClient(transport, balancer=Balancer())
    await client.call(routed_call(retry=RetryPolicy()))
    assert transport.urls == ["http://user-validation.shop.svc:8080/validate"]


def step(**spec: Any) -> ServiceStep:
    body = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {"name": "user-validation", "namespace": "shop", "uid": "u"},
        "spec": spec,
    }
    return ServiceStep.from_body(body)


def test_a_deployed_step_has_a_route_with_its_path_and_others_do_not() -> None:
    deployed = step(image="i", port=8080, path="/validate")
    assert resolve_route(deployed) == Route("shop", "user-validation", "/validate")
    assert resolve_endpoint(deployed) == "http://user-validation.shop.svc:8080/validate"
    assert resolve_route(step(url="https://example.com/v")) is None
    overridden = {"shop/user-validation": "http://127.0.0.1:9001"}
    assert resolve_route(deployed, overrides=overridden) is None
    assert resolve_route(deployed, overrides={"user-validation": "http://x"}) is None
    assert resolve_route(deployed, overrides={"other": "http://x"}) is not None
