"""What the executor reports as it goes, for metrics: a `RunObserver` the caller may pass.

The executor calls `observe_step()` once per step it finishes in this execution (succeeded,
failed, skipped or cancelled; steps taken from a checkpoint are not reported again) and
`observe_run()` once per execution. Observers are called inline on the hot path: they must be
quick and must not block or raise. The metrics module implements one; `NullObserver`, the
default, does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stepline.api import Reason, StepPhase
from stepline.engine.outcomes import RunStatus


@dataclass(frozen=True, slots=True)
class StepObservation:
    """One step finished. `seconds` runs from its first call to its end, waits between attempts
    included; `reason` is the failure's (Timeout, ServerError, …), None unless it failed."""

    namespace: str
    workflow: str
    step: str
    step_ref: str
    phase: StepPhase
    reason: str | None
    attempts: int
    seconds: float
    http_status: int | None
    # The run's trace, when its spans are exported: the exemplar of the call's samples.
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunObservation:
    """One execution of a run ended; `resumed` when it started from a checkpoint."""

    namespace: str
    workflow: str
    status: RunStatus
    reason: Reason
    seconds: float
    resumed: bool
    # Its steps' compensations that succeeded and failed, when the run was undone.
    compensated: int = 0
    compensations_failed: int = 0
    trace_id: str | None = None  # as StepObservation's


class RunObserver(Protocol):
    def observe_step(self, observation: StepObservation) -> None: ...

    def observe_run(self, observation: RunObservation) -> None: ...


class NullObserver:
    """Observes nothing."""

    def observe_step(self, observation: StepObservation) -> None:
        pass

    def observe_run(self, observation: RunObservation) -> None:
        pass


NULL_OBSERVER = NullObserver()
