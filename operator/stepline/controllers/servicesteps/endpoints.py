"""The ready replicas of every deployed step, for the balancer (`engine.balancing`).

Follows the EndpointSlices of the steps' Services, one `informers.Follower` per watched
namespace (or one cluster-wide). The EndpointSlice controller copies a Service's labels onto its
slices, so Stepline's selector finds them; each event is reduced at once to the slice's ready
addresses on the step's `http` port and recorded in the balancer, and the body dropped. A slice
that went away while nobody watched is forgotten on the next list, like a deletion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from stepline.controllers.informers import Follower, WatchedKind
from stepline.controllers.servicesteps.owned import SELECTOR, owned_tombstone
from stepline.engine import Balancer, slice_addresses
from stepline.kube import KubeApi
from stepline.resources import STEP_LABEL

ENDPOINT_SLICE = WatchedKind("discovery.k8s.io/v1", "EndpointSlice")


class EndpointWatch:
    """Keeps `balancer` current with the steps' EndpointSlices in the watched namespaces."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        balancer: Balancer,
        namespaces: Sequence[str],
        timeout_seconds: int,
        on_event: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._balancer = balancer
        self._on_event = on_event
        scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self._followers = {
            namespace: Follower(
                kube,
                ENDPOINT_SLICE,
                namespace,
                label_selector=SELECTOR,
                timeout_seconds=timeout_seconds,
                observe=self.observe,
                tombstone=owned_tombstone,
            )
            for namespace in scopes
        }

    async def run(self) -> None:
        """Follows the slices in every scope until cancelled."""
        async with asyncio.TaskGroup() as group:
            for namespace, follower in self._followers.items():
                where = namespace or "all namespaces"
                group.create_task(follower.run(), name=f"watch EndpointSlice in {where}")

    def observe(self, event_type: str, body: dict[str, Any]) -> str | None:
        """Records one event of a slice; returns its step's name (None: not a step's slice)."""
        metadata = body.get("metadata") or {}
        step = (metadata.get("labels") or {}).get(STEP_LABEL)
        if not step:
            return None
        self._on_event(ENDPOINT_SLICE.kind)
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        if event_type == "DELETED":
            self._balancer.remove(namespace, step, name)
        else:
            self._balancer.update(namespace, step, name, slice_addresses(body))
        return str(step)
