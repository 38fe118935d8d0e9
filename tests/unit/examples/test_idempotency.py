"""The services' Idempotency-Key handling, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from finance.serving import IdempotencyCache, Remembered, build_parser, build_step_app

from tests.unit.examples.conftest import Serve


def counting_step() -> tuple[list[Any], Any]:
    """A step that answers with how many times it ran, so replays are visible."""
    seen: list[Any] = []

    def decide(body: dict[str, Any], key: str | None) -> tuple[int, Any]:
        seen.append(body)
        return 200, {"call": len(seen), "key": key}

    return seen, decide


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, key: str | None
) -> tuple[int, Any, str | None]:
    headers = {"Idempotency-Key": key} if key else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("Idempotent-Replayed")


async def test_the_same_key_gets_the_same_answer_without_running_the_step_again(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    seen, decide = counting_step()
    url = await serve(build_step_app("/step", decide)) + "/step"

    first = await post(http, url, {"a": 1}, "run-1/step")
    again = await post(http, url, {"a": 1}, "run-1/step")

    assert first == (200, {"call": 1, "key": "run-1/step"}, None)
    assert again == (200, {"call": 1, "key": "run-1/step"}, "true")
    assert len(seen) == 1


async def test_another_key_or_no_key_runs_the_step(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    seen, decide = counting_step()
    url = await serve(build_step_app("/step", decide)) + "/step"

    await post(http, url, {"a": 1}, "run-1/step")
    await post(http, url, {"a": 1}, "run-2/step")
    await post(http, url, {"a": 1}, None)
    await post(http, url, {"a": 1}, None)

    assert len(seen) == 4


async def test_the_same_key_with_another_body_is_refused_with_422(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    _, decide = counting_step()
    url = await serve(build_step_app("/step", decide)) + "/step"
    await post(http, url, {"a": 1}, "run-1/step")

    status, answer, _ = await post(http, url, {"a": 2}, "run-1/step")

    assert status == 422
    assert "different request" in answer["error"]


def test_the_cache_forgets_the_least_recently_used_key_beyond_its_bound() -> None:
    cache = IdempotencyCache(entries=2)
    for key in ("a", "b"):
        cache.remember(key, Remembered("digest", 200, b"{}"))
    cache.recall("a")  # "b" is now the least recently used

    cache.remember("c", Remembered("digest", 200, b"{}"))

    assert len(cache) == 2
    assert cache.recall("b") is None
    assert cache.recall("a") is not None


async def test_a_cpu_cost_per_call_is_spent_on_each_call_but_not_on_a_replay(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    _, decide = counting_step()
    url = await serve(build_step_app("/step", decide, cpu_ms_per_call=60)) + "/step"

    # The application runs in this process's event loop thread: its CPU time is ours.
    before = time.thread_time()
    await post(http, url, {"a": 1}, "run-1/step")
    spent = time.thread_time() - before
    await post(http, url, {"a": 1}, "run-1/step")
    replayed = time.thread_time() - before - spent

    assert spent >= 0.06
    assert replayed < 0.06


def test_the_command_line_takes_a_cpu_cost_per_call() -> None:
    assert build_parser("x").parse_args(["--cpu-ms-per-call", "25"]).cpu_ms_per_call == 25
    assert build_parser("x").parse_args([]).cpu_ms_per_call == 0
