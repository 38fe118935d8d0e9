"""WorkflowRuns listed and then watched, through `kube.KubeApi`: what `stepline runs [-w]` and
`stepline start --wait` read.

`list_runs` reads every page of a namespace's runs (or all namespaces'). `watch_runs` follows
them from a list's resourceVersion and goes on across what ends a watch in normal life: the API
server closing it after its timeout (watched again from the last version seen), a version too
old to watch from (410: listed again, and every run listed passed on as MODIFIED) and a
connection broken off (tried again after a second, `RECONNECTS` times in a row at most, then
the `KubeApiError` is raised). Bookmarks move the version and are not passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from stepline.api import API_VERSION
from stepline.errors import KubeApiError
from stepline.kube import KubeApi

KIND = "WorkflowRun"
# Seconds the API server keeps one watch open; then it is opened again. Short enough that a
# proxy cutting idle connections does not, long enough to cost nothing.
WATCH_SECONDS = 240
RECONNECTS = 5
RECONNECT_PAUSE = 1.0


async def list_runs(kube: KubeApi, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
    """Every run of `namespace` (None: of all namespaces), and the list's resourceVersion."""
    runs: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = await kube.list_page(API_VERSION, KIND, namespace, continue_token=token)
        runs += [item for item in page.get("items") or [] if isinstance(item, dict)]
        meta = page.get("metadata") or {}
        token = meta.get("continue") or None
        if token is None:
            return runs, str(meta.get("resourceVersion") or "")


async def watch_runs(
    kube: KubeApi,
    namespace: str | None,
    *,
    resource_version: str,
    field_selector: str | None = None,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(ADDED | MODIFIED | DELETED, run) for each change after `resource_version`, for ever."""
    version, failures = resource_version, 0
    while True:
        try:
            async for event in kube.watch(
                API_VERSION,
                KIND,
                namespace,
                field_selector=field_selector,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
            ):
                failures = 0
                kind, body = str(event.get("type")), event.get("object") or {}
                version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    yield kind, body
        except KubeApiError as exc:
            if exc.status == 410:
                runs, version = await _list_again(kube, namespace, field_selector)
                for run in runs:
                    yield "MODIFIED", run
                continue
            failures += 1
            if exc.status != 0 or failures > RECONNECTS:
                raise
            await asyncio.sleep(RECONNECT_PAUSE)


async def _list_again(
    kube: KubeApi, namespace: str | None, field_selector: str | None
) -> tuple[list[dict[str, Any]], str]:
    runs, version = await list_runs(kube, namespace)
    if field_selector is not None and field_selector.startswith("metadata.name="):
        name = field_selector.removeprefix("metadata.name=")
        runs = [run for run in runs if (run.get("metadata") or {}).get("name") == name]
    return runs, version
