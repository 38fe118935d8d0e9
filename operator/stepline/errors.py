"""Stepline's errors, one hierarchy. Handlers map them to kopf's TemporaryError/PermanentError
at their edge; everything below raises these, chained (`from exc`) to the cause.

    StepLineError
    ├── KubeApiError          a Kubernetes API request failed (status code, API message)
    │   ├── KubeConflictError   409: someone else changed the object; retry with a fresh read
    │   └── NotLeadingError     a write refused by this replica itself: it does not lead
    ├── ConfigurationError    the operator cannot start as configured (no kubeconfig, bad setting)
    ├── DecisionError         `stepline approve|reject`: the run or step cannot take a decision
    └── RerunError            `stepline rerun`: the run cannot be rerun, or the name is taken

(api.InvalidObjectError, a ValueError, is raised by the models for a body that does not fit;
`api` imports nothing of ours, so it stands outside this tree.)
"""

from __future__ import annotations


class StepLineError(Exception):
    """Base of every error Stepline raises on purpose."""


class KubeApiError(StepLineError):
    """A request to the Kubernetes API failed; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        """Worth retrying: no answer, a conflict, throttling or a server-side failure."""
        return self.status in (0, 409, 429) or self.status >= 500


class KubeConflictError(KubeApiError):
    """HTTP 409: the object changed (or is owned by another manager) since it was read."""


class NotLeadingError(KubeApiError):
    """A write (or a step call of a run) this replica refused to send: it is not the leader, or
    its time to write ran out (`controllers.election`). Not retried here: the leader does the
    work."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=0, reason="NotLeading")

    @property
    def retryable(self) -> bool:
        return False


class ConfigurationError(StepLineError):
    """The operator cannot start as configured."""


class DecisionError(StepLineError):
    """A decision (`stepline approve`, `stepline reject`) that cannot be recorded: the run is not
    there, has no such step, or does not wait at it. Nothing was created."""


class RerunError(StepLineError):
    """A rerun (`stepline rerun`) that cannot be created: the run is not there or has not ended
    Failed or Cancelled, or the name is taken. Nothing was created."""
