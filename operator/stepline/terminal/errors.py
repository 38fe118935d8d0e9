"""The errors of the terminal commands, each carrying the exit code `cli.py` maps it to. Part of
Stepline's one hierarchy (stepline/errors.py):

    StepLineError
    └── CommandError         a command could not do what it was asked; `exit_code`
        ├── RefusedError       1: no such run or workflow, or it cannot take the request;
        │                      nothing was changed
        ├── UsageError         2: the arguments or the input are wrong; nothing was sent
        └── UnreachableError   3: no token, or the operator's URL did not answer

The API server's refusals and silence stay `KubeApiError` (exit 1, or 3 when `status` is 0), and
missing credentials `ConfigurationError` (3).
"""

from __future__ import annotations

from stepline.errors import StepLineError

REFUSED = 1
USAGE = 2
UNREACHABLE = 3


class CommandError(StepLineError):
    """A terminal command could not do what it was asked; `exit_code` says how it ends."""

    exit_code = REFUSED


class RefusedError(CommandError):
    """No such object, or it cannot take the request (a finished run cancelled): nothing was
    changed."""

    exit_code = REFUSED


class UsageError(CommandError):
    """The arguments or the input are wrong (not JSON, not an object): nothing was sent."""

    exit_code = USAGE


class UnreachableError(CommandError):
    """What the command needs is out of reach: no token for invoke, or no answer at its URL."""

    exit_code = UNREACHABLE
