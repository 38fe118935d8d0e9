"""A step service's capacity knobs: time waited per call without CPU, and calls at once."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer
from finance.serving import build_parser, build_step_app
from prometheus_client.parser import text_string_to_metric_families


def gauge(text: str, name: str) -> float:
    (value,) = (
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )
    return value


async def test_calls_beyond_the_concurrency_queue_and_are_counted_in_flight() -> None:
    app = build_step_app(
        "/echo", lambda body, key: (200, body), wait_ms_per_call=100, concurrency=2
    )
    async with TestClient(TestServer(app)) as client:
        began = time.monotonic()
        calls = [asyncio.create_task(client.post("/echo", json={"n": n})) for n in range(6)]
        await asyncio.sleep(0.05)  # all six arrived; two are waiting, four are queued
        during = gauge(await (await client.get("/metrics")).text(), "step_requests_in_flight")
        answers = await asyncio.gather(*calls)
        took = time.monotonic() - began
        after = gauge(await (await client.get("/metrics")).text(), "step_requests_in_flight")
    assert [a.status for a in answers] == [200] * 6
    assert during == 6
    assert after == 0
    # Two at a time, 100 ms each: three rounds, however fast the machine.
    assert took >= 0.29


def test_the_command_line_sets_the_knobs() -> None:
    args = build_parser("x").parse_args(["--wait-ms-per-call", "25", "--concurrency", "4"])
    assert (args.wait_ms_per_call, args.concurrency, args.cpu_ms_per_call) == (25, 4, 0)
