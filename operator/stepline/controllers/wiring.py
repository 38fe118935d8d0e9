"""The operator's wiring: kopf's settings from ours, the shared clients, the controllers' tasks and
servers, and `run()`, which starts and stops it all.

kopf keeps its bookkeeping under our prefix (`stepline.io/…` annotations and finalizer), though
with only index and event handlers it writes none. kopf runs standalone on every replica (no
peering: a paused kopf would stop its watches and let its indexes go stale); which replica writes
is the Lease's to say (`leadership`). No handler here touches user objects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kopf

from stepline import __version__
from stepline.api import API_VERSION, Workflow
from stepline.controllers.approvals.verification import verify_policies_forever
from stepline.controllers.approvals.watch import follow_approvals
from stepline.controllers.background import cancel_detached
from stepline.controllers.election import LeaseElector, LeaseTimings, new_identity
from stepline.controllers.essences import EssenceDiffBaseStorage
from stepline.controllers.events import COMPONENT
from stepline.controllers.leadership import lead_forever
from stepline.controllers.runtime import Runtime
from stepline.controllers.servicesteps.endpoints import EndpointWatch
from stepline.controllers.servicesteps.owned import OwnedObjectWatch
from stepline.controllers.servicesteps.reconciler import (
    StepView,
    indexed,
    notice_owned_object,
    scale_steps_forever,
    step_view,
)
from stepline.controllers.workflowruns.history import RunIndex
from stepline.controllers.workflowruns.supervisor import RunSupervisor
from stepline.controllers.workflowruns.watch import follow_runs
from stepline.controllers.workflowschedules.runwatch import follow_scheduled_runs
from stepline.engine import (
    Balancer,
    Executor,
    Http1Transport,
    HttpxTransport,
    StepIndex,
    build_http_client,
)
from stepline.engine.loads import StepLoads
from stepline.engine.metering import MetricsObserver
from stepline.gateway.authorizing import build_authorizer
from stepline.gateway.invoking import Invoker
from stepline.gateway.server import (
    ReadinessReport,
    build_app,
    build_metrics_app,
    start_server,
)
from stepline.gateway.serving import HttpServer
from stepline.kube import KubeApi
from stepline.observability import Metrics
from stepline.observability.otlp import build_tracing
from stepline.observability.tracing import TraceIdLogFilter
from stepline.settings import Settings
from stepline.ui.catalog import Catalog
from stepline.ui.live import RunFeed

PREFIX = "stepline.io"


def configure_kopf(settings: Settings, kopf_settings: kopf.OperatorSettings) -> None:
    kopf_settings.persistence.finalizer = f"{PREFIX}/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    kopf_settings.persistence.diffbase_storage = EssenceDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    kopf_settings.watching.server_timeout = settings.watch_server_timeout_seconds
    kopf_settings.watching.client_timeout = settings.watch_client_timeout_seconds
    kopf_settings.watching.connect_timeout = 30
    # No limit on kopf's per-object workers (its default): with one, an operator starting on
    # more objects of an indexed kind than the limit hangs, each worker waiting for the others
    # to be indexed (kopf#1243). The work they start is bounded where it is done: ServiceStep
    # reconciles take one of settings.worker_limit slots (servicesteps/reconciler.py).
    kopf_settings.queueing.worker_limit = None
    # An idle per-object worker keeps its task and the last body it saw until this timeout.
    kopf_settings.queueing.idle_timeout = 0.5
    kopf_settings.networking.request_timeout = settings.api_timeout_seconds
    # Only explicit kopf.info/kopf.warn calls become Events (posting.loggers is off), and the
    # Normal ones (Applied, Corrected) are for users too: WARNING would drop them all.
    kopf_settings.posting.level = logging.INFO
    # kopf's Events and the operator's own (`events`) say they come from the same component.
    kopf_settings.posting.reporting_component = COMPONENT
    kopf_settings.posting.reporting_instance = socket.gethostname()
    kopf_settings.posting.event_name_prefix = f"{COMPONENT}-"
    # Without it, kopf would join a peering named "default" if kopf's peering CRDs exist.
    kopf_settings.peering.standalone = True
    kopf_settings.peering.clusterwide = settings.clusterwide


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config: Settings = memo["settings"]
    configure_kopf(config, settings)
    runtime = await build_runtime(config)
    memo["runtime"] = runtime
    memo["owned_objects"] = asyncio.create_task(
        watch_owned_objects(runtime, step_view(runtime, kwargs["servicesteps"])),
        name="owned object watches",
    )
    if config.balance_calls:
        memo["endpoint_slices"] = asyncio.create_task(
            watch_endpoint_slices(runtime), name="endpoint slice watches"
        )
    memo["scaling"] = asyncio.create_task(
        scale_steps_forever(runtime, step_view(runtime, kwargs["servicesteps"])),
        name="step scaling",
    )
    memo["supervisor"] = supervisor = RunSupervisor(
        runtime, find_workflow=_lookup(kwargs["workflows"])
    )
    runtime.approvals.on_decision = supervisor.wake  # a decided approval wakes its run
    runs = RunIndex(histories=runtime.runs.histories)
    feed = memo["run_feed"] = RunFeed() if config.ui else None
    memo["run_watch"] = asyncio.create_task(
        follow_runs(
            runtime, supervisor, index=runs, steps=kwargs["servicesteps"],
            also=feed.observe if feed is not None else None,
        ),
        name="run watch",
    )  # fmt: skip
    memo["scheduled_runs"] = asyncio.create_task(
        follow_scheduled_runs(runtime), name="scheduled run watch"
    )
    if not config.approvals:
        runtime.approvals.problem = "the operator runs with STEPLINE_APPROVALS=false"
    else:
        memo["approval_watch"] = asyncio.create_task(
            follow_approvals(runtime), name="Approval watch"
        )
        memo["approval_policies"] = asyncio.create_task(
            verify_policies_forever(runtime), name="Approval policy checks"
        )
    memo["events"] = asyncio.create_task(runtime.events.run(), name="events")
    memo["leading"] = asyncio.create_task(
        lead_forever(
            runtime,
            supervisor=supervisor,
            view=step_view(runtime, kwargs["servicesteps"]),
            workflows=kwargs["workflows"],
            runs=runs,
        ),
        name="leading",
    )
    authorizer = build_authorizer(config, runtime.kube)
    ui = None
    if feed is not None:
        # Loaded only when on: its pages, the command line's renderers, the actions' modules.
        from stepline.ui.app import build_ui  # noqa: PLC0415

        catalog = build_catalog(runtime, feed=feed, runs=runs, indexes=kwargs)
        ui = build_ui(catalog, authorizer=authorizer, kube=runtime.kube)
    memo["http_server"] = await start_server(
        build_app(
            invoker=build_invoker(runtime, kwargs["workflows"]),
            authorizer=authorizer,
            metrics=runtime.metrics,
            ui=ui,
        ),
        host=config.http_host,
        port=config.http_port,
    )
    memo["metrics_server"] = await start_server(
        build_metrics_app(metrics=runtime.metrics, readiness=lambda: replica_readiness(runtime)),
        host=config.http_host,
        port=config.metrics_port,
    )


def replica_readiness(runtime: Runtime) -> ReadinessReport:
    """Ready once the watch caches are warm (kopf's indexes shown to a handler, the run watch
    started): a standby serves invoke as the leader does. The role is the Lease's."""
    role = "leader" if runtime.leads() else "standby"
    if not runtime.caches_warm.is_set():
        return ReadinessReport(ready=False, role=role, detail="watch caches are still filling")
    detail = (
        "serving invoke and writing" if role == "leader" else "serving invoke; the leader writes"
    )
    return ReadinessReport(ready=True, role=role, detail=detail)


