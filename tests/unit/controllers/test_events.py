"""The Events the operator posts itself (about WorkflowRuns): their shape and their limits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from stepline.controllers.events import COMPONENT, MAX_MESSAGE_LENGTH, Event, EventPoster, shorten

RUN = {
    "apiVersion": "stepline.io/v1alpha1",
    "kind": "WorkflowRun",
    "namespace": "shop",
    "name": "order-7",
    "uid": "4b1c",
}


def test_an_event_names_its_object_and_says_it_comes_from_stepline() -> None:
    poster = EventPoster(kube=None, instance="operator-0")  # type: ignore[arg-type]
    when = datetime(2026, 11, 27, 5, 0, 1, 250000, tzinfo=UTC)
    event = poster.manifest(Event(RUN, "Warning", "StepFailed", "step 'pay' answered 502", when))

    assert event["metadata"] == {"generateName": "order-7.", "namespace": "shop"}
    assert event["involvedObject"] == RUN
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning", "StepFailed", "step 'pay' answered 502",
    )  # fmt: skip
    assert event["source"] == {"component": COMPONENT}
    assert (event["reportingComponent"], event["reportingInstance"]) == (COMPONENT, "operator-0")
    assert event["eventTime"] == "2026-11-27T05:00:01.250000Z"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-11-27T05:00:01.250000+00:00"


def test_a_long_message_keeps_its_start_and_end_within_the_api_limit() -> None:
    message = "start " + "x" * 5000 + " end"
    short = shorten(message)
    assert len(short) <= MAX_MESSAGE_LENGTH
    assert short.startswith("start x")
    assert short.endswith("x end")
    assert shorten("fine as it is") == "fine as it is"


def test_posting_never_blocks_and_past_the_bound_drops_the_newest() -> None:
    poster = EventPoster(kube=None, instance="i", max_queued=2)  # type: ignore[arg-type]
    for n in range(5):
        poster.info(RUN, reason="Succeeded", message=f"run {n}")
    queued = [poster._queue.get_nowait().message for _ in range(poster._queue.qsize())]
    assert queued == ["run 0", "run 1"]


async def test_the_flush_at_stop_gives_up_in_time_on_an_api_server_that_does_not_answer() -> None:
    class Silent:
        """A stand-in for an API server that accepted the connection and never answers."""

        async def post_event(self, namespace: str, event: object) -> None:
            await asyncio.sleep(3600)

    poster = EventPoster(kube=Silent(), instance="i")  # type: ignore[arg-type]
    for n in range(3):
        poster.warn(RUN, reason="Failed", message=f"run {n}")
    started = time.monotonic()
    await poster.flush(within=0.2)
    assert time.monotonic() - started < 2
