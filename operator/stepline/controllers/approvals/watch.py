"""The watch of Approvals: every Approval in the watched namespaces, followed by a `Follower` of
our own into the index (`index`), on every replica.

An Approval without an Accepted condition wakes the leader's judge for its step; one that turns
Recorded calls `on_decision(namespace, run)`, so that the run waiting for it wakes (on the leader
the judge has usually marked it already, and the echo of its write calls nothing twice). A body
the index cannot read (an older schema) is logged and not followed.
"""

from __future__ import annotations

import logging
from typing import Any

from stepline.api import API_VERSION
from stepline.controllers.informers import WatchedKind, follow_namespaces
from stepline.controllers.runtime import Runtime

logger = logging.getLogger(__name__)
APPROVAL = WatchedKind(API_VERSION, "Approval")


async def follow_approvals(runtime: Runtime) -> None:
    """Follows the Approvals of every watched namespace (none: all) until cancelled."""
    memory = runtime.approvals

    def observe(event_type: str, body: dict[str, Any]) -> bool | None:
        runtime.metrics.mark_watch_event(kind="Approval")
        try:
            before, after = memory.index.record(event_type, body)
        except (KeyError, TypeError, ValueError) as exc:
            metadata = body.get("metadata") or {}
            logger.warning("Approval %s/%s not followed: %s", metadata.get("namespace"),
                           metadata.get("name"), exc)  # fmt: skip
            return None
        if after is None:
            return None if before is None else True
        if not after.judged:
            memory.wake(after.key)
        elif after.recorded and not (before is not None and before.recorded):
            memory.on_decision(after.namespace, after.run)
        return True

    await follow_namespaces(
        runtime.kube, APPROVAL, runtime.settings.namespaces, label_selector=None,
        timeout_seconds=runtime.settings.watch_server_timeout_seconds, observe=observe,
        tombstone=_tombstone, on_listed=memory.listed.set,
    )  # fmt: skip


def _tombstone(namespace: str, name: str, remembered: object) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}}
