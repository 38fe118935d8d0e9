"""The executor's observations, recorded as Prometheus metrics: a `RunObserver` over `Metrics`.

Mapping: a step's failure reason becomes a call outcome (Timeout → timeout; ConnectionError and
NoReadyEndpoints → connection_error; anything else → error); `attempts - 1` retries are counted;
skipped and cancelled steps record nothing (no call finished). A run's status maps one-to-one;
an undone run also counts its steps' compensations by outcome.
Quick and never raising, as observers must be.
"""

from __future__ import annotations

from stepline.api import Reason, StepPhase
from stepline.engine.observing import RunObservation, StepObservation
from stepline.engine.outcomes import RunStatus
from stepline.observability import CallOutcomeLabel, CodeClass, Metrics, RunOutcomeLabel

_CALL_OUTCOMES = {
    Reason.TIMEOUT.value: CallOutcomeLabel.TIMEOUT,
    Reason.CONNECTION_ERROR.value: CallOutcomeLabel.CONNECTION_ERROR,
    "NoReadyEndpoints": CallOutcomeLabel.CONNECTION_ERROR,
}
_RUN_OUTCOMES = {
    RunStatus.SUCCEEDED: RunOutcomeLabel.SUCCEEDED,
    RunStatus.FAILED: RunOutcomeLabel.FAILED,
    RunStatus.CANCELLED: RunOutcomeLabel.CANCELLED,
    RunStatus.TIMED_OUT: RunOutcomeLabel.TIMED_OUT,
}


class MetricsObserver:
    """Records what the executor observes into `metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def observe_step(self, observation: StepObservation) -> None:
        if observation.phase not in (StepPhase.SUCCEEDED, StepPhase.FAILED):
            return
        status = observation.http_status
        if observation.phase is StepPhase.SUCCEEDED:
            outcome = CallOutcomeLabel.SUCCESS
            status = status or 200  # a success is a 2xx answer, whether or not it was kept
        else:
            outcome = _CALL_OUTCOMES.get(observation.reason or "", CallOutcomeLabel.ERROR)
        self._metrics.record_step_call(
            namespace=observation.namespace,
            workflow=observation.workflow,
            step=observation.step_ref,
            outcome=outcome,
            code_class=CodeClass.of(status),
            seconds=observation.seconds,
            trace_id=observation.trace_id,
        )
        if observation.attempts > 1:
            self._record_retries(observation, outcome)

    def _record_retries(self, observation: StepObservation, outcome: CallOutcomeLabel) -> None:
        # The failed attempts before the last are not reported one by one; count them as errors.
        retried = outcome if observation.phase is StepPhase.FAILED else CallOutcomeLabel.ERROR
        for _ in range(observation.attempts - 1):
            self._metrics.record_step_retry(
                namespace=observation.namespace,
                workflow=observation.workflow,
                step=observation.step_ref,
                outcome=retried,
            )

    def observe_run(self, observation: RunObservation) -> None:
        self._metrics.record_run_finished(
            namespace=observation.namespace,
            workflow=observation.workflow,
            outcome=_RUN_OUTCOMES[observation.status],
            seconds=observation.seconds,
            trace_id=observation.trace_id,
        )
        if observation.compensated or observation.compensations_failed:
            self._metrics.record_compensations(
                namespace=observation.namespace,
                workflow=observation.workflow,
                succeeded=observation.compensated,
                failed=observation.compensations_failed,
            )
