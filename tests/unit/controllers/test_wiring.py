"""configure_kopf(), the event loop and the cleanup handler: kopf's settings from Stepline's,
the loop it runs in, and what stopping closes, checked without starting an operator."""

from __future__ import annotations

import asyncio
import logging
import math
import types

import aiohttp
import kopf
import pytest
import uvloop

from stepline.controllers.wiring import (
    configure_kopf,
    is_not_a_handler_success,
    meter_kube,
    new_event_loop,
    quiet_routine_logs,
    register_handlers,
    replica_readiness,
    stop,
)
from stepline.errors import NotLeadingError
from stepline.gateway.serving import HttpServer, Request, Response
from stepline.kube import KubeApi
from stepline.observability import Metrics
from stepline.settings import Settings
from tests.unit.test_kube_requests import STATUS, ApiClient


def configured(**settings: object) -> kopf.OperatorSettings:
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(Settings(**settings), kopf_settings)  # type: ignore[arg-type]
    return kopf_settings


def test_normal_events_such_as_applied_are_posted_not_only_warnings() -> None:
    posting = configured().posting
    assert posting.enabled
    assert posting.level <= logging.INFO
    # Log lines stay logs: only explicit kopf.info/kopf.warn calls become Events.
    assert not posting.loggers


def test_kopfs_bookkeeping_lives_under_the_stepline_prefix() -> None:
    persistence = configured().persistence
    assert persistence.finalizer == "stepline.io/finalizer"
    progress = persistence.progress_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "stepline.io"
    diffbase = persistence.diffbase_storage
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert diffbase.prefix == "stepline.io"


def test_kopf_runs_standalone_on_every_replica_the_lease_says_who_writes() -> None:
    # kopf's peering would pause a replica: its watches closed, its indexes stale.
    assert configured().peering.standalone


def test_kopf_has_no_change_handlers_so_it_writes_nothing_to_our_objects() -> None:
    # Change handlers (create/update/resume/delete) make kopf write diff-base and progress
    # annotations, and finalizers: on a standby too. Index and event handlers write nothing.
    register_handlers()

    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []
    assert registry._spawning.get_all_handlers() == []  # daemons and timers: finalizers
    assert len(registry._watching.get_all_handlers()) >= 4


def test_watches_follow_the_settings() -> None:
    kopf_settings = configured(watch_server_timeout_seconds=120, watch_client_timeout_seconds=150)
    assert kopf_settings.watching.server_timeout == 120
    assert kopf_settings.watching.client_timeout == 150


def test_kopfs_object_workers_are_not_limited_whatever_the_worker_limit() -> None:
    # A limit hangs kopf at start-up on more indexed objects than workers (kopf#1243);
    # STEPLINE_WORKER_LIMIT bounds the ServiceStep reconciles instead.
    assert configured(worker_limit=8).queueing.worker_limit is None


def test_an_idle_object_worker_ends_within_a_second() -> None:
    # Each idle worker keeps its task and the last body it saw until the idle timeout.
    assert configured().queueing.idle_timeout <= 1.0


def test_kopf_watches_none_of_the_kinds_the_operator_follows_itself() -> None:
    # servicesteps/owned.py watches them; a kopf handler for one would bring back kopf's per-object
    # memory and event queues for 3,000 objects at 1,000 steps, and a second watch of each.
    register_handlers()

    registry = kopf.get_default_registry()
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._changing.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
    ]
    watched = {handler.selector.any_name for handler in handlers if handler.selector}
    assert "servicesteps" in watched
    assert not watched & {"deployments", "services", "horizontalpodautoscalers"}


def test_handler_successes_are_not_logged_but_failures_and_summaries_are() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)

    assert not is_not_a_handler_success(record("Handler 'follow_deployment' succeeded."))
    assert is_not_a_handler_success(record("Creation is processed: 1 succeeded; 0 failed."))
    failed = "Handler 'reconcile_service_step' failed temporarily: 503"
    assert is_not_a_handler_success(record(failed))


def test_the_operator_runs_in_uvloops_event_loop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


async def test_stopping_finishes_an_invoke_under_way_then_closes_the_http_server() -> None:
    # The operator's cleanup handler, given the HTTP server the startup handler started.
    answering = asyncio.Event()

    async def slow(request: Request) -> Response:
        answering.set()
        await asyncio.sleep(0.2)
        return Response(200, b'{"output": {}}')

    server = HttpServer(slow, max_body_bytes=1024)
    await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/v1/namespaces/shop/workflows/trade:invoke"
    async with aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.post(url, data=b"{}"))
        await answering.wait()
        await stop(memo=kopf.Memo(http_server=server))
        async with await call as response:
            assert response.status == 200
            assert await response.json() == {"output": {}}
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(url, data=b"{}")


def test_the_liveness_endpoints_access_log_is_quiet_and_handler_successes_are_filtered() -> None:
    access, objects = logging.getLogger("aiohttp.access"), logging.getLogger("kopf.objects")
    requests = logging.getLogger("httpx")
    levels, filters = (access.level, requests.level), list(objects.filters)
    try:
        quiet_routine_logs()
        for quiet in (access, requests):
            assert not quiet.isEnabledFor(logging.INFO)
            assert quiet.isEnabledFor(logging.WARNING)
        assert is_not_a_handler_success in objects.filters
    finally:
        access.setLevel(levels[0])
        requests.setLevel(levels[1])
        objects.filters[:] = filters


def test_a_replica_is_ready_once_its_caches_are_warm_leader_or_standby() -> None:
    leading = [False]
    runtime = types.SimpleNamespace(caches_warm=asyncio.Event(), leads=lambda: leading[0])
    cold = replica_readiness(runtime)  # type: ignore[arg-type]
    runtime.caches_warm.set()
    standby = replica_readiness(runtime)  # type: ignore[arg-type]
    leading[0] = True
    leader = replica_readiness(runtime)  # type: ignore[arg-type]

    assert (cold.ready, cold.role) == (False, "standby")
    assert (standby.ready, standby.role) == (True, "standby")
    assert (leader.ready, leader.role) == (True, "leader")


async def test_the_kube_clients_requests_and_the_writes_it_refuses_past_the_fence_are_counted() -> (
    None
):
    metrics = Metrics()
    kube = KubeApi(ApiClient(), field_manager="stepline", timeout=30)  # type: ignore[arg-type]
    meter_kube(kube, metrics)

    await kube.get("stepline.io/v1alpha1", "WorkflowRun", "shop", "order-1")
    kube.fence_writes(lambda: -math.inf)  # a standby
    with pytest.raises(NotLeadingError):
        await kube.patch_status(*STATUS)

    requests = {"verb": "GET", "resource": "workflowruns", "code_class": "2xx"}
    assert metrics.registry.get_sample_value("stepline_api_requests_total", requests) == 1
    refused = {"resource": "workflowruns/status"}
    assert metrics.registry.get_sample_value("stepline_writes_refused_total", refused) == 1
