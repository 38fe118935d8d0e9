"""The operator's own watches of the objects ServiceSteps own (controllers/servicesteps/owned.py, on
controllers/informers.py), against the real API server: the first list fills the states, events
follow changes, a new list reports what went away meanwhile as deleted, and an event larger than any
read buffer arrives whole. Objects without the operator's labels are not seen."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stepline.api import ServiceStep
from stepline.controllers.servicesteps.owned import DEPLOYMENT, OwnedObjectWatch, OwnedStates
from stepline.kube import KubeApi
from stepline.resources import MANAGED_BY_LABEL, build_autoscaler, build_deployment, build_service
from tests.integration.asynctasks import running
from tests.integration.localcluster import LocalCluster

WAIT = 60.0


@dataclass
class Reactions:
    """What the watch reported: (kind, event type, object name, step name)."""

    seen: list[tuple[str, str, str, str]] = field(default_factory=list)

    def __call__(self, kind: str, event_type: str, body: Mapping[str, Any], step: str) -> None:
        self.seen.append((kind, event_type, body["metadata"]["name"], step))

    async def wait_for(self, entry: tuple[str, str, str, str]) -> None:
        await poll(lambda: entry in self.seen, f"{entry} among {self.seen}")


async def poll(probe: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT}s waiting for {what}")
        await asyncio.sleep(0.05)


def owned_manifests(step_name: str, namespace: str) -> list[dict[str, Any]]:
    """A step's Deployment, Service and HPA as the operator builds them, without the owner
    reference (there is no ServiceStep here; the garbage collector would remove them)."""
    step = ServiceStep.from_body(
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "ServiceStep",
            "metadata": {"name": step_name, "namespace": namespace, "uid": "u-1", "generation": 1},
            "spec": {"image": "registry.example/validate:1"},
        }
    )
    manifests = [build_deployment(step), build_service(step), build_autoscaler(step)]
    for manifest in manifests:
        del manifest["metadata"]["ownerReferences"]
    return manifests


async def test_the_first_list_fills_the_states_then_events_follow_changes(
    cluster: LocalCluster, namespace: str, kube: KubeApi
) -> None:
    await asyncio.to_thread(cluster.apply, owned_manifests("fraud", namespace))
    stranger = owned_manifests("stranger", namespace)[0]
    del stranger["metadata"]["labels"][MANAGED_BY_LABEL]  # not the operator's
    await asyncio.to_thread(cluster.apply, stranger)
    reactions, states = Reactions(), OwnedStates()
    watch = OwnedObjectWatch(
        kube, states=states, namespaces=[namespace], react=reactions, timeout_seconds=30
    )

    async with running(watch):
        await asyncio.wait_for(states.synced.wait(), WAIT)
        assert states.deployment(namespace, "fraud") is not None
        assert states.autoscaler(namespace, "fraud") is not None
        assert {(kind, name) for kind, _, name, _ in reactions.seen} == {
            ("Deployment", "fraud"),
            ("Service", "fraud"),
            ("HorizontalPodAutoscaler", "fraud"),
        }

        await asyncio.to_thread(
            cluster.kubectl, "scale", "deployment/fraud", "--replicas=3", "-n", namespace
        )
        await poll(
            lambda: (found := states.deployment(namespace, "fraud")) and found.desired == 3,
            "the Deployment's 3 replicas in the states",
        )
        await reactions.wait_for(("Deployment", "MODIFIED", "fraud", "fraud"))

        await asyncio.to_thread(cluster.kubectl, "delete", "hpa", "fraud", "-n", namespace)
        await reactions.wait_for(("HorizontalPodAutoscaler", "DELETED", "fraud", "fraud"))
        assert states.autoscaler(namespace, "fraud") is None

    assert not any(name == "stranger" for _, _, name, _ in reactions.seen)


async def test_a_new_list_reports_what_went_away_meanwhile_as_deleted(
    cluster: LocalCluster, namespace: str, kube: KubeApi
) -> None:
    await asyncio.to_thread(cluster.apply, owned_manifests("fraud", namespace))
    reactions, states = Reactions(), OwnedStates()
    watch = OwnedObjectWatch(
        kube, states=states, namespaces=[namespace], react=reactions, timeout_seconds=30
    )
    await watch.list_once(DEPLOYMENT, namespace)
    assert states.deployment(namespace, "fraud") is not None

    # Nobody watches now, as while a watch is down.
    await asyncio.to_thread(cluster.kubectl, "delete", "deployment", "fraud", "-n", namespace)
    await watch.list_once(DEPLOYMENT, namespace)

    assert reactions.seen[-1] == ("Deployment", "DELETED", "fraud", "fraud")
    assert states.deployment(namespace, "fraud") is None


async def test_an_event_larger_than_any_read_buffer_arrives_whole(
    cluster: LocalCluster, namespace: str, kube: KubeApi
) -> None:
    reactions, states = Reactions(), OwnedStates()
    watch = OwnedObjectWatch(
        kube, states=states, namespaces=[namespace], react=reactions, timeout_seconds=30
    )
    version = await watch.list_once(DEPLOYMENT, namespace)
    deployment = owned_manifests("fraud", namespace)[0]
    # 100 KB in one annotation (kubectl apply keeps a copy in another; 256 KiB for all): one
    # line of the stream, larger than aiohttp's read buffer and readline() limit of 64 KiB.
    deployment["metadata"]["annotations"] = {"example.com/notes": "x" * 100_000}
    await asyncio.to_thread(cluster.apply, deployment)

    watching = asyncio.create_task(watch.watch_once(DEPLOYMENT, namespace, version))
    try:
        await reactions.wait_for(("Deployment", "ADDED", "fraud", "fraud"))
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert states.deployment(namespace, "fraud") is not None
