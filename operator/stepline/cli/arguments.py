"""What the subcommands' arguments may be (argparse `type=` functions, each refusing a value the
API server would refuse, with exit 2 and the value named) and the flags several share, as
kubectl spells them. Pure: no I/O.
"""

from __future__ import annotations

import argparse
import math
import re

from stepline.api import RunPhase
from stepline.api.approvals import DNS1123_SUBDOMAIN, MAX_REASON_LENGTH
from stepline.api.base import DNS1123_LABEL, MAX_LABEL_LENGTH

MAX_OBJECT_NAME = 253
# `stepline graph --format`: terminal.graphs.GraphFormat's values (a unit test keeps them
# equal), written out so that parsing arguments does not load the engine.
GRAPH_FORMATS = ("text", "mermaid", "dot")


def run_name(value: str) -> str:
    """A WorkflowRun's name, as the API server would take it (argparse's `type`)."""
    if len(value) > MAX_OBJECT_NAME or not re.match(DNS1123_SUBDOMAIN, value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a WorkflowRun name")
    return value


def workflow_name(value: str) -> str:
    """A Workflow's name: lowercase letters, digits and '-', at most 63 characters."""
    return _label(value, "Workflow")


def step_name(value: str) -> str:
    """A step's name: lowercase letters, digits and '-', at most 63 characters."""
    return _label(value, "step")


def _label(value: str, what: str) -> str:
    if len(value) > MAX_LABEL_LENGTH or not re.match(DNS1123_LABEL, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a {what} name (lowercase letters, digits and '-', at most "
            f"{MAX_LABEL_LENGTH} characters)"
        )
    return value


def reason_text(value: str) -> str:
    """A decision's reason: some text, at most MAX_REASON_LENGTH characters."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the reason is empty")
    if len(value) > MAX_REASON_LENGTH:
        raise argparse.ArgumentTypeError(
            f"the reason has {len(value)} characters; at most {MAX_REASON_LENGTH}"
        )
    return value


def positive_seconds(value: str) -> float:
    """A finite number of seconds above zero."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of seconds above 0")
    return seconds


def run_phase(value: str) -> str:
    """A run's phase in any case, as its status spells it."""
    for phase in RunPhase:
        if phase.value.lower() == value.lower():
            return phase.value
    phases = ", ".join(phase.value for phase in RunPhase)
    raise argparse.ArgumentTypeError(f"{value!r} is not a phase of a run ({phases})")


def add_cluster_flags(command: argparse.ArgumentParser, *, listing: bool = False) -> None:
    """kubectl's -n (with -A where listing) and --kubeconfig."""
    scope = command.add_mutually_exclusive_group() if listing else command
    scope.add_argument(
        "-n", "--namespace", help="the namespace (default: the kubeconfig context's)"
    )
    if listing:
        scope.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list in every namespace"
        )
    command.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
    )


def add_input_flag(command: argparse.ArgumentParser) -> None:
    """-f/--filename, as kubectl's: the run's input."""
    command.add_argument(
        "-f",
        "--filename",
        metavar="FILE",
        help="the run's input: a file of JSON holding an object, or - for stdin (default: {})",
    )
