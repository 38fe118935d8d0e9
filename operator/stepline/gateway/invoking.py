"""Synchronous invoke: run a workflow for one request and answer with its output. No API object
is written per call; the Workflow and its ServiceSteps come from the operator's in-memory indexes.

Errors map to HTTP statuses, each with a JSON body `{"error": {"reason", "message", "step"?,
"httpStatus"?}}`:

    400  the body is not a JSON object the engine accepts (`engine.encoding`: an empty body, NaN,
         nesting deeper than 64, a lone surrogate… each named), or is larger than the input cap
    404  no such Workflow
    409  the Workflow is not Ready, its expressions do not compile, or its steps form a cycle
    429  the workflow already runs `concurrency` runs
    502  a step failed (its HTTP status, when it answered, is in the body)
    504  a step, or the whole run, timed out
    503  the run was cancelled (the operator is stopping)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepline.api import MAX_INPUT_BYTES, ConditionType, Reason, Workflow, find_condition
from stepline.engine import Executor, Plan, PlanError, RunOutcome, RunRequest, RunSlots, RunStatus
from stepline.engine.encoding import InvalidJsonError, decode_json
from stepline.engine.errors import RunRefusedError
from stepline.observability import Metrics
from stepline.observability.tracing import TraceParent

WorkflowLookup = Callable[[str, str], Workflow | None]
PlanLookup = Callable[[Workflow], Plan]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any]
    trace_id: str = ""  # the run's trace, for the Stepline-Trace-Id header


def error_answer(
    status: int, reason: str, message: str, *, trace_id: str = "", **extra: Any
) -> Answer:
    details = {"reason": reason, "message": message}
    details.update({key: value for key, value in extra.items() if value is not None})
    return Answer(status, {"error": details}, trace_id=trace_id)


class Invoker:
    """Runs workflows for invoke requests."""

    def __init__(
        self,
        *,
        executor: Executor,
        slots: RunSlots,
        find_workflow: WorkflowLookup,
        plan_of: PlanLookup,
        deadline_seconds: float,
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._executor = executor
        self._slots = slots
        self._find_workflow = find_workflow
        self._plan_of = plan_of
        self._deadline = deadline_seconds

    async def invoke(
        self, namespace: str, name: str, body: bytes, *, traceparent: str | None = None
    ) -> Answer:
        """Runs the workflow for one request; `traceparent` is the caller's (W3C): the run's
        spans join its trace, or start one when it is missing or invalid."""
        run_input, problem = parse_input(body)
        if problem is not None:
            return problem
        workflow = self._find_workflow(namespace, name)
        if workflow is None:
            return error_answer(404, "WorkflowNotFound", f"no Workflow {name!r} in {namespace}")
        ready = find_condition(workflow.status.conditions, ConditionType.READY)
        if ready is None or ready.status != "True":
            message = ready.message if ready else "the Workflow has no status yet"
            return error_answer(409, Reason.WORKFLOW_NOT_READY, f"workflow {name}: {message}")
        try:
            plan = self._plan_of(workflow)
            refuse_waiting(plan)
        except PlanError as exc:
            return error_answer(409, exc.reason, str(exc), step=getattr(exc, "step", None))
        limit = workflow.spec.timeout_seconds
        deadline = self._deadline if limit is None else min(self._deadline, limit)
        request = RunRequest(
            uid=str(uuid.uuid4()), input=run_input, deadline_seconds=deadline,
            trace_parent=TraceParent.parse(traceparent),
        )  # fmt: skip
        try:
            async with self._slots.hold(plan.key, limit=plan.concurrency, wait=False):
                self._metrics.record_run_started(namespace=namespace, workflow=name)
                with self._metrics.run_in_flight(namespace=namespace, workflow=name):
                    outcome = await self._executor.execute(plan, request)
        except RunRefusedError as exc:
            return error_answer(429, "ConcurrencyLimit", str(exc))
        return answer_for(outcome)


class NotInvocableError(PlanError):
    """A workflow invoke cannot run: a step of it waits for a person."""

    def __init__(self, workflow: str, step: str) -> None:
        super().__init__(
            f"workflow {workflow}: step {step!r} waits for a person, who cannot answer within "
            "an HTTP request; create a WorkflowRun instead",
            reason=Reason.NOT_INVOCABLE,
        )
        self.step = step


def refuse_waiting(plan: Plan) -> None:
    """Raises NotInvocableError for a plan with an approval step."""
    waiting = next((step.name for step in plan.steps if step.approval is not None), None)
    if waiting is not None:
        raise NotInvocableError(plan.workflow, waiting)


def parse_input(body: bytes) -> tuple[Any, Answer | None]:
    """The run input in `body`, or the 400 answer saying why it is refused (`encoding`)."""
    if len(body) > MAX_INPUT_BYTES:
        return None, input_too_large(len(body))
    try:
        value = decode_json(body)
    except InvalidJsonError as exc:
        return None, error_answer(400, Reason.INVALID_INPUT, f"the body is not usable JSON: {exc}")
    if not isinstance(value, dict):
        return None, error_answer(400, Reason.INVALID_INPUT, "the input must be a JSON object")
    return value, None


def input_too_large(size: int | None) -> Answer:
    """400 naming the limit, for an input of `size` bytes (None: more, its size not declared)."""
    told = f"{size} bytes" if size is not None else f"more than {MAX_INPUT_BYTES} bytes"
    message = f"the input is {told}; the limit is {MAX_INPUT_BYTES}"
    return error_answer(400, Reason.INPUT_TOO_LARGE, message)


_FAILURE_STATUS = {RunStatus.FAILED: 502, RunStatus.TIMED_OUT: 504, RunStatus.CANCELLED: 503}


def answer_for(outcome: RunOutcome) -> Answer:
    """200 with the output and per-step timings, or the failure's status and reason."""
    if outcome.succeeded:
        # From the step states, not records(): a record encodes and hashes each output.
        steps = [
            {
                "name": state.name,
                "phase": state.phase,
                "attempts": state.attempts,
                "durationSeconds": state.duration_seconds,
            }
            for state in outcome.states
        ]
        body = {
            "output": outcome.output,
            "durationSeconds": outcome.duration_seconds,
            "steps": steps,
        }
        return Answer(200, body, trace_id=outcome.trace_id)
    if outcome.error is not None and outcome.error.reason == Reason.INVALID_INPUT:
        # The request's data lacks what a step's input needs: the caller's to fix, not a step's.
        return error_answer(
            400, Reason.INVALID_INPUT, outcome.message, step=outcome.step,
            trace_id=outcome.trace_id,
        )  # fmt: skip
    return error_answer(
        _FAILURE_STATUS[outcome.status],
        outcome.reason,
        outcome.message,
        step=outcome.step,
        httpStatus=outcome.http_status,
        compensation=_undoing(outcome),
        trace_id=outcome.trace_id,
    )


def _undoing(outcome: RunOutcome) -> dict[str, Any] | None:
    """How the steps of a failed invoke were undone (in memory: invoke is not durable)."""
    if outcome.compensation is None:
        return None
    steps = [
        {"name": state.name, "phase": state.compensation.phase}
        for state in outcome.states
        if state.compensation is not None
    ]
    return {"phase": outcome.compensation.phase, "steps": steps}
