"""KubeApi's create and replace (the Lease's optimistic writes) and the per-request timeout, on a
stand-in for the kubernetes package's ApiClient: what is sent, and how answers are reported."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from stepline.errors import KubeApiError, KubeConflictError
from stepline.kube import CONNECTIONS, KubeApi

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
