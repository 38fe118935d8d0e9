"""The one place Stepline talks to the Kubernetes API; kopf does its own watching and patching of
the objects it hands to handlers.

What it does: server-side apply of the objects Stepline owns under one field manager, creation
(of Events), deletion, merge patches of our kinds' status (and of a run's spec, for
`stepline cancel`), and listing and watching the objects
Stepline follows (the watches on connections of their own, outside the pool the writes share);
and for objects written with optimistic concurrency (the leader election's Lease), create and
replace, the latter guarded by the resourceVersion in the manifest (409 if it moved on);
and token and access reviews for invoke's authorization, on connections of their own.

Writes are fenced: once the operator has a leader election (`fence_writes`), every write but
the election's own is refused (`NotLeadingError`, nothing sent) unless it is sent before this
replica's fence, and is given up at the fence at the latest; `observe_refused_writes` is told of
each such refusal. The election's requests have a connection of their own, never queued behind
the writes.
Requests go through the asyncio client of the official `kubernetes` package, so handlers never
block the event loop.
Failures raise `KubeApiError` with the API server's own message, chained to the client's
exception. No retries here: the caller (a kopf handler, a watch loop) owns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
import itertools
import json
import math
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

from stepline.errors import ConfigurationError, KubeApiError, KubeConflictError, NotLeadingError

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
# Connections to the API server at most; further requests wait for a free one. Each TLS
# connection holds the buffers of asyncio's SSL protocol and of OpenSSL, and the client's
# default of 100 is what a burst of reconciles then opens and keeps: tens of MiB for nothing
# (bench/steps/RESULTS.md), as a handful of connections already keeps an API server busy.
CONNECTIONS = 8
# Connections for Events, beside those: an Event waits neither for the writes of a burst nor
# behind the status writes of every run under way, and takes no connection from them.
EVENT_CONNECTIONS = 4
# A connection for the leader election's Lease, beside those: a renewal waits for nothing.
LEASE_CONNECTIONS = 1
# Methods that write.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Told of each request once answered: its verb, resource and HTTP status (`observe_requests`).
RequestObserver = Callable[[str, str, int], None]
# Told of each write refused as this replica does not lead: its resource (`observe_refused_writes`).
RefusalObserver = Callable[[str], None]
# Connections for token and access reviews (invoke's authorization), beside those: an
# invoke waits for its reviews, so they wait neither behind the writes nor behind Events.
REVIEW_CONNECTIONS = 4
# Priorities of requests waiting for a connection: status writes after everything else.
FIRST, LATER = 0, 1
# Objects per page of a list: a burst of memory bounded by a page, not by the whole collection.
LIST_PAGE = 500
# Subtrees of an object nested deeper than this are read as null (`decode_api_json`). The API
# server admits a free-form field (a WorkflowRun's input) 10,000 levels deep; nothing Stepline
# reads needs more than 64 (deeper input fails its run) plus the few levels of its object.
MAX_DECODED_DEPTH = 256
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
# A pod's own namespace, beside its ServiceAccount token.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# The plural (URL) names of the kinds Stepline reads or writes by manifest.
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "EndpointSlice": "endpointslices",
    "ServiceStep": "servicesteps",
    "Workflow": "workflows",
    "WorkflowRun": "workflowruns",
    "WorkflowSchedule": "workflowschedules",
    "Approval": "approvals",
    "MutatingAdmissionPolicy": "mutatingadmissionpolicies",
    "MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
    "Event": "events",
    "Lease": "leases",
    "TokenReview": "tokenreviews",
    "SubjectAccessReview": "subjectaccessreviews",
}


def resource_path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None
) -> str:
    """The URL path of an object (or of its collection, without a name): namespaced, or
    cluster-scoped with `namespace` None."""
    path = collection_path(api_version, kind, namespace)
    return f"{path}/{name}" if name else path


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """The URL path of a kind's objects in one namespace, or in all of them (None)."""
    try:
        plural = _PLURALS[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not one Stepline manages") from None
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace is None:
        return f"{prefix}/{plural}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def request_resource(path: str) -> tuple[str, bool]:
    """The resource a request's path names, with its subresource (`workflowruns/status`), and
    whether it names a collection rather than one object."""
    parts = path.strip("/").split("/")
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]  # api/v1, apis/<group>/<version>
    if len(parts) >= 3 and parts[0] == "namespaces":
        parts = parts[2:]
    if not parts or not parts[0]:
        return "", True
    resource = parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"
    return resource, len(parts) == 1


