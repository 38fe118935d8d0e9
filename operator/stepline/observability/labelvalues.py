"""The small, closed vocabularies that label Stepline's metrics. Pure: no I/O.

Outcomes are enums rather than free strings so that a label can only take a handful of values,
whatever happens at run time:

- `RunOutcomeLabel`: how a workflow run ended — `succeeded`, `failed`, `cancelled` (asked for by a
  user through `spec.cancel`), `timed_out` (the run exceeded its deadline).
- `CallOutcomeLabel`: how one HTTP call to a step ended — `success` (a 2xx answer whose body was
  accepted), `error` (an answer that failed: a non-2xx status or a body that is not the JSON
  expected), `timeout` (no answer within the step's timeout), `connection_error` (no connection,
  or it dropped before an answer).
- `CodeClass`: the HTTP status class of a call, `1xx` to `5xx`, or `none` when no answer came.
- `ReconcileOutcomeLabel`: how one reconcile of an object ended, `success` or `error`.
- `ScheduleOutcomeLabel`: what a WorkflowSchedule did at one of its times — `started` (a run),
  `skipped` (none: a run was active under Forbid, or the Workflow was missing), `missed` (none:
  noticed past startingDeadlineSeconds), `replaced` (the active runs cancelled, a run started).
- `ApprovalDecisionLabel`: how an approval step was decided — `approved` or `rejected` (an
  Approval recorded), `timed_out` (nobody decided within `approval.timeoutSeconds`).
- `CompensationOutcomeLabel`: how the compensation of one step of a failed or cancelled run
  ended — `succeeded` (undone) or `failed` (its calls failed after their retries).
- `SpanDropReasonLabel`: why spans were not exported — `queue_full` (ended faster than they
  could be sent), `export_failed` (the collector was away, too slow, or refused the batch).
- `WaitReasonLabel`: why a run is parked, holding no task — `approval` (a step waits for a
  person), `suspended` (`spec.suspend`).
- `InvokeRefusalLabel`: the HTTP status of an invoke the authorizer refused — `401` (no token,
  or one the API server does not accept), `403` (its user may not invoke the Workflow), `503`
  (no review could be had).
"""

from __future__ import annotations

from enum import StrEnum


class RunOutcomeLabel(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class CallOutcomeLabel(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"


class ReconcileOutcomeLabel(StrEnum):
    SUCCESS = "success"
    ERROR = "error"


class ScheduleOutcomeLabel(StrEnum):
    STARTED = "started"
    SKIPPED = "skipped"
    MISSED = "missed"
    REPLACED = "replaced"


class ApprovalDecisionLabel(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"


class CompensationOutcomeLabel(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SpanDropReasonLabel(StrEnum):
    QUEUE_FULL = "queue_full"
    EXPORT_FAILED = "export_failed"


class WaitReasonLabel(StrEnum):
    APPROVAL = "approval"
    SUSPENDED = "suspended"
    QUEUED = "queued"


class InvokeRefusalLabel(StrEnum):
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    UNAVAILABLE = "503"


class ApiVerbLabel(StrEnum):
    """The verb of a request to the Kubernetes API, as the API server counts it."""

    GET = "GET"
    LIST = "LIST"
    WATCH = "WATCH"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class CodeClass(StrEnum):
    INFORMATIONAL = "1xx"
    SUCCESS = "2xx"
    REDIRECTION = "3xx"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    NONE = "none"

    @classmethod
    def of(cls, status: int | None) -> CodeClass:
        """The class of an HTTP status code; `none` for no answer or a code outside 100-599."""
        if status is None or not 100 <= status <= 599:
            return cls.NONE
        return _CODE_CLASSES[status // 100 - 1]  # a tuple, not cls(f"{n}xx"): once per step call


_CODE_CLASSES = (
    CodeClass.INFORMATIONAL,
    CodeClass.SUCCESS,
    CodeClass.REDIRECTION,
    CodeClass.CLIENT_ERROR,
    CodeClass.SERVER_ERROR,
)