async def build_runtime(config: Settings) -> Runtime:
    identity = new_identity(config.pod_id)
    kube = await KubeApi.connect(
        field_manager=config.field_manager,
        timeout=config.api_timeout_seconds,
        user_agent=f"stepline/{__version__} ({identity})",
    )
    http = build_http_client()
    metrics = Metrics()
    meter_kube(kube, metrics)
    steps = StepIndex()
    transport = Http1Transport(delegate=HttpxTransport(http))
    balancer = Balancer()
    loads = StepLoads()
    tracing = build_tracing(
        config.tracing_endpoint, ratio=config.tracing_sampling_ratio,
        export_timeout=config.tracing_export_timeout_seconds, version=__version__,
        on_drop=metrics.record_spans_dropped,
    )  # fmt: skip
    executor = Executor(
        transport=transport,
        directory=steps,
        overrides=config.endpoint_overrides,
        observer=MetricsObserver(metrics),
        balancer=balancer if config.balance_calls else None,
        loads=loads,
        tracing=tracing,
    )
    elector = LeaseElector(
        kube.lease_requests(),
        namespace=config.lease_scope,
        name=config.lease_name,
        identity=identity,
        metrics=metrics,
        timings=LeaseTimings.from_settings(config),
    )
    kube.fence_writes(lambda: elector.fence)
    return Runtime(
        settings=config,
        kube=kube,
        http=http,
        metrics=metrics,
        executor=executor,
        steps=steps,
        transport=transport,
        elector=elector,
        balancer=balancer,
        loads=loads,
        tracing=tracing,
    )


