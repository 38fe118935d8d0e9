"""What the handlers share while the operator runs: settings, the API client, the HTTP client,
the leader election, and a little memory of what was written. Created by the startup handler,
stored in kopf's memo.

Only the leader writes (`leading.py`): `leads()` is the question every writer asks first, and
the API client refuses a write past the elector's fence whatever the writer asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import kopf

from stepline.api import KubeObject, Workflow
from stepline.controllers.electing import LeaseElector
from stepline.controllers.eventing import EventPoster
from stepline.controllers.following import OwnedStates
from stepline.controllers.scaling import Scalers
from stepline.engine import (
    Balancer,
    Executor,
    Http1Transport,
    Plan,
    RunSlots,
    StepIndex,
    build_plan,
)
from stepline.engine.expressions import CompiledExpressions, compile_workflow_expressions
from stepline.engine.loads import StepLoads
from stepline.engine.prediction import DurationHistory
from stepline.kube import KubeApi
from stepline.observability import Metrics, ReconcileOutcome
from stepline.settings import Settings

if TYPE_CHECKING:
    from stepline.controllers.supervising import RunSupervisor

# Compiled expressions of this many Workflow generations are kept; one entry is a few KiB.
EXPRESSION_CACHE_SIZE = 4096


class AppliedObject(NamedTuple):
    """An owned object as our last apply left it: its generation and a digest of its spec."""

    generation: int
    spec_digest: str


@dataclass
class Runtime:
    settings: Settings
    kube: KubeApi
    http: httpx.AsyncClient  # external steps' health checks and https:// calls (`transport`)
    metrics: Metrics
    executor: Executor
    steps: StepIndex
    transport: Http1Transport  # the executor's step calls; closed when the operator stops
    # Which replica writes, and until when (its fence also bounds every write `kube` sends).
    elector: LeaseElector
    # The steps' ready replicas and the calls in flight to each (endpoints.py keeps it current).
    balancer: Balancer = field(default_factory=Balancer)
    # The calls in flight to each step and those started (the executor counts them), and the
    # forecasters fed from them (scaling.py).
    loads: StepLoads = field(default_factory=StepLoads)
    scalers: Scalers = field(init=False)
    # (namespace, workflow) → its last successful runs' durations (retaining.RunIndex fills it;
    # a running run's estimated completion comes from it).
    histories: dict[tuple[str, str], DurationHistory] = field(default_factory=dict)
    slots: RunSlots = field(default_factory=RunSlots)
    # Events the operator posts outside kopf's handlers (all but a handler's own).
    events: EventPoster = field(init=False)
    # Set at the first call of a Workflow or ServiceStep handler: kopf's indexes are filled.
    indexes_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # What the steps' Deployments and HPAs report (following.py keeps it current).
    owned: OwnedStates = field(default_factory=OwnedStates)
    # Set by the startup handler once the workflow index exists.
    runs: RunSupervisor = field(init=False)
    # (kind, namespace, name) → what our last server-side apply of that object returned.
    applied_objects: dict[tuple[str, str, str], AppliedObject] = field(default_factory=dict)
    # (kind, namespace, name) → server-side applies of that object under way.
    applies_in_flight: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (namespace, name) of the external (url) steps, for their periodic health checks.
    external_steps: set[tuple[str, str]] = field(default_factory=set)
    # (kind, namespace, name) → the status we last wrote, so an unchanged one is not written again.
    written_statuses: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (kind, namespace, name) → why the last apply of that object's children failed, until one
    # succeeds.
    apply_errors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # (namespace, name) → the status refresh of that ServiceStep that is due (deploying.py).
    status_refreshes: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    # (namespace, name) → the task reconciling that ServiceStep, and, while another reconcile
    # of it is due, the corrections it is due for (none: a change of its spec) (deploying.py).
    reconciles: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    reconciles_due: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (namespace, name) → (uid, generation) of the ServiceStep last asked to be reconciled.
    reconcile_asked: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    # (namespace, name) → (uid, generation) of the Workflow whose status was last refreshed
    # for a change of its own.
    workflows_refreshed: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    # ServiceStep reconciles under way at most (settings.worker_limit); the others wait.
    reconcile_slots: asyncio.Semaphore = field(init=False)
    _plans: OrderedDict[tuple[str, int], Plan] = field(default_factory=OrderedDict)
    _status_locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    _expressions: OrderedDict[tuple[str, int], CompiledExpressions] = field(
        default_factory=OrderedDict
    )

    def __post_init__(self) -> None:
        self.reconcile_slots = asyncio.Semaphore(self.settings.worker_limit)
        self.scalers = Scalers(
            sample_seconds=self.settings.scaling_sample_seconds,
            default_lead_seconds=self.settings.scaling_default_lead_seconds,
        )
        self.events = EventPoster(self.kube, may_post=self.leads)

    def leads(self) -> bool:
        """This replica is the leader, and may write now."""
        return self.elector.is_leading()

    def forget_writes(self) -> None:
        """Drops the memory of what this replica wrote and asked for, so that on taking over
        the lead it reconciles and writes afresh (another replica may have written since)."""
        self.written_statuses.clear()
        self.applied_objects.clear()
        self.apply_errors.clear()
        self.reconcile_asked.clear()
        self.reconciles_due.clear()
        self.workflows_refreshed.clear()
        self.external_steps.clear()

    def expressions_of(self, workflow: Workflow) -> CompiledExpressions:
        """The workflow's compiled expressions, compiled once per generation."""
        key = (workflow.metadata.uid or "", workflow.metadata.generation or 0)
        compiled = self._expressions.get(key)
        if compiled is None:
            compiled = compile_workflow_expressions(workflow.spec)
            self._expressions[key] = compiled
            if len(self._expressions) > EXPRESSION_CACHE_SIZE:
                self._expressions.popitem(last=False)
        return compiled

    def plan_of(self, workflow: Workflow) -> Plan:
        """The workflow's plan, built once per generation (raises PlanError)."""
        key = (workflow.metadata.uid or "", workflow.metadata.generation or 0)
        plan = self._plans.get(key)
        if plan is None:
            plan = build_plan(workflow, expressions=self.expressions_of(workflow))
            self._plans[key] = plan
            if len(self._plans) > EXPRESSION_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drops what is remembered of a deleted object."""
        self.written_statuses.pop((kind, namespace, name), None)
        self.apply_errors.pop((kind, namespace, name), None)
        self._status_locks.pop((kind, namespace, name), None)

    @contextlib.contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        """Times one reconcile of `kind` and counts its outcome (an exception is an error)."""
        started = time.monotonic()
        outcome = ReconcileOutcome.ERROR
        try:
            yield
            outcome = ReconcileOutcome.SUCCESS
        finally:
            seconds = time.monotonic() - started
            self.metrics.record_reconcile(kind=kind, outcome=outcome, seconds=seconds)

    def status_lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        """Serialises computing and writing one object's status: a status computed from older
        indexes must not land after one computed from newer ones."""
        key = (kind, namespace, name)
        lock = self._status_locks.get(key)
        if lock is None:
            lock = self._status_locks[key] = asyncio.Lock()
        return lock


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
    key = (kind, namespace, name)
    current = getattr(obj, "status", None)
    current_wire = current.to_wire() if current is not None else {}
    last = runtime.written_statuses.get(key)
    if status == (current_wire if last is None else last):
        return False
    patch: dict[str, Any] = {field: None for field in current_wire if field not in status}
    patch.update(status)
    await runtime.kube.patch_status(obj.api_version, kind, namespace, name, patch)
    runtime.written_statuses[key] = status
    return True
