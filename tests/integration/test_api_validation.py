"""The API at a real API server: bad manifests are refused naming the field, good ones apply,
and kubectl shows the kinds the way a user expects.

No operator runs here: everything is the CRDs' doing (schema, defaults, CEL rules). The same
malformed manifests are also fed to the models, which must refuse them too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepline.api import (
    KINDS,
    ActiveRun,
    ConditionStatus,
    ConditionType,
    InvalidObjectError,
    LatencyQuantiles,
    Reason,
    RunPhase,
    RunStatistics,
    ScheduleSkip,
    ServiceStepSpec,
    ServiceStepStatus,
    SkipReason,
    StepError,
    StepPhase,
    StepRecord,
    WorkflowRunSpec,
    WorkflowRunStatus,
    WorkflowScheduleSpec,
    WorkflowScheduleStatus,
    WorkflowSpec,
    WorkflowStatus,
    WorkflowStepStatus,
    record_payload,
    set_condition,
)
from stepline.api.workflows import ExpressionProblem
from tests.integration.localcluster import LocalCluster, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
API_VERSION = "stepline.io/v1alpha1"
CRD_NAMES = [f"{kind.kind_info.plural}.stepline.io" for kind in KINDS]
KIND_MODELS = {kind.__name__: kind for kind in KINDS}
Manifest = dict[str, Any]


def service_step(name: str = "svc", **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceStep",
        "metadata": {"name": name},
        "spec": {"image": "stepline/echo:0.1.0", **spec},
    }


def workflow(name: str = "flow", steps: list[Manifest] | None = None, **spec: Any) -> Manifest:
    chain = steps if steps is not None else [{"name": "first", "stepRef": "svc"}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"steps": chain, **spec},
    }


def run(name: str = "run", **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": "flow", "input": {"user": "ada"}, **spec},
    }


def wf_schedule(name: str = "nightly", **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowSchedule",
        "metadata": {"name": name},
        "spec": {"workflowRef": "flow", "schedule": "0 2 * * *", **spec},
    }


def without(manifest: Manifest, *path: str) -> Manifest:
    """The manifest with the field at `path` removed."""
    result = copy.deepcopy(manifest)
    node = result
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return result


def step(name: str, **fields: Any) -> Manifest:
    return {"name": name, "stepRef": "svc", **fields}


@dataclass(frozen=True)
class Malformed:
    """A manifest the API server must refuse, and what its message must mention."""

    id: str
    manifest: Manifest
    mentions: tuple[str, ...]


MALFORMED = [
    # ServiceStep
    Malformed("both-image-and-url", service_step(url="http://risk.example.com/score"),
              ("spec.url", "mutually exclusive")),
    Malformed("neither-image-nor-url", without(service_step(timeoutSeconds=5), "spec", "image"),
              ("spec", "set one of image")),
    Malformed("url-step-with-a-port",
              without(service_step(url="http://x", port=80), "spec", "image"), ("spec", "port")),
    Malformed("port-as-a-word", service_step(port="http"), ("spec.port", "integer")),
    Malformed("port-zero", service_step(port=0), ("spec.port",)),
    Malformed("port-above-65535", service_step(port=70000), ("spec.port",)),
    Malformed("url-without-http", without(service_step(url="ftp://x"), "spec", "image"),
              ("spec.url",)),
    Malformed("image-with-a-space", service_step(image="stepline/echo 1"), ("spec.image",)),
    Malformed("path-without-leading-slash", service_step(path="validate"), ("spec.path",)),
    Malformed("min-replicas-above-max", service_step(scaling={"minReplicas": 5, "maxReplicas": 2}),
              ("spec.scaling.minReplicas", "must not exceed maxReplicas")),
    Malformed("zero-max-replicas", service_step(scaling={"maxReplicas": 0}),
              ("spec.scaling.maxReplicas",)),
    Malformed("cpu-target-above-100", service_step(scaling={"targetCPUUtilizationPercentage": 150}),
              ("spec.scaling.targetCPUUtilizationPercentage",)),
    Malformed("adaptive-timeout-multiplier-below-one",
              service_step(adaptiveTimeout={"multiplier": 0.5}),
              ("spec.adaptiveTimeout.multiplier",)),
    Malformed("scaling-target-zero",
              service_step(scaling={"metrics": [{"type": "InFlight", "target": 0}]}),
              ("spec.scaling.metrics[0].target",)),
    Malformed("scaling-target-negative",
              service_step(scaling={"metrics": [{"type": "CallsPerSecond", "target": -2}]}),
              ("spec.scaling.metrics[0].target",)),
    Malformed("scaling-unknown-metric",
              service_step(scaling={"metrics": [{"type": "QueueLength", "target": 3}]}),
              ("spec.scaling.metrics[0].type", "QueueLength")),
    Malformed("scaling-target-missing",
              service_step(scaling={"metrics": [{"type": "InFlight"}]}),
              ("spec.scaling.metrics[0].target", "need a target")),
    Malformed("scaling-cpu-target-above-100",
              service_step(scaling={"metrics": [{"type": "CPU", "target": 120}]}),
              ("spec.scaling.metrics[0].target", "percentage from 1 to 100")),
    Malformed("scaling-metric-twice",
              service_step(scaling={"metrics": [{"type": "InFlight", "target": 1},
                                                {"type": "InFlight", "target": 2}]}),
              ("spec.scaling.metrics[1]", "Duplicate")),
    Malformed("predictive-without-a-load-metric",
              service_step(scaling={"predictive": True, "metrics": [{"type": "CPU"}]}),
              ("spec.scaling.predictive", "needs an InFlight or CallsPerSecond")),
    Malformed("negative-timeout", service_step(timeoutSeconds=-1), ("spec.timeoutSeconds",)),
    Malformed("fractional-timeout", service_step(timeoutSeconds=1.5), ("spec.timeoutSeconds",)),
    Malformed("backoff-initial-above-max",
              service_step(retry={"backoff": {"initialSeconds": 60, "maxSeconds": 10}}),
              ("spec.retry.backoff.initialSeconds", "must not exceed maxSeconds")),
    Malformed("retry-limit-above-10", service_step(retry={"limit": 11}), ("spec.retry.limit",)),
    Malformed("unknown-retry-on-value", service_step(retry={"retryOn": ["Always"]}),
              ("spec.retry.retryOn[0]", "Always")),
    Malformed("env-value-and-value-from",
              service_step(env=[{"name": "TOKEN", "value": "x",
                                 "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}}]),
              ("spec.env[0]", "mutually exclusive")),
    Malformed("duplicate-env-names",
              service_step(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
              ("spec.env[1]", "Duplicate")),
    Malformed("cpu-request-not-a-quantity", service_step(resources={"requests": {"cpu": "lots"}}),
              ("spec.resources.requests.cpu",)),
    Malformed("unknown-spec-field", service_step(imagePullPolicy="Always"),
              ("spec.imagePullPolicy", "unknown field")),
    Malformed("service-step-name-starting-with-a-digit", service_step(name="9lives"),
              ("metadata.name", "DNS-1035")),
    Malformed("uppercase-service-step-name", service_step(name="UserValidation"),
              ("metadata.name",)),
    Malformed("missing-spec", without(service_step(), "spec"), ("spec", "Required value")),
    # Workflow
    Malformed("no-steps", workflow(steps=[]), ("spec.steps",)),
    Malformed("missing-steps", without(workflow(), "spec", "steps"),
              ("spec.steps", "Required value")),
    Malformed("duplicate-step-names", workflow(steps=[step("a"), step("a")]),
              ("spec.steps", "unique")),
    Malformed("depends-on-a-missing-step", workflow(steps=[step("a"), step("b", dependsOn=["c"])]),
              ("spec.steps", "dependsOn must name steps")),
    Malformed("step-depends-on-itself", workflow(steps=[step("a", dependsOn=["a"])]),
              ("spec.steps[0].dependsOn", "cannot depend on itself")),
    Malformed("repeated-dependency", workflow(steps=[step("a"), step("b"),
                                                     step("c", dependsOn=["a", "a"])]),
              ("spec.steps[2].dependsOn[1]", "Duplicate")),
    Malformed("uppercase-step-name", workflow(steps=[step("Validate")]),
              ("spec.steps[0].name",)),
    Malformed("step-ref-with-underscore", workflow(steps=[{"name": "a", "stepRef": "user_check"}]),
              ("spec.steps[0].stepRef",)),
    Malformed("step-without-step-ref", workflow(steps=[{"name": "a"}]),
              ("spec.steps[0]", "a step names either stepRef (a ServiceStep to call) or "
               "approval (a person decides)")),
    Malformed("approval-step-with-a-retry", workflow(steps=[
        {"name": "a", "approval": {}, "retry": {"limit": 1}}]),
              ("spec.steps[0].approval", "an approval step takes no forEach, compensation, "
               "retry, timeoutSeconds or input")),
    Malformed("approval-timeout-below-a-minute", workflow(steps=[
        {"name": "a", "approval": {"timeoutSeconds": 5}}]),
              ("spec.steps[0].approval.timeoutSeconds",)),
    Malformed("step-ref-as-a-number", workflow(steps=[{"name": "a", "stepRef": 7}]),
              ("spec.steps[0].stepRef", "string")),
    Malformed("unknown-step-field", workflow(steps=[step("a", inputs="input")]),
              ("spec.steps[0].inputs", "unknown field")),
    Malformed("fifty-one-steps", workflow(steps=[step(f"s{i}") for i in range(51)]),
              ("spec.steps", "at most 50")),
    Malformed("expression-too-long", workflow(steps=[step("a", input="1 + " * 1100 + "1")]),
              ("spec.steps[0].input", "4096")),
    Malformed("empty-when", workflow(steps=[step("a", when="")]), ("spec.steps[0].when",)),
    Malformed("zero-concurrency", workflow(concurrency=0), ("spec.concurrency",)),
    Malformed("negative-history-limit", workflow(retention={"successfulRuns": -1}),
              ("spec.retention.successfulRuns",)),
    Malformed("workflow-name-longer-than-a-label", workflow(name="w" * 64),
              ("metadata.name", "63")),
    # WorkflowRun
    Malformed("run-without-workflow-ref", without(run(), "spec", "workflowRef"),
              ("spec.workflowRef", "Required value")),
    Malformed("workflow-ref-not-a-name", run(workflowRef="Trade Flow"), ("spec.workflowRef",)),
    Malformed("input-not-an-object", run(input="ada"), ("spec.input", "object")),
    Malformed("oversized-input", run(input={f"field{i}": i for i in range(65)}),
              ("spec.input", "at most 64")),
    Malformed("cancel-as-a-word", run(cancel="yes"), ("spec.cancel", "boolean")),
    Malformed("unknown-run-field", run(priority="high"), ("spec.priority", "unknown field")),
    # WorkflowSchedule: each CEL rule's message, and the schema's bounds
    Malformed("schedule-with-cron-tz", wf_schedule(schedule="CRON_TZ=Europe/Vienna 0 2 * * *"),
              ("spec.schedule", "put the time zone in spec.timeZone, not in the schedule")),
    Malformed("schedule-with-tz", wf_schedule(schedule="TZ=UTC 0 2 * * *"),
              ("spec.schedule", "(TZ=, CRON_TZ=)")),
    Malformed("schedule-with-seconds", wf_schedule(schedule="0 0 2 * * *"),
              ("spec.schedule", "schedule must be five cron fields (minute 0-59")),
    Malformed("schedule-every", wf_schedule(schedule="@every 5m"),
              ("spec.schedule", "@yearly, @annually, @monthly, @weekly, @daily, @midnight")),
    Malformed("schedule-minute-60", wf_schedule(schedule="60 2 * * *"),
              ("spec.schedule", "schedule must be five cron fields")),
    Malformed("schedule-last-day", wf_schedule(schedule="0 2 L * *"),
              ("spec.schedule", "schedule must be five cron fields")),
    Malformed("schedule-hashed", wf_schedule(schedule="H 2 * * *"),
              ("spec.schedule", "schedule must be five cron fields")),
    Malformed("schedule-nth-weekday", wf_schedule(schedule="0 2 * * 1#2"),
              ("spec.schedule", "schedule must be five cron fields")),
    Malformed("schedule-question-mark-in-minutes", wf_schedule(schedule="? 2 * * *"),
              ("spec.schedule", "schedule must be five cron fields")),
    Malformed("time-zone-not-a-name", wf_schedule(timeZone="Europe/"),
              ("spec.timeZone", "timeZone is an IANA name such as Europe/Vienna")),
    Malformed("time-zone-with-a-space", wf_schedule(timeZone="Central European"),
              ("spec.timeZone", "timeZone is an IANA name such as Europe/Vienna")),
    Malformed("schedule-name-longer-than-52", wf_schedule(name="s" * 53),
              ("metadata.name", "at most 52 characters")),
    Malformed("unknown-concurrency-policy", wf_schedule(concurrencyPolicy="Queue"),
              ("spec.concurrencyPolicy", "Unsupported value")),
    Malformed("negative-starting-deadline", wf_schedule(startingDeadlineSeconds=-1),
              ("spec.startingDeadlineSeconds",)),
    Malformed("history-limit-above-1000", wf_schedule(failedRunsHistoryLimit=1001),
              ("spec.failedRunsHistoryLimit",)),
    Malformed("schedule-without-workflow-ref", without(wf_schedule(), "spec", "workflowRef"),
              ("spec.workflowRef", "Required value")),
]  # fmt: skip


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    names = [f"crd/{name}" for name in CRD_NAMES]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return cluster


def apply_strict(cluster: LocalCluster, namespace: str, manifest: Manifest) -> Any:
    return cluster.kubectl(
        "apply", "--validate=strict", "-n", namespace, "-f", "-",
        stdin=json.dumps(manifest), check=False,
    )  # fmt: skip


def exists(cluster: LocalCluster, namespace: str, manifest: Manifest) -> bool:
    kind = KIND_MODELS[manifest["kind"]].kind_info.plural
    name = manifest["metadata"]["name"]
    return cluster.kubectl("get", "-n", namespace, kind, name, check=False).returncode == 0


def test_the_table_has_at_least_thirty_distinct_cases() -> None:
    assert len(MALFORMED) >= 30
    assert len({case.id for case in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_a_malformed_manifest_is_rejected_with_a_message_naming_the_field(
    crds: LocalCluster, namespace: str, case: Malformed
) -> None:
    result = apply_strict(crds, namespace, case.manifest)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    for mention in case.mentions:
        assert mention in result.stderr, f"{mention!r} not in: {result.stderr}"
    assert not exists(crds, namespace, case.manifest)


@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_the_models_reject_every_manifest_the_api_server_rejects(case: Malformed) -> None:
    with pytest.raises(InvalidObjectError):
        KIND_MODELS[case.manifest["kind"]].from_body(case.manifest)


MUTATIONS = [
    ("workflow-ref", {"workflowRef": "another-flow"}, "spec.workflowRef", "immutable"),
    ("input", {"input": {"user": "grace"}}, "spec.input", "immutable"),
    ("input-added-key", {"input": {"amount": 10}}, "spec.input", "immutable"),
]


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [mutation[1:] for mutation in MUTATIONS],
    ids=[mutation[0] for mutation in MUTATIONS],
)
def test_a_runs_request_cannot_be_changed_after_creation(
    crds: LocalCluster, namespace: str, changes: Manifest, field: str, says: str
) -> None:
    assert apply_strict(crds, namespace, run()).returncode == 0
    patch = json.dumps({"spec": changes})
    result = crds.kubectl(
        "patch", "-n", namespace, "workflowrun", "run", "--type=merge", "-p", patch, check=False
    )
    assert result.returncode != 0
    assert field in result.stderr
    assert says in result.stderr
    stored = crds.get_json("-n", namespace, "workflowrun", "run")
    assert stored["spec"]["workflowRef"] == "flow"
    assert stored["spec"]["input"] == {"user": "ada"}


def test_a_changed_input_is_refused_by_kubectl_apply_too(
    crds: LocalCluster, namespace: str
) -> None:
    assert apply_strict(crds, namespace, run()).returncode == 0
    result = apply_strict(crds, namespace, run(input={"user": "grace"}))
    assert result.returncode != 0
    assert "spec.input" in result.stderr


def test_a_run_can_be_cancelled_but_not_uncancelled(crds: LocalCluster, namespace: str) -> None:
    assert apply_strict(crds, namespace, run()).returncode == 0
    patch = ["patch", "-n", namespace, "workflowrun", "run", "--type=merge", "-p"]
    crds.kubectl(*patch, '{"spec": {"cancel": true}}')
    result = crds.kubectl(*patch, '{"spec": {"cancel": false}}', check=False)
    assert result.returncode != 0
    assert "spec.cancel" in result.stderr
    assert crds.get_json("-n", namespace, "workflowrun", "run")["spec"]["cancel"] is True


def test_the_examples_apply_cleanly(crds: LocalCluster, namespace: str) -> None:
    result = crds.kubectl(
        "apply", "--validate=strict", "-n", namespace,
        "-f", str(REPO / "examples" / "finance"), "-f", str(REPO / "examples" / "manufacturing"),
    )  # fmt: skip
    assert result.stdout.count(" created") == 14
    steps = crds.get_json("-n", namespace, "servicesteps")["items"]
    assert sorted(item["metadata"]["name"] for item in steps) == [
        "device-monitoring",
        "order-cancellation",
        "order-processing",
        "production-scheduling",
        "quality-inspection",
        "trade-settlement",
        "user-validation",
    ]


def test_kubectl_get_stepline_lists_all_three_kinds_with_their_columns(
    crds: LocalCluster, namespace: str
) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "finance"))
    listing = crds.kubectl("get", "stepline", "-n", namespace).stdout
    for line in (
        "servicestep.stepline.io/user-validation",
        "servicestep.stepline.io/order-processing",
        "servicestep.stepline.io/trade-settlement",
        "servicestep.stepline.io/order-cancellation",
        "workflow.stepline.io/trade",
        "workflowrun.stepline.io/trade-ada-1",
        "workflowrun.stepline.io/trade-charles-1",
    ):
        assert line in listing
    for header in ("READY", "REPLICAS", "STEPS", "RUNS", "WORKFLOW", "PHASE", "DURATION"):
        assert header in listing
    short = crds.kubectl("get", "sstep,wf,wfrun", "-n", namespace, "-o", "name").stdout.split()
    assert len(short) == 7


def test_kubectl_explain_shows_the_field_descriptions(crds: LocalCluster) -> None:
    def explained() -> str | None:
        out = crds.kubectl("explain", "workflow.spec", check=False)
        return out.stdout if out.returncode == 0 else None

    text = wait_until(explained, timeout=30, what="kubectl explain workflow.spec")
    assert "The steps and how runs are managed." in text
    assert "The steps. Each starts once the steps it depends on are done" in text
    assert "Most runs executing at once" in text
    steps = crds.kubectl("explain", "workflow.spec.steps.input").stdout
    assert "CEL expression computing the JSON sent to the step" in steps


@pytest.mark.parametrize(
    ("manifest", "model", "minimal"),
    [
        (service_step, ServiceStepSpec, {"image": "stepline/echo:0.1.0", "scaling": {}}),
        (workflow, WorkflowSpec, {"steps": [{"name": "a", "stepRef": "svc", "retry": {}}]}),
        (run, WorkflowRunSpec, {"workflowRef": "flow"}),
        (wf_schedule, WorkflowScheduleSpec, {"workflowRef": "flow", "schedule": "@daily"}),
    ],
    ids=["service-step", "workflow", "workflow-run", "workflow-schedule"],
)
def test_the_api_server_fills_in_the_same_defaults_as_the_models(
    crds: LocalCluster,
    namespace: str,
    manifest: Callable[..., Manifest],
    model: type[ServiceStepSpec | WorkflowSpec | WorkflowRunSpec | WorkflowScheduleSpec],
    minimal: Manifest,
) -> None:
    body = manifest(name="minimal")
    body["spec"] = minimal
    assert apply_strict(crds, namespace, body).returncode == 0
    stored = crds.get_json("-n", namespace, body["kind"].lower(), "minimal")
    assert stored["spec"] == model.model_validate(minimal).to_wire()


def _full_statuses() -> dict[str, Manifest]:
    """A status of each kind with every field the operator may write set."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    conditions = set_condition(
        [],
        condition_type=ConditionType.READY,
        status=ConditionStatus.TRUE,
        reason=Reason.AVAILABLE,
        message="all replicas ready",
        observed_generation=1,
        now=now,
    )
    quantiles = LatencyQuantiles(p50=0.1, p90=0.2, p99=0.5)
    output, info = record_payload({"orderId": "o-1"})
    _, truncated = record_payload({"blob": "x" * 20000})
    return {
        "ServiceStep": ServiceStepStatus(
            observed_generation=1, conditions=conditions, replicas=3, ready_replicas=2,
            desired_replicas=3, endpoint="http://svc.ns.svc:8080/",
        ).to_wire(),
        "Workflow": WorkflowStatus(
            observed_generation=1, conditions=conditions, steps_ready="1/1",
            steps=[WorkflowStepStatus(name="first", step_ref="svc", ready=False,
                                      message="not found", latency_seconds=quantiles)],
            expression_errors=[ExpressionProblem(field="spec.output", expression="1 +", line=1,
                                                 column=4, message="Syntax error")],
            runs=RunStatistics(total=4, active=1, succeeded=2, failed=1, cancelled=0,
                               success_rate=0.67, latency_seconds=quantiles,
                               predicted_duration_seconds=0.3, last_run_name="run"),
        ).to_wire(),
        "WorkflowRun": WorkflowRunStatus(
            observed_generation=1, phase=RunPhase.RUNNING, conditions=conditions,
            workflow_generation=1, current_step="second", started_at=now, finished_at=now,
            duration_seconds=1.5, output=output, output_info=info,
            steps=[
                StepRecord(name="first", phase=StepPhase.SUCCEEDED, attempts=1, started_at=now,
                           finished_at=now, duration_seconds=0.5, output=None,
                           output_info=truncated),
                StepRecord(name="second", phase=StepPhase.FAILED, attempts=3,
                           error=StepError(reason=Reason.SERVER_ERROR, message="503 thrice",
                                           http_status=503, body="unavailable")),
            ],
        ).to_wire(),
        "WorkflowSchedule": WorkflowScheduleStatus(
            observed_generation=1, conditions=conditions, last_schedule_time=now,
            last_successful_time=now, next_schedule_time=now + timedelta(minutes=1),
            last_skip=ScheduleSkip(time=now, reason=SkipReason.FORBID), active_count=101,
            active=[ActiveRun(name="nightly-29458080", uid="8d1f6a4e-0000-4000-8000-000000000001")],
        ).to_wire(),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "printed"),
    [
        (service_step, "http://svc.ns.svc:8080/"),
        (workflow, "1/1"),
        (run, "Running"),
        (wf_schedule, "2026-01-01T12:01:00Z"),
    ],
    ids=["service-step", "workflow", "workflow-run", "workflow-schedule"],
)
def test_every_status_field_the_operator_writes_is_kept_by_the_api_server(
    crds: LocalCluster, namespace: str, manifest: Callable[..., Manifest], printed: str
) -> None:
    body = manifest()
    assert apply_strict(crds, namespace, body).returncode == 0
    status = _full_statuses()[body["kind"]]
    resource = KIND_MODELS[body["kind"]].kind_info.plural
    name = body["metadata"]["name"]
    crds.kubectl(
        "patch", "-n", namespace, resource, name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    assert crds.get_json("-n", namespace, resource, name)["status"] == status
    assert printed in crds.kubectl("get", "-n", namespace, resource, name, "-o", "wide").stdout
