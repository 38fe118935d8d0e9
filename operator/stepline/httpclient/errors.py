"""What ends a step call without an answer, for the HTTP client and its callers:

StepLineError
└── CallError            one HTTP call got no usable answer; raised by a `Transport`,
    │                    chained (`from`) to the HTTP library's own error; `reason` is the
    │                    one a failed step reports
    ├── CallTimeoutError     no complete answer within the call's timeout
    ├── CallConnectionError  no connection, or it broke before the answer was complete
    └── InvalidReplyError    an answer too large to accept
"""

from __future__ import annotations

from stepline.api import Reason
from stepline.errors import StepLineError


class CallError(StepLineError):
    """One HTTP call got no usable answer; `detail` says why, for messages."""

    reason: Reason = Reason.CONNECTION_ERROR

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CallTimeoutError(CallError):
    reason = Reason.TIMEOUT


class CallConnectionError(CallError):
    reason = Reason.CONNECTION_ERROR


class InvalidReplyError(CallError):
    reason = Reason.INVALID_RESPONSE
