"""What the controllers share while the operator runs: settings, the API client, the HTTP client,
the engine, the leader election, the status last written of each object, and what each kind's
controller remembers. Built by `wiring.build_runtime`, stored in kopf's memo.

Only the leader writes (`leadership`): `leads()` is the question every writer asks first, and
the API client refuses a write past the elector's fence whatever the writer asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf
import orjson

from stepline.api import KubeObject
from stepline.controllers.approvals.memory import ApprovalMemory
from stepline.controllers.election import LeaseElector
from stepline.controllers.events import EventPoster
from stepline.controllers.servicesteps.memory import ServiceStepMemory
from stepline.controllers.servicesteps.owned import OwnedStates
from stepline.controllers.servicesteps.scaling import Scalers
from stepline.controllers.workflowruns.memory import RunMemory
from stepline.controllers.workflows.memory import WorkflowMemory
from stepline.controllers.workflowschedules.memory import ScheduleMemory
from stepline.engine import (
    Balancer,
    Executor,
    Http1Transport,
    StepIndex,
)
from stepline.engine.loads import StepLoads
from stepline.kube import KubeApi
from stepline.observability import Metrics, ReconcileOutcomeLabel
from stepline.observability.tracing import DISABLED, Tracing
from stepline.settings import Settings


@dataclass
class StatusMemory:
    """The status this process last wrote for each object, and one lock per object."""

    # (kind, namespace, name) → the status we last wrote, as compact JSON: one block of memory
    # where the dict was dozens (some 2 MiB less with 1,000 ServiceSteps and 1,000 Workflows).
    _written: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    _locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)

    def last(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The status we last wrote for that object, if any."""
        written = self._written.get((kind, namespace, name))
        return None if written is None else orjson.loads(written)

    def remember(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._written[kind, namespace, name] = orjson.dumps(status)

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        """Serialises computing and writing one object's status: a status computed from older
        indexes must not land after one computed from newer ones."""
        key = (kind, namespace, name)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._written.pop((kind, namespace, name), None)
        self._locks.pop((kind, namespace, name), None)

    def forget_writes(self) -> None:
        self._written.clear()


@dataclass
class Runtime:
    """The operator's shared pieces, and what each controller remembers (`servicesteps`,
    `workflows`, `runs`, `schedules`, `approvals`: each kind's own `memory` module says what)."""

    settings: Settings
    kube: KubeApi
    http: httpx.AsyncClient  # external steps' health checks and https:// calls (`transport`)
    metrics: Metrics
    executor: Executor
    steps: StepIndex
    transport: Http1Transport  # the executor's step calls; closed when the operator stops
    # Which replica writes, and until when (its fence also bounds every write `kube` sends).
    elector: LeaseElector
    # The steps' ready replicas and the calls in flight to each (servicesteps.endpoints keeps
    # it current).
    balancer: Balancer = field(default_factory=Balancer)
    # The calls in flight to each step and those started (the executor counts them), and the
    # forecasters fed from them (servicesteps.scaling).
    loads: StepLoads = field(default_factory=StepLoads)
    # Events the operator posts outside kopf's handlers (all but a handler's own).
    events: EventPoster = field(init=False)
    # Set at the first call of a Workflow or ServiceStep handler: kopf's indexes are filled.
    indexes_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the indexes are filled (or waited for long enough) and the run watch starts:
    # this replica may serve invoke (`wiring.replica_readiness`).
    caches_warm: asyncio.Event = field(default_factory=asyncio.Event)
    statuses: StatusMemory = field(default_factory=StatusMemory)
    servicesteps: ServiceStepMemory = field(init=False)
    workflows: WorkflowMemory = field(default_factory=WorkflowMemory)
    runs: RunMemory = field(default_factory=RunMemory)
    schedules: ScheduleMemory = field(default_factory=ScheduleMemory)
    # The Approvals by step; `approvals.decision_for()` is what decides a waiting step, and
    # `approvals.on_decision` the hook that wakes its run.
    approvals: ApprovalMemory = field(default_factory=ApprovalMemory)
    # The spans of runs and step calls (the executor's), exported if an endpoint is set.
    tracing: Tracing = DISABLED

    def __post_init__(self) -> None:
        self.servicesteps = ServiceStepMemory(
            scalers=Scalers(
                sample_seconds=self.settings.scaling_sample_seconds,
                default_lead_seconds=self.settings.scaling_default_lead_seconds,
            ),
            reconcile_slots=asyncio.Semaphore(self.settings.worker_limit),
            owned=OwnedStates(manager=self.settings.field_manager),
        )
        self.events = EventPoster(self.kube, may_post=self.leads)

    def leads(self) -> bool:
        """This replica is the leader, and may write now."""
        return self.elector.is_leading()

    def forget_writes(self) -> None:
        """Drops the memory of what this replica wrote and asked for, so that on taking over
        the lead it reconciles and writes afresh (another replica may have written since)."""
        self.statuses.forget_writes()
        self.servicesteps.forget_writes()
        self.workflows.refreshed.clear()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drops what is remembered of a deleted object."""
        self.statuses.forget(kind, namespace, name)
        self.servicesteps.apply_errors.pop((kind, namespace, name), None)

    @contextlib.contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        """Times one reconcile of `kind` and counts its outcome (an exception is an error)."""
        started = time.monotonic()
        outcome = ReconcileOutcomeLabel.ERROR
        try:
            yield
            outcome = ReconcileOutcomeLabel.SUCCESS
        finally:
            seconds = time.monotonic() - started
            self.metrics.record_reconcile(kind=kind, outcome=outcome, seconds=seconds)


def runtime_of(memo: kopf.Memo) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


def involved_object(obj: KubeObject) -> dict[str, Any]:
    """The object reference of an Event about `obj` (`EventPoster`)."""
    return {
        "apiVersion": obj.api_version,
        "kind": type(obj).__name__,
        "namespace": obj.metadata.namespace,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
    }


async def write_status(runtime: Runtime, obj: KubeObject, status: dict[str, Any]) -> bool:
    """Merge-patches `status` onto `obj` unless it is what we last wrote (or, before we wrote
    anything, what it has); top-level fields the new status leaves out are cleared. True when it
    wrote. What we wrote is the baseline because the body in an index may lag behind it."""
    kind, namespace, name = type(obj).__name__, obj.metadata.namespace, obj.metadata.name
    if not namespace or not name:
        return False
    current = getattr(obj, "status", None)
    current_wire = current.to_wire() if current is not None else {}
    last = runtime.statuses.last(kind, namespace, name)
    if status == (current_wire if last is None else last):
        return False
    patch: dict[str, Any] = {field: None for field in current_wire if field not in status}
    patch.update(status)
    await runtime.kube.patch_status(obj.api_version, kind, namespace, name, patch)
    runtime.statuses.remember(kind, namespace, name, status)
    return True
