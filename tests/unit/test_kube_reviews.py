"""KubeApi's reviews (invoke's TokenReview and SubjectAccessReview), on the stand-in ApiClient of
test_kube_requests: what is sent, what comes back, and that a review never waits behind the
operator's writes."""

from __future__ import annotations

import asyncio
from typing import Any

from stepline.kube import CONNECTIONS, KubeApi
from tests.unit.test_kube_requests import ApiClient

REVIEWED = {
    "apiVersion": "authentication.k8s.io/v1",
    "kind": "TokenReview",
    "status": {"authenticated": True, "user": {"username": "ada"}},
}


class WritesHang(ApiClient):
    """Answers reviews at once; every other request never."""

    async def call_api(self, method: str, path: str, body: Any, *, _request_timeout: float) -> Any:
        self.sent.append((method, path, body))
        if "review" not in path:
            await asyncio.Event().wait()
        return self._answer


async def test_a_review_posts_to_the_cluster_scoped_collection_and_returns_the_status() -> None:
    client = ApiClient(201, REVIEWED)
    api = KubeApi(client, field_manager="stepline", timeout=30)  # type: ignore[arg-type]

    status = await api.review(
        "authentication.k8s.io/v1", "TokenReview", {"token": "t"}, timeout=2.5
    )

    assert status == REVIEWED["status"]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t"}}
    assert client.sent == [("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body)]
    assert client.timeouts == [2.5]


async def test_an_answer_without_a_status_is_an_empty_one() -> None:
    client = ApiClient(201, {"kind": "SubjectAccessReview"})
    api = KubeApi(client, field_manager="stepline", timeout=30)  # type: ignore[arg-type]

    status = await api.review("authorization.k8s.io/v1", "SubjectAccessReview", {}, timeout=1)

    assert status == {}


async def test_a_review_is_answered_while_every_write_connection_is_taken() -> None:
    client = WritesHang(201, REVIEWED)
    api = KubeApi(client, field_manager="stepline", timeout=30)  # type: ignore[arg-type]
    manifest = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "shop"}}
    busy = [asyncio.create_task(api.create(manifest)) for _ in range(CONNECTIONS + 3)]
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(5):
            status = await api.review(
                "authentication.k8s.io/v1", "TokenReview", {"token": "t"}, timeout=None
            )
        assert status["authenticated"] is True
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
