"""A forEach step's calls: one per element of its items, at most its parallelism in flight, the
outputs in order (the elements' bookkeeping is `elements.ElementProgress`). See the forEach
section of `executing`'s docstring and docs/operator.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from stepline.api import MAX_FOREACH_ITEMS, Reason, ServiceStep
from stepline.engine.calling import MAX_MESSAGE_CHARACTERS, CallResult, StepCall
from stepline.engine.elements import ElementProgress
from stepline.engine.encoding import InvalidJsonError, encode_json
from stepline.engine.errors import RunCancelledError, StepFailedError
from stepline.engine.expressions import ExpressionError
from stepline.engine.planning import PlannedStep
from stepline.engine.runstate import Halt, RunState, expression_failure, step_failure
from stepline.engine.stepcalls import StepCaller
from stepline.engine.tracing import build_idempotency_key


async def call_elements(
    caller: StepCaller, run: RunState, step: PlannedStep, run_halt: Halt
) -> tuple[list[Any], int]:
    """A forEach step: one call per element, at most its parallelism in flight; the list of
    outputs in order, and the attempts of all. The first element that fails fails the step
    (no new element starts, those in flight end), its error naming the element."""
    state = run.states[step.name]
    items = evaluate_items(run, step)
    elements = state.elements = state.elements or ElementProgress()
    elements.restart(len(items))
    service = await caller.find_ready_step(run, step, run_halt.event) if items else None
    halt = Halt(run_halt.event)  # set by the run's halt, or by a failed element
    pending = [index for index in range(len(items)) if index not in elements.outputs]
    pending.reverse()
    limit = step.element_parallelism or run.plan.parallelism
    running: dict[asyncio.Future[CallResult], int] = {}
    failure: tuple[int, StepFailedError] | None = None
    unsaved = False  # elements started or ended since the last save
    try:
        while True:
            while pending and len(running) < limit and not halt.is_set() and service:
                index = pending.pop()
                try:
                    call = _element_call(caller, run, step, service, (index, items[index]))
                except StepFailedError as exc:  # its input expression failed on it
                    elements.fail(index, exc.error, 0)
                    failure = failure or (index, exc)
                    halt.fail(step.name)
                    break
                elements.in_flight.add(index)
                running[asyncio.ensure_future(caller.client.call(call, cancel=halt.event))] = index
                unsaved = True
            if not running:
                break
            # Saved within a second of a change, and no more often (`save_progress`).
            due_in = await run.save_progress() if unsaved else None
            unsaved = due_in is not None
            ended, _ = await asyncio.wait(
                running, timeout=due_in, return_when=asyncio.FIRST_COMPLETED
            )
            for task in ended:
                failed = _element_ended(elements, running.pop(task), task)
                unsaved = True
                if failed is not None and failure is None:
                    failure = failed
                    halt.fail(step.name)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        halt.close()
    if failure is not None:
        index, first = failure
        message = f"element {index} of {len(items)}: {first.error.message}"
        error = first.error.model_copy(update={"message": message[:MAX_MESSAGE_CHARACTERS]})
        raise StepFailedError(error, attempts=elements.attempts, timed_out=first.timed_out)
    if len(elements.outputs) < len(items):  # the run was halted between elements
        raise RunCancelledError(step=step.name, attempts=elements.attempts)
    return elements.output_list(), elements.attempts


def _element_call(
    caller: StepCaller,
    run: RunState,
    step: PlannedStep,
    service: ServiceStep,
    element: tuple[int, Any],
) -> StepCall:
    index, item = element
    elements = run.states[step.name].elements
    interrupted = elements is not None and index in elements.interrupted
    body = _encode_element_input(run, step, item, index)
    call = caller.build_call(run, step, service, body, first_attempt=2 if interrupted else 1)
    key = build_idempotency_key(run.key_uid, f"{step.name}/{index}")
    return dataclasses.replace(call, idempotency_key=key)


def _element_ended(
    elements: ElementProgress, index: int, task: asyncio.Future[CallResult]
) -> tuple[int, StepFailedError] | None:
    """Records an element's end; its failure, if it failed."""
    elements.in_flight.discard(index)
    error = task.exception()
    if error is None:
        result = task.result()
        elements.succeed(index, result.output, result.attempts)
        return None
    if isinstance(error, StepFailedError):
        elements.fail(index, error.error, error.attempts)
        return index, error
    if isinstance(error, RunCancelledError):
        elements.attempts += error.attempts
        return None
    raise error


def evaluate_items(run: RunState, step: PlannedStep) -> list[Any]:
    """A forEach step's list; InvalidItems when it is none, or too long."""
    try:
        items = run.plan.expressions.evaluate_items(step.name, run.activation())
    except ExpressionError as exc:
        raise expression_failure(step, exc) from exc
    where = f"{run.plan.expressions.items[step.name].field} (step {step.name!r})"
    if not isinstance(items, list):
        kind = "a map" if isinstance(items, dict) else f"{json_kind(items)}"
        raise step_failure(Reason.INVALID_ITEMS, f"{where}: must be a list, not {kind}")
    if len(items) > MAX_FOREACH_ITEMS:
        message = f"{where}: {len(items)} elements, more than the {MAX_FOREACH_ITEMS} allowed"
        raise step_failure(Reason.INVALID_ITEMS, message)
    return items


def json_kind(value: Any) -> str:
    """'a string', 'a number', … for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _encode_element_input(run: RunState, step: PlannedStep, item: Any, index: int) -> bytes:
    """The JSON sent for one element: `item`, or the step's `input` over item and index."""
    if not step.has_input:
        payload = item
    else:
        activation = {**run.activation(), "item": item, "index": index}
        try:
            payload = run.plan.expressions.evaluate_input(step.name, activation, default=None)
        except ExpressionError as exc:
            raise expression_failure(step, exc) from exc
    elements = run.states[step.name].elements
    if step.compensation is not None and elements is not None:
        elements.inputs[index] = payload
    try:
        return encode_json(payload)
    except InvalidJsonError as exc:
        message = f"step {step.name!r}: element {index}'s input {exc}"
        raise step_failure(Reason.EXPRESSION_ERROR, message) from exc
