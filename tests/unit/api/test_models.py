"""The models: defaults, camelCase on the wire, parsing kopf bodies, and the rules they share
with the API server."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from stepline.api import (
    DEFAULT_PATH,
    DEFAULT_PORT,
    InvalidObjectError,
    RetryOn,
    RunPhase,
    ServiceStep,
    ServiceStepSpec,
    Workflow,
    WorkflowRun,
    WorkflowRunSpec,
    WorkflowSpec,
)

MINIMAL_STEP = {"image": "stepline/echo:1"}
SECRET = {"secretKeyRef": {"name": "creds", "key": "token"}}
MINIMAL_WORKFLOW = {"steps": [{"name": "only", "stepRef": "echo"}]}


def _body(kind: str, spec: dict[str, Any], name: str = "sample") -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "shop", "generation": 2, "uid": "u-1"},
        "spec": spec,
    }


def test_a_minimal_service_step_gets_its_call_defaults() -> None:
    spec = ServiceStepSpec.model_validate(MINIMAL_STEP)
    assert spec.timeout_seconds == 30
    assert spec.retry.limit == 2
    assert spec.retry.backoff.initial_seconds == 1.0
    assert spec.retry.backoff.factor == 2.0
    assert spec.retry.backoff.max_seconds == 30.0
    assert spec.retry.retry_on == list(RetryOn)


def test_deployment_only_fields_have_no_default_but_resolve_to_one() -> None:
    spec = ServiceStepSpec.model_validate(MINIMAL_STEP)
    assert (spec.port, spec.path, spec.scaling) == (None, None, None)
    assert spec.resolved_port == DEFAULT_PORT
    assert spec.resolved_path == DEFAULT_PATH
    scaling = spec.resolved_scaling
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 5)
    assert scaling.target_cpu_utilization_percentage == 80


def test_a_minimal_workflow_gets_its_run_management_defaults() -> None:
    spec = WorkflowSpec.model_validate(MINIMAL_WORKFLOW)
    assert spec.concurrency == 10
    assert spec.retention.successful_runs == 10
    assert spec.retention.failed_runs == 10
    assert spec.retention.ttl_seconds_after_finished is None
    assert spec.steps[0].depends_on is None


def test_a_minimal_run_has_an_empty_input_and_is_not_cancelled() -> None:
    spec = WorkflowRunSpec.model_validate({"workflowRef": "trade"})
    assert spec.input == {}
    assert spec.cancel is False


def test_fields_are_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    wire = {
        "image": "stepline/echo:1",
        "timeoutSeconds": 5,
        "scaling": {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
        "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
    }
    spec = ServiceStepSpec.model_validate(wire)
    assert spec.scaling is not None
    assert spec.scaling.target_cpu_utilization_percentage == 60
    dumped = spec.to_wire()
    assert dumped["scaling"] == {**wire["scaling"], "predictive": False}
    assert dumped["env"] == wire["env"]
    assert dumped["timeoutSeconds"] == 5
    assert "timeout_seconds" not in dumped


def test_python_names_are_accepted_too() -> None:
    spec = ServiceStepSpec(image="x", timeout_seconds=7)
    assert spec.to_wire()["timeoutSeconds"] == 7


def test_a_wire_object_survives_a_round_trip_unchanged() -> None:
    body = _body(
        "Workflow",
        {
            "steps": [
                {"name": "validation", "stepRef": "user-validation", "input": "input.user"},
                {
                    "name": "order",
                    "stepRef": "order-processing",
                    "when": "steps.validation.output.approved",
                    "dependsOn": ["validation"],
                    "retry": {"limit": 0},
                },
            ],
            "output": "steps.order.output",
        },
    )
    workflow = Workflow.from_body(body)
    again = Workflow.from_body(workflow.to_wire())
    assert again == workflow
    assert again.to_wire()["spec"]["steps"][1]["retry"]["backoff"]["maxSeconds"] == 30.0


def test_from_body_reads_metadata_and_a_missing_status_as_the_initial_one() -> None:
    run = WorkflowRun.from_body(_body("WorkflowRun", {"workflowRef": "trade", "input": {"a": 1}}))
    assert run.metadata.name == "sample"
    assert run.metadata.namespace == "shop"
    assert run.metadata.generation == 2
    assert run.status.phase == RunPhase.PENDING
    assert run.status.steps == []


def test_from_body_ignores_status_fields_it_does_not_know() -> None:
    body = _body("ServiceStep", MINIMAL_STEP)
    body["status"] = {"replicas": 2, "writtenByANewerOperator": True}
    assert ServiceStep.from_body(body).status.replicas == 2


def test_from_body_refuses_an_unknown_spec_field_naming_object_and_field() -> None:
    with pytest.raises(InvalidObjectError, match=r"ServiceStep shop/sample: spec\.imagePullPolicy"):
        ServiceStep.from_body(_body("ServiceStep", {**MINIMAL_STEP, "imagePullPolicy": "Always"}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", "8080"), ("timeoutSeconds", 1.5), ("port", True)],
    ids=["a-port-in-quotes", "a-fraction-of-a-second", "a-boolean-port"],
)
def test_from_body_is_as_strict_about_types_as_the_api_server(field: str, value: Any) -> None:
    with pytest.raises(InvalidObjectError, match=rf"spec\.{field}"):
        ServiceStep.from_body(_body("ServiceStep", {**MINIMAL_STEP, field: value}))


def test_from_body_accepts_an_integer_where_a_number_is_expected() -> None:
    spec = {**MINIMAL_STEP, "retry": {"backoff": {"initialSeconds": 2, "maxSeconds": 10}}}
    step = ServiceStep.from_body(_body("ServiceStep", spec))
    assert step.spec.retry.backoff.initial_seconds == 2.0


def test_from_body_accepts_a_kopf_style_read_only_mapping() -> None:
    body = MappingProxyType(
        {**_body("ServiceStep", MINIMAL_STEP), "spec": MappingProxyType(MINIMAL_STEP)}
    )
    assert ServiceStep.from_body(body).spec.image == "stepline/echo:1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "set one of image"),
        ({"image": "a", "url": "http://b"}, "mutually exclusive"),
        ({"url": "http://b", "port": 80}, "apply to a deployed step"),
        ({"image": "a", "scaling": {"minReplicas": 3, "maxReplicas": 2}}, "minReplicas must not"),
        ({"image": "a", "retry": {"backoff": {"initialSeconds": 40}}}, "initialSeconds must not"),
        ({"image": "a", "env": [{"name": "A", "value": "1", "valueFrom": SECRET}]}, "mutually"),
        ({"image": "a", "scaling": {"metrics": [{"type": "InFlight", "target": 0}]}},
         "greater than 0"),
        ({"image": "a", "scaling": {"metrics": [{"type": "InFlight", "target": -1}]}},
         "greater than 0"),
        ({"image": "a", "scaling": {"metrics": [{"type": "InFlight"}]}}, "need a target"),
        ({"image": "a", "scaling": {"metrics": [{"type": "Queue", "target": 1}]}}, "CPU"),
        ({"image": "a", "scaling": {"metrics": [{"type": "CPU", "target": 150}]}},
         "percentage from 1 to 100"),
        ({"image": "a", "scaling": {"predictive": True}}, "predictive scaling forecasts"),
        ({"image": "a", "scaling": {"predictive": True, "metrics": [{"type": "CPU"}]}},
         "needs an InFlight or CallsPerSecond"),
        ({"image": "a", "scaling": {"metrics": [{"type": "InFlight", "target": 1},
                                                {"type": "InFlight", "target": 2}]}},
         "duplicate"),
    ],
    ids=["neither-image-nor-url", "both-image-and-url", "port-with-url", "min-above-max",
         "backoff-initial-above-max", "env-value-and-value-from", "scaling-target-zero",
         "scaling-target-negative", "scaling-target-missing", "scaling-unknown-metric",
         "scaling-cpu-target-above-100", "predictive-without-metrics", "predictive-on-cpu-only",
         "scaling-metric-twice"],
)  # fmt: skip
def test_a_service_step_spec_is_checked_by_the_same_rules_as_at_the_api_server(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceStepSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"name": "a", "stepRef": "x"}, {"name": "a", "stepRef": "y"}], "unique"),
        ([{"name": "a", "stepRef": "x", "dependsOn": ["b"]}], "must name steps"),
        ([{"name": "a", "stepRef": "x", "dependsOn": ["a"]}], "cannot depend on itself"),
    ],
    ids=["duplicate-names", "dangling-depends-on", "self-dependency"],
)
def test_a_workflow_spec_is_checked_by_the_same_rules_as_at_the_api_server(
    steps: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkflowSpec.model_validate({"steps": steps})


def test_set_and_map_lists_refuse_duplicates_as_the_api_server_does() -> None:
    with pytest.raises(ValidationError, match="env: duplicate entries A"):
        ServiceStepSpec.model_validate(
            {"image": "a", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}
        )
    steps = [{"name": "a", "stepRef": "s"}, {"name": "b", "stepRef": "s", "dependsOn": ["a", "a"]}]
    with pytest.raises(ValidationError, match="dependsOn: duplicate entries a"):
        WorkflowSpec.model_validate({"steps": steps})


def test_a_service_step_name_must_be_able_to_name_a_service() -> None:
    with pytest.raises(InvalidObjectError, match="DNS-1035"):
        ServiceStep.from_body(_body("ServiceStep", MINIMAL_STEP, name="9-lives"))


def test_run_input_must_be_a_json_object_within_the_size_cap() -> None:
    with pytest.raises(ValidationError, match="at most 65536"):
        WorkflowRunSpec.model_validate({"workflowRef": "w", "input": {"blob": "x" * 70000}})
    with pytest.raises(ValidationError, match="at most 64 are allowed"):
        WorkflowRunSpec.model_validate(
            {"workflowRef": "w", "input": {f"k{i}": i for i in range(65)}}
        )
    with pytest.raises(ValidationError):
        WorkflowRunSpec.model_validate({"workflowRef": "w", "input": ["not", "an", "object"]})


def test_transition_rules_are_left_to_the_api_server() -> None:
    rules = [rule for rule in WorkflowRunSpec.rules if rule.is_transition]
    assert {rule.field_path for rule in rules} == {".workflowRef", ".input", ".cancel", ".rerunOf"}
    # Evaluating them needs the stored object; validating a spec alone does not try.
    WorkflowRunSpec.model_validate({"workflowRef": "w", "cancel": True})


def test_instances_with_the_same_fields_share_one_set_of_their_names_and_read_the_same() -> None:
    def step(name: str) -> ServiceStep:
        return ServiceStep.from_body(
            {
                "apiVersion": "stepline.io/v1alpha1",
                "kind": "ServiceStep",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"url": f"http://{name}.example/"},
            }
        )

    first, second = step("a"), step("b")
    assert first.model_fields_set is second.model_fields_set
    assert first.spec.model_fields_set is second.spec.model_fields_set
    assert first.metadata.name == "a"
    assert second.metadata.name == "b"
    assert second.to_wire()["spec"]["url"] == "http://b.example/"
    first.spec.url = "http://c.example/"  # an assignment still works
    assert second.spec.url == "http://b.example/"
