"""KubeApi's create and replace (the Lease's optimistic writes), the per-request timeout, the
Lease's own connection and the write fence, on a stand-in for the kubernetes package's
ApiClient: what is sent, and how answers are reported."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from stepline.errors import KubeApiError, KubeConflictError, NotLeadingError
from stepline.kube import CONNECTIONS, KubeApi, request_resource

LEASE = {
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {"name": "stepline", "namespace": "ops", "resourceVersion": "41"},
    "spec": {"holderIdentity": "operator-a_1f2e", "leaseDurationSeconds": 15},
}


class Answer:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self._data = json.dumps(body).encode()

    async def read(self) -> bytes:
        return self._data


class ApiClient:
    """Records each request (method, path, body) and answers `status` with `body`, or never
    (`hang`)."""

    def __init__(self, status: int = 200, body: Any = None, *, hang: bool = False) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.timeouts: list[float] = []
        self._answer, self._hang = Answer(status, body if body is not None else LEASE), hang

    async def param_serialize(
        self, *, method: str, resource_path: str, body: Any = None, **_: Any
    ) -> tuple[Any, ...]:
        return method, resource_path, body

    async def call_api(self, method: str, path: str, body: Any, *, _request_timeout: float) -> Any:
        self.sent.append((method, path, body))
        self.timeouts.append(_request_timeout)
        if self._hang:
            await asyncio.Event().wait()
        return self._answer


def kube(client: ApiClient) -> KubeApi:
    return KubeApi(client, field_manager="stepline", timeout=30)  # type: ignore[arg-type]


async def test_replace_puts_the_manifest_with_its_resource_version_to_the_objects_path() -> None:
    client = ApiClient()
    assert await kube(client).replace(LEASE, timeout=4.5) == LEASE
    assert client.sent == [
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ops/leases/stepline", LEASE)
    ]
    assert client.timeouts == [4.5]


async def test_create_posts_to_the_collection() -> None:
    client = ApiClient(201)
    await kube(client).create(LEASE)
    assert client.sent == [("POST", "/apis/coordination.k8s.io/v1/namespaces/ops/leases", LEASE)]
    assert client.timeouts == [30]  # no timeout of its own: the client's


async def test_a_replace_of_a_version_written_since_is_a_conflict() -> None:
    status = {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}
    with pytest.raises(KubeConflictError) as raised:
        await kube(ApiClient(409, status)).replace(LEASE)
    assert raised.value.status == 409
    assert "the object has been modified" in str(raised.value)


async def test_a_request_with_a_timeout_gives_up_in_time_waiting_for_a_connection_included() -> (
    None
):
    api = kube(ApiClient(hang=True))
    busy = [asyncio.create_task(api.get("v1", "Event", "ops", f"e{n}")) for n in range(CONNECTIONS)]
    await asyncio.sleep(0)  # every connection is taken by a request that never ends
    try:
        async with asyncio.timeout(5):
            with pytest.raises(KubeApiError) as raised:
                await api.get("coordination.k8s.io/v1", "Lease", "ops", "stepline", timeout=0.05)
        assert raised.value.status == 0
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)


async def test_the_lease_has_a_connection_of_its_own_never_behind_the_others() -> None:
    api = kube(ApiClient(hang=True))
    busy = [asyncio.create_task(api.get("v1", "Event", "ops", f"e{n}")) for n in range(CONNECTIONS)]
    await asyncio.sleep(0)
    try:
        lease = api.lease_requests()
        sent = asyncio.create_task(lease.replace(LEASE, timeout=5))
        await asyncio.sleep(0.01)
        assert ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ops/leases/stepline", LEASE) in (
            api._api.sent  # type: ignore[attr-defined]
        )
        sent.cancel()
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, sent, return_exceptions=True)


STATUS = ("stepline.io/v1alpha1", "WorkflowRun", "shop", "order-1", {"phase": "Running"})


async def test_a_write_past_the_fence_is_not_sent() -> None:
    client = ApiClient()
    api = kube(client)
    api.fence_writes(lambda: time.monotonic() - 0.001)

    for write in (
        api.patch_status(*STATUS),
        api.apply(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop", "name": "a"}}
        ),
        api.delete("v1", "Service", "shop", "a"),
        api.post_event("shop", {"reason": "Started"}),
    ):
        with pytest.raises(NotLeadingError) as raised:
            await write
        assert not raised.value.retryable
    assert client.sent == []


async def test_a_write_past_the_fence_is_told_as_refused_by_resource_but_not_as_a_request() -> None:
    refused: list[str] = []
    requests: list[tuple[str, str, int]] = []
    api = kube(ApiClient())
    api.observe_refused_writes(refused.append)
    api.observe_requests(lambda *request: requests.append(request))
    api.fence_writes(lambda: time.monotonic() - 0.001)

    for write in (
        api.patch_status(*STATUS),
        api.delete("v1", "Service", "shop", "a"),
        api.post_event("shop", {"reason": "Started"}),
    ):
        with pytest.raises(NotLeadingError):
            await write

    assert refused == ["workflowruns/status", "services", "events"]
    assert requests == []  # nothing was sent


async def test_a_write_given_up_at_the_fence_is_told_as_refused_and_as_unanswered() -> None:
    refused: list[str] = []
    requests: list[tuple[str, str, int]] = []
    api = kube(ApiClient(hang=True))
    api.observe_refused_writes(refused.append)
    api.observe_requests(lambda *request: requests.append(request))
    api.fence_writes(lambda: time.monotonic() + 0.05)

    with pytest.raises(NotLeadingError):
        async with asyncio.timeout(5):
            await api.patch_status(*STATUS)

    assert refused == ["workflowruns/status"]
    assert requests == [("PATCH", "workflowruns/status", 0)]


async def test_reads_the_lease_and_failed_writes_before_the_fence_are_not_told_as_refused() -> None:
    refused: list[str] = []
    api = KubeApi(ApiClient(hang=True), field_manager="stepline", timeout=0.05)  # type: ignore[arg-type]
    api.observe_refused_writes(refused.append)
    api.fence_writes(lambda: -math.inf)  # a standby

    with pytest.raises(KubeApiError):
        await api.get("stepline.io/v1alpha1", "WorkflowRun", "shop", "order-1", timeout=0.01)
    with pytest.raises(KubeApiError):
        await api.lease_requests().replace(LEASE, timeout=0.01)
    api.fence_writes(lambda: math.inf)  # a leader whose write times out on its own
    with pytest.raises(KubeApiError) as raised:
        async with asyncio.timeout(5):
            await api.delete("v1", "Service", "shop", "a")  # the client's timeout, not the fence
    assert not isinstance(raised.value, NotLeadingError)

    assert refused == []


async def test_reads_and_the_lease_are_not_fenced() -> None:
    client = ApiClient()
    api = kube(client)
    api.fence_writes(lambda: -math.inf)  # a standby

    await api.get("stepline.io/v1alpha1", "WorkflowRun", "shop", "order-1")
    await api.list_page("stepline.io/v1alpha1", "WorkflowRun", "shop")
    await api.lease_requests().replace(LEASE, timeout=2)

    assert [method for method, _, _ in client.sent] == ["GET", "GET", "PUT"]


async def test_a_write_before_the_fence_is_sent_and_given_up_at_the_fence() -> None:
    client = ApiClient(hang=True)
    api = kube(client)
    api.fence_writes(lambda: time.monotonic() + 0.05)

    with pytest.raises(NotLeadingError, match="fence"):
        async with asyncio.timeout(5):
            await api.patch_status(*STATUS)
    assert len(client.sent) == 1
    assert client.timeouts[0] <= 0.05  # the request itself is bounded by the fence


async def test_a_status_write_on_a_version_carries_it_as_a_precondition() -> None:
    client = ApiClient(body={"metadata": {"resourceVersion": "8"}})
    await kube(client).patch_status(*STATUS, resource_version="7")
    [(_, path, body)] = client.sent
    assert path.endswith("/workflowruns/order-1/status")
    assert body == {"metadata": {"resourceVersion": "7"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(
    ("path", "resource", "collection"),
    [
        ("/apis/stepline.io/v1alpha1/namespaces/shop/workflowruns", "workflowruns", True),
        ("/apis/stepline.io/v1alpha1/namespaces/shop/workflowruns/r1", "workflowruns", False),
        (
            "/apis/stepline.io/v1alpha1/namespaces/shop/workflowruns/r1/status",
            "workflowruns/status",
            False,
        ),
        ("/apis/stepline.io/v1alpha1/workflowruns", "workflowruns", True),
        ("/api/v1/namespaces/shop/events", "events", True),
        ("/api/v1/namespaces/shop", "namespaces", False),
        ("/apis/authentication.k8s.io/v1/tokenreviews", "tokenreviews", True),
    ],
)
def test_a_requests_resource_is_read_from_its_path(
    path: str, resource: str, collection: bool
) -> None:
    assert request_resource(path) == (resource, collection)


async def test_every_answered_request_is_told_with_its_verb_resource_and_status() -> None:
    seen: list[tuple[str, str, int]] = []
    api = kube(ApiClient(409, {"kind": "Status", "message": "conflict"}))
    api.observe_requests(lambda *request: seen.append(request))
    with pytest.raises(KubeConflictError):
        await api.replace(LEASE)
    api = kube(ApiClient(200, {"items": []}))
    api.observe_requests(lambda *request: seen.append(request))
    await api.list_page("stepline.io/v1alpha1", "WorkflowRun", "shop")
    assert seen == [("PUT", "leases", 409), ("LIST", "workflowruns", 200)]


async def test_a_request_without_an_answer_is_told_with_status_0() -> None:
    seen: list[tuple[str, str, int]] = []
    api = kube(ApiClient(hang=True))
    api.observe_requests(lambda *request: seen.append(request))
    with pytest.raises(KubeApiError):
        await api.create(LEASE, timeout=0.05)
    assert seen == [("POST", "leases", 0)]
