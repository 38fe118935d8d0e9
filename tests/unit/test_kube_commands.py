"""What KubeApi sends for the terminal commands (`stepline cancel`, `stepline start --wait`), on
a stand-in for the kubernetes package's ApiClient: a merge patch of a run's spec, and a watch of
one run by a field selector; and the address an error message names."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from stepline.kube import MERGE_PATCH, KubeApi


class Lines:
    async def iter_any(self) -> Any:
        yield b'{"type": "MODIFIED", "object": {"metadata": {"name": "trade-1"}}}\n'


class Answer:
    status = 200
    response = SimpleNamespace(content=Lines(), close=lambda: None)

    async def read(self) -> bytes:
        return json.dumps({"spec": {"cancel": True}}).encode()


class ApiClient:
    configuration = SimpleNamespace(host="https://10.0.0.1:6443")

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def param_serialize(self, **request: Any) -> tuple[Any, ...]:
        self.sent.append(request)
        return ()

    async def call_api(self, *args: Any, _request_timeout: Any) -> Answer:
        return Answer()


def kube(client: ApiClient) -> KubeApi:
    return KubeApi(client, field_manager="stepline-cli", timeout=30)  # type: ignore[arg-type]


async def test_a_merge_patch_is_sent_to_the_object_as_merge_patch_json() -> None:
    client = ApiClient()
    patch = {"spec": {"cancel": True}}
    await kube(client).merge_patch("stepline.io/v1alpha1", "WorkflowRun", "shop", "t-1", patch)
    (sent,) = client.sent
    assert (sent["method"], sent["resource_path"], sent["body"]) == (
        "PATCH", "/apis/stepline.io/v1alpha1/namespaces/shop/workflowruns/t-1", patch,
    )  # fmt: skip
    assert sent["header_params"]["Content-Type"] == MERGE_PATCH


async def test_a_watch_of_one_run_asks_by_field_selector() -> None:
    client = ApiClient()
    events = kube(client).watch(
        "stepline.io/v1alpha1", "WorkflowRun", "shop", field_selector="metadata.name=trade-1",
        resource_version="41", timeout_seconds=60,
    )  # fmt: skip
    assert [event["type"] async for event in events] == ["MODIFIED"]
    assert ("fieldSelector", "metadata.name=trade-1") in client.sent[0]["query_params"]


def test_the_server_is_the_configurations_address() -> None:
    assert kube(ApiClient()).server == "https://10.0.0.1:6443"