def meter_kube(kube: KubeApi, metrics: Metrics) -> None:
    """Counts the operator's requests to the API server, and the writes refused at the fence as
    this replica does not lead."""
    kube.observe_requests(metrics.record_api_request)
    kube.observe_refused_writes(metrics.record_write_refused)


async def watch_owned_objects(runtime: Runtime, view: StepView) -> None:
    """Follows the steps' Deployments, Services and HPAs until the operator stops."""

    def react(kind: str, event_type: str, body: Mapping[str, Any], step_name: str) -> None:
        notice_owned_object(
            runtime, kind=kind, event_type=event_type, body=body, step_name=step_name, view=view
        )

    watch = OwnedObjectWatch(
        runtime.kube,
        states=runtime.servicesteps.owned,
        namespaces=runtime.settings.namespaces,
        react=react,
        timeout_seconds=runtime.settings.watch_server_timeout_seconds,
        on_event=lambda kind: runtime.metrics.mark_watch_event(kind=kind),
    )
    await watch.run()


async def watch_endpoint_slices(runtime: Runtime) -> None:
    """Follows the steps' EndpointSlices into the balancer until the operator stops."""
    watch = EndpointWatch(
        runtime.kube,
        balancer=runtime.balancer,
        namespaces=runtime.settings.namespaces,
        timeout_seconds=runtime.settings.watch_server_timeout_seconds,
        on_event=lambda kind: runtime.metrics.mark_watch_event(kind=kind),
    )
    await watch.run()


def _lookup(workflows: kopf.Index[Any, Any]) -> Callable[[str, str], Workflow | None]:
    """A look-up of the workflows index (kopf keeps it live) by namespace and name."""

    def find(namespace: str, name: str) -> Workflow | None:
        found = next(iter(workflows.get((namespace, name), ())), None)
        return found if isinstance(found, Workflow) else None

    return find


def build_catalog(
    runtime: Runtime, *, feed: RunFeed, runs: RunIndex, indexes: Mapping[str, Any]
) -> Catalog:
    """What the web view reads: kopf's indexes, the run index and feed, one GET of a run."""
    workflows, steps = indexes["workflows"], indexes["servicesteps"]

    def every_workflow() -> Iterator[Workflow]:
        for store in list(workflows.values()):
            yield from (found for found in store if isinstance(found, Workflow))

    async def read_run(namespace: str, name: str) -> dict[str, Any] | None:
        return await runtime.kube.get(API_VERSION, "WorkflowRun", namespace, name)

    return Catalog(
        workflows=every_workflow,
        workflow=_lookup(workflows),
        service_step=lambda namespace, name: indexed(steps, namespace, name),
        runs=runs,
        read_run=read_run,
        feed=feed,
        caches_warm=runtime.caches_warm.is_set,
        watched_namespaces=tuple(runtime.settings.namespaces),
    )


