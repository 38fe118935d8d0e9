"""Kubernetes Events about what the operator did: posted by the operator itself, not by kopf.

kopf posts Events (`kopf.info`, `kopf.warn`) only from inside its own per-object processing,
where it keeps its Event queue; most of what the operator does happens elsewhere: in its
reconcile tasks for ServiceSteps, its run tasks for WorkflowRuns (followed by its own watch,
`runs.RunWatch`), its status refreshes. So those Events go through an `EventPoster`: a queue and
`POSTERS` tasks that create core/v1 Events in the order they were asked for, with the fields kopf
fills (the component is "stepline", set for kopf's own Events too in `configure_kopf`).

Only the leader posts (`may_post`): a standby drops what it is asked to post, and a replica
that stops leading drops what is still queued (`drop_queued`): the new leader says it again.

Posting never blocks the caller and never fails it: an Event that cannot be created is retried
a few times with backoff, then logged and dropped (Events are advice to the reader of
`kubectl describe`; the run's status is the record). The queue is bounded: past
`MAX_QUEUED_EVENTS` the newest are dropped with a warning rather than growing without limit while
the API server is away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.errors import KubeApiError, NotLeadingError
from stepline.kube import EVENT_CONNECTIONS, KubeApi

logger = logging.getLogger(__name__)

COMPONENT = "stepline"
# The API server refuses an Event message over 1 KiB; longer ones keep their start and end.
MAX_MESSAGE_LENGTH = 1024
MAX_QUEUED_EVENTS = 10_000
# Events posted at once: one per connection the API client keeps for them.
POSTERS = EVENT_CONNECTIONS
# Seconds the operator's stop spends posting the Events still queued, at most.
FLUSH_SECONDS = 5.0
# Seconds between the attempts to post one Event.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True, slots=True)
class Event:
    involved: Mapping[str, Any]  # apiVersion, kind, namespace, name, uid
    type: str  # Normal or Warning
    reason: str
    message: str
    time: datetime


class EventPoster:
    """Posts Events in the order they were asked for; `run()` is the task that posts them."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        may_post: Callable[[], bool] = lambda: True,
        instance: str | None = None,
        max_queued: int = MAX_QUEUED_EVENTS,
    ) -> None:
        self._kube = kube
        self._may_post = may_post
        self._instance = instance or socket.gethostname()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queued)
        self._dropped = 0

    def info(self, involved: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.post(involved, type="Normal", reason=reason, message=message)

    def warn(self, involved: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.post(involved, type="Warning", reason=reason, message=message)

    def post(self, involved: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        if not self._may_post():
            return
        event = Event(involved, type, reason, message, datetime.now(UTC))
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning("%d Events dropped: the API server takes none", self._dropped)

    async def run(self) -> None:
        """Posts the queued Events until cancelled."""
        async with asyncio.TaskGroup() as group:
            for number in range(POSTERS):
                group.create_task(self._post_forever(), name=f"event poster {number}")

    async def _post_forever(self) -> None:
        while True:
            await self._post(await self._queue.get())

    def drop_queued(self) -> int:
        """Drops the Events not posted yet (this replica stopped leading); how many."""
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            dropped += 1
        return dropped

    async def flush(self, *, within: float = FLUSH_SECONDS) -> None:
        """Posts what is queued now (the operator stopping), one attempt each, for at most
        `within` seconds: an API server that does not answer must not hold the stop up."""
        try:
            async with asyncio.timeout(within):
                while not self._queue.empty():
                    await self._post(self._queue.get_nowait(), retry_delays=())
        except TimeoutError:
            pass
        if left := self._queue.qsize():
            logger.warning("%d Events not posted: the operator stopped first", left)

    async def _post(self, event: Event, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        namespace = str(event.involved.get("namespace") or "default")
        body = self.manifest(event)
        for delay in (*retry_delays, None):
            try:
                await self._kube.post_event(namespace, body)
                return
            except NotLeadingError:
                return  # the leader says it
            except KubeApiError as exc:
                if delay is None or exc.status in {400, 403, 404, 422}:
                    logger.warning(
                        "could not post the %s Event %r about %s %s/%s: %s", event.type,
                        event.reason, event.involved.get("kind"), namespace,
                        event.involved.get("name"), exc,
                    )  # fmt: skip
                    return
            await asyncio.sleep(delay)

    def manifest(self, event: Event) -> dict[str, Any]:
        """The core/v1 Event, as kopf and kubectl's `describe` know them."""
        when = event.time.isoformat()
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{event.involved.get('name') or 'stepline'}.",
                "namespace": event.involved.get("namespace") or "default",
            },
            "involvedObject": dict(event.involved),
            "type": event.type,
            "reason": event.reason,
            "message": shorten(event.message),
            "action": event.reason,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "eventTime": event.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "count": 1,
        }


def shorten(message: str) -> str:
    """The message as the API server takes it: its start and end if it is too long."""
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    infix = " … "
    half = (MAX_MESSAGE_LENGTH - len(infix)) // 2
    return message[:half] + infix + message[-half:]
