"""The one place Stepline talks to the Kubernetes API; kopf does its own watching and patching of
the objects it hands to handlers.

What it does: server-side apply of the objects Stepline owns under one field manager, deletion,
and merge patches of our kinds' status. Requests go through the asyncio client of the official
`kubernetes` package, so handlers never block the event loop. Failures raise `KubeApiError` with
the API server's own message, chained to the client's exception. No retries here: the caller (a
kopf handler) owns them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

from stepline.errors import ConfigurationError, KubeApiError, KubeConflictError

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
# Connections to the API server at most; further requests wait for a free one. Each TLS
# connection holds some 300 KiB (buffers of asyncio's SSL protocol and of OpenSSL), and the
# client's default of 100 is what a burst of reconciles then opens and keeps: 30 MiB for
# nothing, as a handful of connections already keeps an API server busy.
CONNECTIONS = 8

# The plural (URL) names of the kinds Stepline reads or writes by manifest.
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "ServiceStep": "servicesteps",
    "Workflow": "workflows",
    "WorkflowRun": "workflowruns",
}


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The URL path of a namespaced object (or of its collection, without a name)."""
    try:
        plural = _PLURALS[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not one Stepline manages") from None
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class KubeApi:
    """Asynchronous access to the Kubernetes API for Stepline's own writes."""

    def __init__(
        self, api_client: aio_client.ApiClient, *, field_manager: str, timeout: float
    ) -> None:
        self._api = api_client
        self._field_manager = field_manager
        self._timeout = timeout

    @classmethod
    async def connect(cls, *, field_manager: str, timeout: float) -> KubeApi:
        """In a pod: its service account; elsewhere: the kubeconfig ($KUBECONFIG or ~/.kube)."""
        configuration = aio_client.Configuration()
        configuration.connection_pool_maxsize = CONNECTIONS
        try:
            aio_config.load_incluster_config(client_configuration=configuration)
        except aio_config.ConfigException:
            try:
                await aio_config.load_kube_config(client_configuration=configuration)
            except (aio_config.ConfigException, OSError) as exc:
                raise ConfigurationError(
                    f"no Kubernetes credentials: not in a pod, and no usable kubeconfig ({exc})"
                ) from exc
        return cls(
            aio_client.ApiClient(configuration), field_manager=field_manager, timeout=timeout
        )

    async def close(self) -> None:
        await self._api.close()

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
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", resource_path(api_version, kind, namespace, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patches the status subresource of one of our objects."""
        path = resource_path(api_version, kind, namespace, name) + "/status"
        return await self._request("PATCH", path, body={"status": status}, content_type=MERGE_PATCH)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
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
        try:
            response = await self._api.call_api(*serialized, _request_timeout=self._timeout)
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError, aio_client.ApiException) as exc:
            raise KubeApiError(f"{method} {path}: no answer ({exc})", status=0) from exc
        if response.status >= 400:
            raise _api_error(method, path, response.status, data)
        decoded: dict[str, Any] = json.loads(data) if data else {}
        return decoded


def _api_error(method: str, path: str, status: int, data: bytes) -> KubeApiError:
    """The API server's Status message, as a KubeApiError."""
    try:
        payload = json.loads(data)
        message, reason = str(payload.get("message", "")), str(payload.get("reason", ""))
    except ValueError:
        message, reason = data[:500].decode(errors="replace"), ""
    error = KubeConflictError if status == 409 else KubeApiError
    return error(f"{method} {path}: {status} {message}".strip(), status=status, reason=reason)