def build_invoker(runtime: Runtime, workflows: kopf.Index[Any, Any]) -> Invoker:
    return Invoker(
        executor=runtime.executor,
        slots=runtime.runs.slots,
        find_workflow=_lookup(workflows),
        plan_of=runtime.workflows.plan_of,
        deadline_seconds=runtime.settings.invoke_timeout_seconds,
        metrics=runtime.metrics,
    )


def quiet_routine_logs() -> None:
    """Keeps out of the operator's log what happens all the time and says nothing: kopf's
    per-handler successes (see below), the access log of kopf's liveness endpoint, which
    kubelet's probes hit every few seconds (17,000 lines a day per probe, seen on real pods),
    and httpx's line for every request it sends: the url steps' health checks, 33 lines a
    second with 1,000 url steps (bench/scale)."""
    logging.getLogger("kopf.objects").addFilter(is_not_a_handler_success)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def is_not_a_handler_success(record: logging.LogRecord) -> bool:
    """A log filter: kopf logs "Handler 'x' succeeded." for every handler call, and an event
    handler is called on every watch event of its kind (2,000 lines for 100 new steps, a tenth of
    the operator's CPU). Failures and retries are still logged, and a change handler's outcome
    is in kopf's summary ("Creation is processed: 1 succeeded; 0 failed.")."""
    message = record.msg
    return not (
        isinstance(message, str)
        and message.startswith("Handler '")
        and message.endswith("' succeeded.")
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    tasks = [memo.get(name) for name in (
        "leading", "owned_objects", "endpoint_slices", "scaling", "run_watch", "scheduled_runs",
        "approval_watch", "approval_policies", "events",
    )]  # fmt: skip
    for task in tasks:
        if isinstance(task, asyncio.Task):
            task.cancel()
    await asyncio.gather(*(t for t in tasks if isinstance(t, asyncio.Task)), return_exceptions=True)
    feed = memo.get("run_feed")
    if isinstance(feed, RunFeed):
        feed.wake_all()  # the web view's viewers waiting for an update are answered now
    for server_name in ("http_server", "metrics_server"):
        server = memo.get(server_name)
        if isinstance(server, HttpServer):
            await server.close()  # finishes the requests already read
    supervisor = memo.get("supervisor")
    if isinstance(supervisor, RunSupervisor):
        await supervisor.shutdown()
    await cancel_detached()
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.events.flush()  # while this replica may still write
        await runtime.elector.release()
        await asyncio.to_thread(runtime.tracing.shutdown)  # sends the spans still queued
        await runtime.transport.aclose()
        await runtime.http.aclose()
        await runtime.kube.close()


def register_handlers() -> None:
    """Registers the kinds' kopf handlers: importing their modules does it."""
    from stepline.controllers.servicesteps import handlers  # noqa: F401, PLC0415
    from stepline.controllers.workflowruns import watch  # noqa: F401, PLC0415
    from stepline.controllers.workflows import handlers as _  # noqa: F401, PLC0415
    from stepline.controllers.workflowschedules import handlers as __  # noqa: F401, PLC0415


def run(settings: Settings) -> None:
    """Runs the operator until it is stopped (SIGINT/SIGTERM)."""
    register_handlers()

    kopf.configure(log_format=kopf.LogFormat.PLAIN)
    quiet_routine_logs()
    for handler in logging.getLogger().handlers:  # a run's log lines name its trace
        handler.addFilter(TraceIdLogFilter())
    liveness = (
        f"http://{settings.http_host}:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(
            kopf.operator(
                clusterwide=settings.clusterwide,
                namespaces=list(settings.namespaces),
                memo=kopf.Memo(settings=settings),
                liveness_endpoint=liveness,
                standalone=True,
            )
        )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency, except on Windows), else asyncio's.

    kopf picks uvloop by itself only in its own CLI (`kopf run`); `kopf.operator()`, which we call,
    runs in whatever loop it is given. uvloop's loop and socket transports are C: every invoke
    request and every step call spends less CPU in them (bench/overhead/RESULTS.md, section 5).
    """
    try:
        import uvloop  # noqa: PLC0415 (optional: absent on Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
