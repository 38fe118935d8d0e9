"""The example services expose their own request metrics for Prometheus."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from finance.serving import build_step_app
from prometheus_client.parser import text_string_to_metric_families


async def test_a_step_service_counts_its_requests_by_status_and_times_them() -> None:
    app = build_step_app("/echo", lambda body, key: (200, body))
    async with TestClient(TestServer(app)) as client:
        await client.post("/echo", json={"a": 1})
        await client.post("/echo", data=b"[not json")
        text = await (await client.get("/metrics")).text()
    samples = {
        (sample.name, sample.labels.get("code")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("step_requests_total", "200")] == 1
    assert samples[("step_requests_total", "400")] == 1
    assert samples[("step_request_duration_seconds_count", None)] == 2
