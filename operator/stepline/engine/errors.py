"""The engine's errors, one hierarchy under Stepline's `StepLineError`.

A run that fails does not raise: `Executor.execute()` returns a `RunOutcome` saying how it ended.
What raises is what stops a run from starting, and the internal signals between the step client
and the executor:

    StepLineError
    └── EngineError
        ├── PlanError            the workflow cannot be planned: expressions that do not compile
        │                        (`.problems`), steps that wait on each other in a cycle
        ├── RunRefusedError      the workflow's concurrency limit is reached and the caller chose
        │                        not to wait (invoke answers 429)
        ├── StepFailedError      a step failed for good (retries spent, or a failure that is
        │                        never retried); carries the api `StepError` and the attempts
        └── RunCancelledError    the run's cancel event was set while a step waited

The HTTP client's `CallError`s (`stepline.httpclient.errors`: one call got no usable answer)
are StepLineErrors too, and the step client turns them into attempts that failed.

Expressions raise their own `ExpressionError`s (`engine.expressions`, `ValueError`s); the executor
turns a failed evaluation into a step failure with reason ExpressionError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stepline.api import ExpressionProblem, Reason, StepError
from stepline.errors import StepLineError
from stepline.httpclient.errors import (
    CallConnectionError,
    CallError,
    CallTimeoutError,
    InvalidReplyError,
)


class EngineError(StepLineError):
    """Base of the engine's errors."""


class PlanError(EngineError):
    """A workflow that cannot be planned; the message names each problem, and `reason` is the
    one its Ready condition gives (InvalidExpression or DependencyCycle), so that a run of it
    fails with the same reason."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason = Reason.INVALID_EXPRESSION,
        problems: Sequence[ExpressionProblem] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.problems = tuple(problems)


class RunRefusedError(EngineError):
    """The workflow already runs as many runs as its `concurrency` allows."""

    def __init__(self, *, workflow: str, limit: int) -> None:
        super().__init__(
            f"workflow {workflow}: {limit} runs already in progress, its concurrency limit; "
            "retry later or raise spec.concurrency"
        )
        self.workflow = workflow
        self.limit = limit


class StepFailedError(EngineError):
    """A step failed for good. `timed_out` is true when the run's time (the step's timeout or the
    run's deadline) ran out, which callers report as a timeout rather than a failure."""

    def __init__(self, error: StepError, *, attempts: int, timed_out: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts
        self.timed_out = timed_out


class RunParkedError(EngineError):
    """The run stops before its end and is to go on later: suspended, or waiting for a
    person (`status` says which; the executor turns it into that outcome)."""

    def __init__(self, status: Any) -> None:
        super().__init__(f"run parked: {status}")
        self.status = status


class RunCancelledError(EngineError):
    """The run's cancel event was set; `attempts` calls of the current step were made."""

    def __init__(self, *, step: str, attempts: int = 0) -> None:
        super().__init__(f"run cancelled at step {step!r}")
        self.step = step
        self.attempts = attempts


__all__ = [
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "EngineError",
    "InvalidReplyError",
    "PlanError",
    "RunCancelledError",
    "RunParkedError",
    "RunRefusedError",
    "StepFailedError",
]
