"""What the run supervisor decides without a cluster: which admitted runs cannot execute, and the
status that fails one."""

from __future__ import annotations

from typing import Any

import pytest

from stepline.api import MAX_INPUT_BYTES, Reason, WorkflowRun
from stepline.controllers.workflowruns.supervisor import (
    UnrunnableRunError,
    build_failed_status,
    parse_run,
)


def run_body(run_input: Any = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "r", "namespace": "shop", "uid": "u-1", "generation": 1},
        "spec": {"workflowRef": "trade", "input": {} if run_input is None else run_input, **spec},
    }


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_run_within_the_limits_is_parsed() -> None:
    run = parse_run(run_body({"user": "ada"}))

    assert isinstance(run, WorkflowRun)
    assert run.spec.input == {"user": "ada"}


@pytest.mark.parametrize(
    ("run_input", "reason", "says"),
    [
        ({"pad": "x" * MAX_INPUT_BYTES}, Reason.INPUT_TOO_LARGE, "spec.input is 65546 bytes"),
        ({f"k{i}": i for i in range(65)}, Reason.INPUT_TOO_LARGE, "spec.input has 65 keys"),
        (nested(65), Reason.INVALID_RUN, "spec.input nests arrays and objects more than 64"),
        # Deeper than the recursion limit: refused before anything recursive reads it.
        (nested(5_000), Reason.INVALID_RUN, "more than 64 deep"),
    ],
)
def test_an_input_the_operator_cannot_execute_is_refused_with_its_reason(
    run_input: Any, reason: Reason, says: str
) -> None:
    with pytest.raises(UnrunnableRunError, match=says) as refused:
        parse_run(run_body(run_input))

    assert refused.value.reason is reason


def test_a_body_the_model_refuses_is_an_invalid_run_naming_the_field() -> None:
    with pytest.raises(UnrunnableRunError, match="workflowRef") as refused:
        parse_run(run_body(workflowRef=7))

    assert refused.value.reason is Reason.INVALID_RUN


def test_a_failed_status_has_the_phase_the_reason_and_no_current_step() -> None:
    status = build_failed_status(Reason.INPUT_TOO_LARGE, "spec.input is too large", generation=3)

    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 3
    assert status["currentStep"] is None
    assert status["finishedAt"]
    [condition] = status["conditions"]
    assert condition["type"] == "Succeeded"
    assert condition["status"] == "False"
    assert condition["reason"] == "InputTooLarge"
    assert condition["message"] == "spec.input is too large"
