"""Starting and stopping the operator: kopf's settings from ours, the shared clients, `run()`.

kopf keeps its bookkeeping under our prefix (`stepline.io/…` annotations and finalizer). Peering
is off (one replica) unless a peering name is configured for HA. No handler here touches user
objects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import kopf

from stepline.controllers.runtime import Runtime
from stepline.kube import KubeApi
from stepline.settings import Settings

PREFIX = "stepline.io"


def configure_kopf(settings: Settings, kopf_settings: kopf.OperatorSettings) -> None:
    kopf_settings.persistence.finalizer = f"{PREFIX}/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    kopf_settings.watching.server_timeout = settings.watch_server_timeout_seconds
    kopf_settings.watching.client_timeout = settings.watch_client_timeout_seconds
    kopf_settings.watching.connect_timeout = 30
    kopf_settings.batching.worker_limit = settings.worker_limit
    kopf_settings.networking.request_timeout = settings.api_timeout_seconds
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.peering.standalone = settings.peering is None
    kopf_settings.peering.clusterwide = settings.clusterwide
    if settings.peering is not None:
        kopf_settings.peering.name = settings.peering
        kopf_settings.peering.mandatory = True


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo["settings"]
    configure_kopf(config, settings)
    kube = await KubeApi.connect(
        field_manager=config.field_manager, timeout=config.api_timeout_seconds
    )
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
    memo["runtime"] = Runtime(settings=config, kube=kube, http=http)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.http.aclose()
        await runtime.kube.close()


def run(settings: Settings) -> None:
    """Runs the operator until it is stopped (SIGINT/SIGTERM)."""
    # Importing the handler modules registers their handlers with kopf.
    from stepline.controllers import servicesteps, workflows  # noqa: F401, PLC0415

    kopf.configure(log_format=kopf.LogFormat.PLAIN)
    liveness = (
        f"http://{settings.http_host}:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None
    )
    asyncio.run(
        kopf.operator(
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            memo=kopf.Memo(settings=settings),
            liveness_endpoint=liveness,
            standalone=settings.peering is None,
            peering_name=settings.peering,
        )
    )
