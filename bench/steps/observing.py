"""Watching a bench namespace without loading the machine being measured.

The first version of `bench.py` polled: four LISTs (ServiceSteps, Deployments, Services, HPAs)
every 0.2 s, each decoded in this process. On a 2-core machine that the control plane saturates
during a burst, that observer cost the API server and this process about a CPU-second per
100-step run, which the floor (one LIST kind) paid much less of. A watch costs the API server one
serialization per change, shared with the other watchers, and this process one small JSON
decode per event.

`NamespaceWatch` holds one raw watch per kind (plain JSON lines, none of the client's models), in
a thread each, and keeps what the bench reads: which steps are Ready, which Deployments have a
ready replica, how many children exist, and a timeline of those counts.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

STEP_SELECTOR = "stepline.io/step"


@dataclass(frozen=True)
class Progress:
    """The counts at one moment."""

    elapsed: float
    children: int
    ready_steps: int
    available_deployments: int


def _step_ready(body: dict[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _deployment_available(body: dict[str, Any]) -> bool:
    return bool((body.get("status") or {}).get("readyReplicas", 0) > 0)


def _exists(_: dict[str, Any]) -> bool:
    return True


# kind → (URL path under the namespace, label selector, what is noted of each object)
KINDS: dict[str, tuple[str, str | None, Callable[[dict[str, Any]], bool]]] = {
    "servicesteps": ("/apis/stepline.io/v1alpha1/namespaces/{ns}/servicesteps", None, _step_ready),
    "deployments": (
        "/apis/apps/v1/namespaces/{ns}/deployments",
        STEP_SELECTOR,
        _deployment_available,
    ),
    "services": ("/api/v1/namespaces/{ns}/services", STEP_SELECTOR, _exists),
    "horizontalpodautoscalers": (
        "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
        STEP_SELECTOR,
        _exists,
    ),
}
CHILD_KINDS = ("deployments", "services", "horizontalpodautoscalers")


class NamespaceWatch:
    """Watches `kinds` in `namespace` from the moment `start()` returns."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, kinds: tuple[str, ...] = tuple(KINDS)
    ) -> None:
        self._api = api_client
        self._namespace = namespace
        self._kinds = kinds
        self._objects: dict[str, dict[str, bool]] = {kind: {} for kind in kinds}
        self._changed = threading.Condition()
        self._responses: list[Any] = []
        self._threads: list[threading.Thread] = []
        self.started = time.monotonic()
        self.timeline: list[Progress] = []
        self.error: BaseException | None = None
        self._stopping = False

    def start(self) -> NamespaceWatch:
        """Opens every watch (returns once the API server answered each), then follows them."""
        for kind in self._kinds:
            path, selector, _ = KINDS[kind]
            query = [("watch", "true"), ("allowWatchBookmarks", "false")]
            if selector:
                query.append(("labelSelector", selector))
            method, url, headers, _, _ = self._api.param_serialize(
                "GET", path.format(ns=self._namespace), query_params=query,
                header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
            )  # fmt: skip
            reply = self._api.call_api(method, url, header_params=headers)
            if reply.status != 200:
                raise RuntimeError(f"watch of {kind}: {reply.status} {reply.read()[:300]!r}")
            response = reply.response  # urllib3's, not read yet: streamed below
            self._responses.append(response)
            thread = threading.Thread(target=self._follow, args=(kind, response), daemon=True)
            self._threads.append(thread)
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Ends the watches: their sockets are shut down, which wakes the threads reading them
        (closing the response instead would wait for the reader's lock, forever)."""
        self._stopping = True
        for response in self._responses:
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        for response in self._responses:
            response.close()

    def counts(self) -> Progress:
        with self._changed:
            return self._counts()

    def wait_for(self, done: Callable[[Progress], bool], timeout: float, what: str) -> Progress:
        """Blocks until `done(counts)`; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(progress := self._counts()):
                if self.error is not None:
                    raise RuntimeError(f"{what}: a watch failed") from self.error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what}: not within {timeout}s ({progress})")
                self._changed.wait(min(left, 1.0))
            return progress

    def _counts(self) -> Progress:
        objects = self._objects
        return Progress(
            elapsed=time.monotonic() - self.started,
            children=sum(len(objects.get(kind, {})) for kind in CHILD_KINDS),
            ready_steps=sum(objects.get("servicesteps", {}).values()),
            available_deployments=sum(objects.get("deployments", {}).values()),
        )

    def _follow(self, kind: str, response: Any) -> None:
        note = KINDS[kind][2]
        pending = b""
        try:
            for chunk in response.read_chunked(decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                events = [json.loads(line) for line in lines if line.strip()]
                with self._changed:
                    for event in events:
                        self._apply(kind, event, note)
                    self.timeline.append(self._counts())
                    self._changed.notify_all()
        except Exception as exc:  # closed by stop(), or broken: then say so
            with self._changed:
                if not self._stopping:
                    self.error = exc
                self._changed.notify_all()

    def _apply(
        self, kind: str, event: dict[str, Any], note: Callable[[dict[str, Any]], bool]
    ) -> None:
        body = event.get("object") or {}
        name = (body.get("metadata") or {}).get("name", "")
        if event.get("type") == "DELETED":
            self._objects[kind].pop(name, None)
        elif event.get("type") in {"ADDED", "MODIFIED"}:
            self._objects[kind][name] = note(body)
        elif event.get("type") == "ERROR":
            raise RuntimeError(f"watch of {kind}: {body.get('message')}")
