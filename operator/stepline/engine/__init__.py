"""Execution of workflows: plan, call, checkpoint. Never imports kopf; talks to the cluster only
through the interfaces it is given (`StepDirectory`, `RunStore`, `Transport`).

What callers use is re-exported here. A WorkflowRun controller or the invoke gateway builds one
`Executor` per process and a `Plan` per Workflow generation, then:

    async with slots.hold(plan.key, limit=plan.concurrency, wait=False):
        outcome = await executor.execute(plan, RunRequest(uid=uid, input=run_input))

and maps the `RunOutcome` to a status or an HTTP answer. Submodules (expressions, readiness,
retention, statistics, …) are imported by path.
"""

from stepline.engine.balancing import Address, Balancer, slice_addresses
from stepline.engine.checkpoints import Checkpoint, RunStore, StepState
from stepline.engine.clocks import SYSTEM_CLOCK, Clock, SystemClock
from stepline.engine.directories import ReadinessWaiter, StepDirectory, StepIndex
from stepline.engine.endpoints import resolve_endpoint
from stepline.engine.errors import (
    CallConnectionError,
    CallError,
    CallTimeoutError,
    EngineError,
    InvalidReplyError,
    PlanError,
    RunCancelledError,
    RunRefusedError,
    StepFailedError,
)
from stepline.engine.executing import Executor
from stepline.engine.limiting import RunSlots
from stepline.engine.observing import (
    NULL_OBSERVER,
    NullObserver,
    RunObservation,
    RunObserver,
    StepObservation,
)
from stepline.engine.outcomes import RunOutcome, RunStatus
from stepline.engine.planning import Plan, PlannedStep, build_plan
from stepline.engine.runstate import RunRequest
from stepline.engine.stepcalls import Unready
from stepline.httpclient.pooling import Http1Transport
from stepline.httpclient.transports import (
    AiohttpTransport,
    HttpxTransport,
    Reply,
    Transport,
    build_http_client,
)

__all__ = [
    "NULL_OBSERVER",
    "SYSTEM_CLOCK",
    "Address",
    "AiohttpTransport",
    "Balancer",
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "Checkpoint",
    "Clock",
    "EngineError",
    "Executor",
    "Http1Transport",
    "HttpxTransport",
    "InvalidReplyError",
    "NullObserver",
    "Plan",
    "PlanError",
    "PlannedStep",
    "ReadinessWaiter",
    "Reply",
    "RunCancelledError",
    "RunObservation",
    "RunObserver",
    "RunOutcome",
    "RunRefusedError",
    "RunRequest",
    "RunSlots",
    "RunStatus",
    "RunStore",
    "StepDirectory",
    "StepFailedError",
    "StepIndex",
    "StepObservation",
    "StepState",
    "SystemClock",
    "Transport",
    "Unready",
    "build_http_client",
    "build_plan",
    "resolve_endpoint",
    "slice_addresses",
]
