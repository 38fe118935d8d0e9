"""The undoing of a failed or cancelled run: the compensations' calls (`Compensator`). Which
steps, in what order, and what is recorded: `compensating`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from stepline.api import Reason, ServiceStep, StepPhase, record_payload
from stepline.engine.calling import StepCall
from stepline.engine.checkpoints import NOT_SENT, StepState
from stepline.engine.clocks import Clock
from stepline.engine.compensating import CompensationState
from stepline.engine.directories import wait_for_ready_step
from stepline.engine.encoding import InvalidJsonError, encode_json
from stepline.engine.endpoints import resolve_endpoint, resolve_route
from stepline.engine.errors import StepFailedError
from stepline.engine.expressions import ExpressionError
from stepline.engine.planning import PlannedStep
from stepline.engine.runstate import RunState, step_failure
from stepline.engine.stepcalls import StepCaller, call_span_attributes
from stepline.engine.tracing import build_idempotency_key


class Compensator:
    """Makes the compensations' calls, for every run of the process."""

    def __init__(self, caller: StepCaller, *, clock: Clock) -> None:
        self._caller = caller
        self._clock = clock

    async def undo(
        self, run: RunState, step: PlannedStep, state: StepState, undo: CompensationState
    ) -> None:
        """One step's compensation: its calls (one per succeeded element of a forEach step, in
        reverse index order), recorded in `undo`."""
        spec = step.compensation
        assert spec is not None  # noqa: S101 (only steps with one are undone)
        undo.phase, undo.started_at = StepPhase.RUNNING, undo.started_at or self._clock.now()
        await run.save()
        undo.phase = StepPhase.SUCCEEDED
        try:
            service = await self._compensating_step(run, step, spec.step_ref)
            for index, done in _undo_targets(state):
                activation = {"input": run.request.input, "step": done}
                key = f"{step.name}/compensation"
                if index is not None:
                    activation["index"] = index
                    key = f"{step.name}/{index}/compensation"
                if not _undo_wanted(run, step, activation):
                    if index is None:
                        undo.phase, undo.reason = StepPhase.SKIPPED, Reason.WHEN_FALSE
                    continue
                call = self._undo_call(run, step, service, (activation, key), undo)
                result = await self._caller.client.call(call)
                undo.attempts += result.attempts
                undo.output_info = record_payload(result.output)[1]
                undo.interrupted = False
        except StepFailedError as exc:
            undo.phase, undo.error = StepPhase.FAILED, exc.error
            undo.attempts += exc.attempts
        undo.finished_at = self._clock.now()

    async def _compensating_step(self, run: RunState, step: PlannedStep, ref: str) -> ServiceStep:
        namespace = run.plan.namespace
        service = self._caller.directory.find_step(namespace, ref)
        if service is None:
            message = f"step {step.name!r}: compensating ServiceStep {namespace}/{ref} not found"
            raise step_failure(Reason.STEP_NOT_FOUND, message)
        if self._caller.directory.is_step_ready(service):
            return service
        waiting = wait_for_ready_step(
            self._caller.directory,
            namespace,
            ref,
            timeout=service.spec.timeout_seconds,
            clock=self._clock,
        )
        ready = await waiting
        if ready is None:
            message = f"step {step.name!r}: compensating ServiceStep {namespace}/{ref} not ready"
            raise step_failure(Reason.NO_READY_ENDPOINTS, message)
        return ready

    def _undo_call(
        self,
        run: RunState,
        step: PlannedStep,
        service: ServiceStep,
        target: tuple[dict[str, Any], str],
        undo: CompensationState,
    ) -> StepCall:
        """The call undoing `target`: (what its expressions see, the key's tail)."""
        activation, key = target
        spec = step.compensation
        assert spec is not None  # noqa: S101
        expression = run.plan.expressions.compensation_inputs.get(step.name)
        try:
            payload = (
                activation["step"]["output"]
                if expression is None
                else (expression.evaluate(activation))
            )
            body = encode_json(payload)
        except (ExpressionError, InvalidJsonError) as exc:
            raise step_failure(
                Reason.EXPRESSION_ERROR, f"step {step.name!r} compensation: {exc}"
            ) from exc
        first = max(undo.attempts, 1 if undo.interrupted else 0) + 1
        return StepCall(
            step=step.name,
            url=resolve_endpoint(service, overrides=self._caller._overrides),
            body=body,
            idempotency_key=build_idempotency_key(run.key_uid, key),
            trace=run.span,
            timeout=float(spec.timeout_seconds or service.spec.timeout_seconds),
            retry=spec.retry or service.spec.retry,
            deadline=None,  # a timed-out run is undone all the same
            first_attempt=first,
            route=resolve_route(service, overrides=self._caller._overrides),
            load_key=(service.metadata.namespace or "", service.metadata.name or ""),
            may_call=run.request.may_call,
            span_attributes={
                **call_span_attributes(run, step.name, service),
                "stepline.compensation": True,
            },
        )


def has_effects(state: StepState) -> bool:
    """The step succeeded, or (a forEach step) some of its elements did: there is an effect to
    undo."""
    if state.phase is StepPhase.SUCCEEDED:
        return True
    return state.elements is not None and bool(state.elements.outputs)


def _undo_targets(state: StepState) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """What each call of a step's compensation undoes: (None, step) for a step, (index, element)
    for each succeeded element of a forEach step, latest index first."""
    elements = state.elements
    if elements is None:
        done: dict[str, Any] = {"output": state.output}
        if state.sent_input is not NOT_SENT:
            done["input"] = state.sent_input
        yield None, done
        return
    for index in sorted(elements.outputs, reverse=True):
        element: dict[str, Any] = {"output": elements.outputs[index]}
        if index in elements.inputs:
            element["input"] = elements.inputs[index]
        yield index, element


def _undo_wanted(run: RunState, step: PlannedStep, activation: Mapping[str, Any]) -> bool:
    condition = run.plan.expressions.compensation_conditions.get(step.name)
    if condition is None:
        return True
    try:
        return condition.evaluate_condition(activation)
    except ExpressionError as exc:
        raise step_failure(
            Reason.EXPRESSION_ERROR, f"step {step.name!r} compensation: {exc}"
        ) from exc