class KubeApi:
    """Asynchronous access to the Kubernetes API for Stepline's own writes."""

    def __init__(
        self,
        api_client: aio_client.ApiClient,
        *,
        field_manager: str,
        timeout: float,
        watch_client: aio_client.ApiClient | None = None,
    ) -> None:
        self._api = api_client
        # A watch holds its connection for minutes: not one of the pool's CONNECTIONS.
        self._watch_api = watch_client or api_client
        self._field_manager = field_manager
        self._timeout = timeout
        # Requests wait here for one of the connections, so that `timeout` times the API
        # server's answer, not a queue of our own (a burst of reconciles is thousands deep).
        self._slots = Slots(CONNECTIONS)
        self._event_slots = Slots(EVENT_CONNECTIONS)
        self._review_slots = Slots(REVIEW_CONNECTIONS)
        self._lease_slots = Slots(LEASE_CONNECTIONS)
        # The monotonic time until which this replica may write (`fence_writes`); None: always.
        self._fence: Callable[[], float] | None = None
        self._on_request: RequestObserver | None = None
        self._on_refusal: RefusalObserver | None = None

    def observe_requests(self, observer: RequestObserver) -> None:
        """From now on, `observer(verb, resource, status)` is told of every request once it is
        answered: its verb as the API server counts it (GET, LIST, WATCH, POST, PATCH, PUT,
        DELETE), its resource (`workflowruns/status`, `leases`) and the HTTP status (0: no
        answer). For the operator's request counter; it must not raise."""
        self._on_request = observer

    def _observe(self, method: str, path: str, status: int, *, watch: bool = False) -> None:
        if self._on_request is not None:
            resource, collection = request_resource(path)
            verb = "WATCH" if watch else "LIST" if method == "GET" and collection else method
            self._on_request(verb, resource, status)

    def observe_refused_writes(self, observer: RefusalObserver) -> None:
        """From now on, `observer(resource)` is told of every write refused with
        `NotLeadingError`: not sent as it came past the fence, or given up at the fence while
        under way (that one is also told to `observe_requests`, with status 0). `resource` as
        there (`workflowruns/status`). For the operator's refusal counter; it must not raise."""
        self._on_refusal = observer

    def _refused(self, method: str, path: str, why: str) -> NotLeadingError:
        """The error of a write refused at the fence, its observer told."""
        if self._on_refusal is not None:
            self._on_refusal(request_resource(path)[0])
        return NotLeadingError(f"{method} {path}: {why}")

    def fence_writes(self, fence: Callable[[], float]) -> None:
        """From now on, a write is sent only before `fence()` (a `time.monotonic()` time, read
        as the request gets its connection) and given up at it; else `NotLeadingError`."""
        self._fence = fence

    def lease_requests(self) -> LeaseRequests:
        """The requests of the leader election (`election.LeaseApi`): on a connection of their
        own, and not fenced, as they are what moves the fence."""
        return LeaseRequests(self)

    @classmethod
    async def connect(
        cls,
        *,
        field_manager: str,
        timeout: float,
        kubeconfig: str | None = None,
        user_agent: str | None = None,
    ) -> KubeApi:
        """In a pod: its service account; elsewhere: the kubeconfig (`kubeconfig`, else
        $KUBECONFIG or ~/.kube/config). `user_agent` names the replica in the API server's
        audit log."""
        configuration = aio_client.Configuration()
        configuration.connection_pool_maxsize = CONNECTIONS + EVENT_CONNECTIONS + LEASE_CONNECTIONS
        configuration.connection_pool_maxsize += REVIEW_CONNECTIONS
        try:
            if kubeconfig is not None:
                raise aio_config.ConfigException("a kubeconfig is given")
            aio_config.load_incluster_config(client_configuration=configuration)
        except aio_config.ConfigException:
            if not kubeconfig_exists(kubeconfig):
                where = kubeconfig or aio_config.KUBE_CONFIG_DEFAULT_LOCATION
                raise ConfigurationError(
                    f"no Kubernetes credentials: not in a pod, and no kubeconfig at {where}"
                ) from None
            try:
                await aio_config.load_kube_config(
                    config_file=kubeconfig, client_configuration=configuration
                )
            except (aio_config.ConfigException, OSError) as exc:
                raise ConfigurationError(
                    f"no Kubernetes credentials: not in a pod, and no usable kubeconfig ({exc})"
                ) from exc
        watching = copy.deepcopy(configuration)
        watching.connection_pool_maxsize = 0  # one connection per watch, however many
        clients = aio_client.ApiClient(configuration), aio_client.ApiClient(watching)
        if user_agent is not None:
            for client in clients:
                client.user_agent = user_agent
        return cls(
            clients[0], field_manager=field_manager, timeout=timeout, watch_client=clients[1]
        )

    @contextlib.asynccontextmanager
    async def acting_as(self, token: str) -> AsyncIterator[KubeApi]:
        """A client of the same API server that sends `token` as its only credential (no client
        certificate, no refreshed service-account token) and is not fenced: what the web view
        does for a signed-in user is that user's request, authorised and audited as theirs.
        Closed when the block ends; the token is never logged."""
        configuration = copy.copy(self._api.configuration)
        configuration.api_key = {"BearerToken": f"Bearer {token}"}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
        configuration.cert_file = configuration.key_file = None
        configuration.username = configuration.password = ""
        client = aio_client.ApiClient(configuration)
        client.user_agent = self._api.user_agent
        user = KubeApi(client, field_manager=self._field_manager, timeout=self._timeout)
        try:
            yield user
        finally:
            await user.close()

    @property
    def server(self) -> str:
        """The API server's address, as the configuration names it: for messages."""
        return str(getattr(self._api.configuration, "host", "") or "the API server")

    async def close(self) -> None:
        await self._api.close()
        if self._watch_api is not self._api:
            await self._watch_api.close()

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of `manifest` as our field manager, taking over conflicting fields
        (we own what we declare; fields we leave out stay with whoever set them)."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        query = [("fieldManager", self._field_manager), ("force", "true")]
        return await self._request(
            "PATCH", path, body=manifest, query=query, content_type=APPLY_PATCH
        )

    async def post_event(self, namespace: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Creates a core/v1 Event in `namespace`, on a connection kept for Events."""
        path = collection_path("v1", "Event", namespace)
        return await self._request("POST", path, body=event, content_type=JSON, events=True)

    async def review(
        self,
        api_version: str,
        kind: str,
        spec: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Creates a review (TokenReview, SubjectAccessReview: cluster-scoped, answered and never
        stored) with `spec` and returns the API server's `status`, on connections kept for
        reviews. It asks a question and changes nothing, so it is not fenced as a write: a
        standby serves invoke too. `timeout`: see `_request`."""
        path = collection_path(api_version, kind, None)
        body = {"apiVersion": api_version, "kind": kind, "spec": spec}
        answer = await self._request(
            "POST", path, body=body, content_type=JSON, reviews=True, timeout=timeout
        )
        status = answer.get("status")
        return status if isinstance(status, dict) else {}

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Deletes an object (dependents in the background); False when it was already gone."""
        path = resource_path(api_version, kind, namespace, name)
        body = {"propagationPolicy": "Background"}
        try:
            await self._request("DELETE", path, body=body, content_type=JSON)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def get(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        timeout: float | None = None,
        lease: bool = False,
    ) -> dict[str, Any] | None:
        """The object (cluster-scoped: `namespace` None), or None when it does not exist.
        `timeout`, `lease`: see `_request`."""
        path = resource_path(api_version, kind, namespace, name)
        try:
            return await self._request("GET", path, timeout=timeout, lease=lease)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(
        self, manifest: Mapping[str, Any], *, timeout: float | None = None, lease: bool = False
    ) -> dict[str, Any]:
        """Creates the object (POST); a 409 (`KubeConflictError`) if it exists already."""
        path = collection_path(
            manifest["apiVersion"], manifest["kind"], manifest["metadata"]["namespace"]
        )
        return await self._request(
            "POST", path, body=manifest, content_type=JSON, timeout=timeout, lease=lease
        )

    async def replace(
        self, manifest: Mapping[str, Any], *, timeout: float | None = None, lease: bool = False
    ) -> dict[str, Any]:
        """Replaces the object (PUT) with `manifest`, whose `metadata.resourceVersion` is the
        version it was read at: a 409 (`KubeConflictError`) when someone wrote it since, a 404
        when it is gone. Never overwrites a version it did not read."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        return await self._request(
            "PUT", path, body=manifest, content_type=JSON, timeout=timeout, lease=lease
        )

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patches the status subresource of one of our objects. It waits for the other
        requests queued meanwhile: reporting on objects comes after making them. With
        `resource_version`, only that version is patched: a 409 (`KubeConflictError`) if the
        object changed since (the API server takes a resourceVersion in a merge patch as a
        precondition)."""
        path = resource_path(api_version, kind, namespace, name) + "/status"
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._request(
            "PATCH", path, body=body, content_type=MERGE_PATCH, priority=LATER
        )

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of one object, outside its status (a command's
        `spec.cancel`); a 404 when it is gone."""
        path = resource_path(api_version, kind, namespace, name)
        return await self._request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def after_queued_requests(self) -> None:
        """Returns once every request queued now, other than status writes, has been sent: a
        status computed after this reflects more of what they do."""
        async with self._slots.turn(LATER):
            pass

    async def list_page(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        continue_token: str | None = None,
        limit: int = LIST_PAGE,
    ) -> dict[str, Any]:
        """One page (`limit` objects at most) of a kind's objects matching `label_selector` (if
        any), in one namespace or all (None); `metadata.continue` names the next page, if any."""
        query = [("limit", str(limit))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if continue_token:
            query.append(("continue", continue_token))
        path = collection_path(api_version, kind, namespace)
        return await self._request("GET", path, query=query)

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The watch events (`{"type", "object"}`, bookmarks included) of a kind's objects
        matching `label_selector` and `field_selector` (`metadata.name=x`: one object), if given,
        after `resource_version`, as they arrive, until the
        API server ends the watch (after about `timeout_seconds`). Raises KubeApiError when it
        cannot be opened or breaks off (a 410 is `status=410`: the version is too old, list
        again)."""
        path = collection_path(api_version, kind, namespace)
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        serialized = await self._watch_api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query,
            header_params={"Accept": JSON},
            auth_settings=["BearerToken"],
        )
        # No total: the watch lasts as long as the server keeps it. A silent connection for
        # longer than the server's own timeout, with some slack, is a dead one.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=timeout_seconds + self._timeout
        )
        try:
            response = await self._watch_api.call_api(*serialized, _request_timeout=timeout)
        except (aiohttp.ClientError, TimeoutError, aio_client.ApiException) as exc:
            self._observe("GET", path, 0, watch=True)
            raise KubeApiError(f"GET {path} (watch): no answer ({exc})", status=0) from exc
        self._observe("GET", path, response.status, watch=True)
        try:
            if response.status >= 400:
                raise _api_error("GET", f"{path} (watch)", response.status, await response.read())
            async for line in _lines(response.response.content):
                yield parse_watch_event(path, line)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeApiError(f"GET {path} (watch): broken off ({exc})", status=0) from exc
        finally:
            response.response.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
        priority: int = FIRST,
        events: bool = False,
        reviews: bool = False,
        lease: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request. Without `timeout`, the client's timeout times the API server's answer
        once a connection is free; with it, the whole request, the wait for a connection
        included, is given up after `timeout` seconds (a caller with a deadline of its own).
        A write other than the Lease's is fenced (module docstring). `lease`: on the Lease's
        own connection."""
        headers = {"Accept": JSON}
        if content_type:
            headers["Content-Type"] = content_type
        serialized = await self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        deadline: contextlib.AbstractAsyncContextManager[object] = (
            contextlib.nullcontext() if timeout is None else asyncio.timeout(timeout)
        )
        slots = self._lease_slots if lease else self._event_slots if events else self._slots
        slots = self._review_slots if reviews else slots
        fenced = self._fence is not None and method in WRITES and not lease
        fenced = fenced and not reviews  # a review writes nothing
        cut_at_fence = False  # the request's time ends at the fence rather than its timeout
        try:
            async with deadline, slots.turn(priority):
                request_timeout = self._timeout if timeout is None else timeout
                if fenced:
                    left = self._time_to_fence(method, path)
                    cut_at_fence, request_timeout = (
                        left < request_timeout,
                        min(request_timeout, left),
                    )
                async with asyncio.timeout(request_timeout) if fenced else contextlib.nullcontext():
                    response = await self._api.call_api(
                        *serialized, _request_timeout=request_timeout
                    )
                    data = await response.read()
        except (aiohttp.ClientError, TimeoutError, aio_client.ApiException) as exc:
            self._observe(method, path, 0)
            if cut_at_fence and isinstance(exc, TimeoutError):
                raise self._refused(method, path, "given up at this replica's fence") from exc
            reason = str(exc) or type(exc).__name__  # a timeout says nothing of itself
            raise KubeApiError(f"{method} {path}: no answer ({reason})", status=0) from exc
        self._observe(method, path, response.status)
        if response.status >= 400:
            raise _api_error(method, path, response.status, data)
        try:
            decoded: dict[str, Any] = decode_api_json(data) if data else {}
        except ValueError as exc:
            raise KubeApiError(
                f"{method} {path}: the answer is not JSON ({exc})", status=0
            ) from exc
        return decoded

    def _time_to_fence(self, method: str, path: str) -> float:
        """Seconds left before the fence; `NotLeadingError` if none."""
        fence = self._fence() if self._fence is not None else math.inf
        left = fence - time.monotonic()
        if left <= 0:
            raise self._refused(method, path, "not sent, this replica does not lead")
        return left


def kubeconfig_exists(kubeconfig: str | None = None) -> bool:
    """Whether `kubeconfig`, else one of the files $KUBECONFIG lists (else ~/.kube/config), is
    there: the client would otherwise log that it is not, and fail saying something else."""
    paths = kubeconfig or aio_config.KUBE_CONFIG_DEFAULT_LOCATION
    return any(Path(path).expanduser().is_file() for path in paths.split(os.pathsep) if path)


def default_namespace(kubeconfig: str | None = None) -> str:
    """The namespace a command works in when none is given: the kubeconfig's current context's
    (`kubeconfig`, else $KUBECONFIG or ~/.kube/config), else a pod's own, else `default`."""
    try:
        if not kubeconfig_exists(kubeconfig):
            raise aio_config.ConfigException("no kubeconfig")
        _, current = aio_config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (current or {}).get("context", {}).get("namespace")
    except (aio_config.ConfigException, OSError):
        namespace = None
    if isinstance(namespace, str) and namespace:
        return namespace
    with contextlib.suppress(OSError):
        return Path(SERVICE_ACCOUNT_NAMESPACE).read_text(encoding="utf-8").strip() or "default"
    return "default"


async def kubeconfig_token(kubeconfig: str | None = None) -> str | None:
    """The bearer token the kubeconfig's current user authenticates with (`token`, `tokenFile`,
    or what its exec plugin prints), or None: no kubeconfig, or a user with client certificates
    only."""
    configuration = aio_client.Configuration()
    if not kubeconfig_exists(kubeconfig):
        return None
    try:
        await aio_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    except (aio_config.ConfigException, OSError):
        return None
    value = configuration.api_key.get("BearerToken")
    if not isinstance(value, str) or not value.startswith("Bearer "):
        return None  # basic authentication, or none
    return value.removeprefix("Bearer ").strip() or None


class LeaseRequests:
    """`KubeApi.lease_requests()`: the `election.LeaseApi` requests, with `lease` set."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, timeout: float | None
    ) -> dict[str, Any] | None:
        return await self._kube.get(api_version, kind, namespace, name, timeout=timeout, lease=True)

    async def create(self, manifest: Mapping[str, Any], *, timeout: float | None) -> dict[str, Any]:
        return await self._kube.create(manifest, timeout=timeout, lease=True)

    async def replace(
        self, manifest: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        return await self._kube.replace(manifest, timeout=timeout, lease=True)


class Slots:
    """`count` slots, each given to the waiter of the lowest priority number first, then in the
    order they came."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def turn(self, priority: int) -> AsyncIterator[None]:
        if self._free and not self._waiters:
            self._free -= 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._arrivals), waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed over as this waiter was cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of a stream as they complete, however long (an event is one line of JSON, its
    object's size: aiohttp's readline() would refuse those above its buffer's limit)."""
    pending = bytearray()
    async for chunk in stream.iter_any():
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            if pending.strip():
                yield bytes(pending)
            pending.clear()
            start = end + 1
        pending += chunk[start:]
    if pending.strip():
        yield bytes(pending)


def parse_watch_event(path: str, line: bytes) -> dict[str, Any]:
    """A watch event; an ERROR event carries a Status (410: the version is gone)."""
    try:
        event = decode_api_json(line)
    except ValueError as exc:
        raise KubeApiError(f"GET {path} (watch): not JSON: {line[:200]!r}", status=0) from exc
    if not isinstance(event, dict):
        raise KubeApiError(f"GET {path} (watch): not an event: {line[:200]!r}", status=0)
    if event.get("type") == "ERROR":
        status = event.get("object") or {}
        code = int(status.get("code") or 0) if isinstance(status, dict) else 0
        message = status.get("message", "") if isinstance(status, dict) else ""
        raise KubeApiError(f"GET {path} (watch): {code} {message}".strip(), status=code)
    return event


def decode_api_json(data: bytes) -> Any:
    """JSON from the API server, decoded without recursing in Python (orjson). An object nested
    deeper than `MAX_DECODED_DEPTH` has its deeper subtrees read as null, so that one such
    object neither fails a whole list nor exhausts the stack. `ValueError` if it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if not str(exc).startswith("depth limit exceeded"):  # orjson stops at 1,024 levels
            raise
    return orjson.loads(prune_deep_json(data, MAX_DECODED_DEPTH))


def prune_deep_json(data: bytes, limit: int) -> bytes:
    """`data` with every array or object nested deeper than `limit` replaced by null; strings
    are skipped whole, so brackets inside them do not count."""
    parts: list[bytes] = []
    depth, kept, cut_from = 0, 0, -1
    for token in _STRING_OR_BRACKET.finditer(data):
        first = token[0][:1]
        if first in (b"[", b"{"):
            depth += 1
            if depth == limit + 1:
                cut_from = token.start()
        elif first in (b"]", b"}"):
            if depth == limit + 1:
                parts += [data[kept:cut_from], b"null"]
                kept = token.end()
            depth -= 1
    parts.append(data[kept:])
    return b"".join(parts)


def _api_error(method: str, path: str, status: int, data: bytes) -> KubeApiError:
    """The API server's Status message, as a KubeApiError."""
    try:
        payload = json.loads(data)
        message, reason = str(payload.get("message", "")), str(payload.get("reason", ""))
    except ValueError:
        message, reason = data[:500].decode(errors="replace"), ""
    error = KubeConflictError if status == 409 else KubeApiError
    return error(f"{method} {path}: {status} {message}".strip(), status=status, reason=reason)
