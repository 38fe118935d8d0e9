"""Finished WorkflowRuns are pruned by their Workflow's retention policy, and the Workflow's
status carries the statistics of its runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import get, service_step, wait_ready
from tests.integration.stepservices import (
    StepBed,
    ThreadedStepServer,
    apply_workflow,
    start_run,
    wait_finished,
    wait_ready_step,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration


@pytest.fixture
def fast_operator(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator that prunes every second. Its step's in-cluster address does not resolve
    here (no override), so every run fails fast, with no step server needed."""
    process = OperatorProcess(
        cluster, (namespace,), tmp_path / "operator.log",
        extra_env={"STEPLINE_RETENTION_INTERVAL_SECONDS": "1"},
    ).start()  # fmt: skip
    try:
        yield process
    finally:
        process.stop()


def test_finished_runs_beyond_the_history_limit_are_deleted_and_counted(
    cluster: LocalCluster, namespace: str, fast_operator: OperatorProcess
) -> None:
    cluster.apply(service_step("target", namespace, image="example.invalid/target:1"))
    wait_ready(cluster, "servicestep", "target", namespace)
    cluster.apply(
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "flow", "namespace": namespace},
            "spec": {
                "steps": [{"name": "call", "stepRef": "target", "timeoutSeconds": 1,
                           "retry": {"limit": 0}}],
                "retention": {"failedRuns": 1, "successfulRuns": 1},
            },
        }
    )  # fmt: skip
    for index in range(3):
        cluster.apply(
            {
                "apiVersion": "stepline.io/v1alpha1",
                "kind": "WorkflowRun",
                "metadata": {"name": f"run-{index}", "namespace": namespace},
                "spec": {"workflowRef": "flow", "input": {"n": index}},
            }
        )

    def runs_left() -> list[str] | None:
        items = cluster.get_json("workflowruns", "-n", namespace)["items"]
        phases = [item.get("status", {}).get("phase") for item in items]
        if len(items) == 1 and phases == ["Failed"]:
            return [item["metadata"]["name"] for item in items]
        return None

    (kept,) = wait_until(runs_left, timeout=90, what="two of three failed runs to be pruned")
    assert kept in {"run-0", "run-1", "run-2"}
    statistics = wait_until(
        lambda: cluster.get_json("workflow", "flow", "-n", namespace).get("status", {}).get("runs"),
        timeout=30,
        what="run statistics in the Workflow's status",
    )
    assert statistics["failed"] >= 1
    assert statistics["successRate"] == 0


def test_succeeded_runs_give_the_workflow_a_predicted_duration_even_after_they_are_deleted(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    server = ThreadedStepServer().start()
    operator = OperatorProcess(
        cluster, (namespace,), tmp_path / "operator.log",
        extra_env={
            "STEPLINE_RETENTION_INTERVAL_SECONDS": "1",
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps({f"{namespace}/echo": server.base_url}),
        },
    )  # fmt: skip
    bed = StepBed(cluster, namespace, server, operator)
    try:
        operator.start()
        cluster.apply(service_step("echo", namespace, image="stepline/echo:0.1.0", path="/echo"))
        wait_ready_step(bed, "echo")
        steps = [{"name": "a", "stepRef": "echo"},
                 {"name": "b", "stepRef": "echo", "when": "input.n % 2 == 0"}]  # fmt: skip
        apply_workflow(bed, "flow", steps, retention={"successfulRuns": 2})
        for index in range(5):
            start_run(bed, f"run-{index}", "flow", {"n": index})

        def predicted() -> dict[str, float] | None:
            runs = cluster.get_json("workflow", "flow", "-n", namespace).get("status", {})
            found = (runs.get("runs") or {}).get("predictedDuration")
            kept = cluster.get_json("workflowruns", "-n", namespace)["items"]
            return found if found and found["runs"] == 5 and len(kept) == 2 else None

        # From all 5 runs, though retention keeps 2: the operator remembers the others.
        what = "a prediction from the 5 runs, 3 of them deleted"
        prediction = wait_until(predicted, timeout=30, what=what)
    finally:
        operator.stop()
        server.stop()
    # The step answers at once: each run takes milliseconds of the operator's own time.
    assert 0 < prediction["p50"] <= prediction["p95"] < 2


def test_a_running_run_shows_when_it_should_finish_from_the_workflows_past_runs(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    server = ThreadedStepServer().start()
    # Five quick runs (0.2 s each) teach the operator; the sixth is held for 6 s.
    server.answer("/echo", *[Answer(json={"ok": True}, delay=0.2)] * 5,
                  Answer(json={"ok": True}, delay=6))  # fmt: skip
    operator = OperatorProcess(
        cluster, (namespace,), tmp_path / "operator.log",
        extra_env={"STEPLINE_ENDPOINT_OVERRIDES": json.dumps({"echo": server.base_url})},
    )  # fmt: skip
    bed = StepBed(cluster, namespace, server, operator)
    try:
        operator.start()
        cluster.apply(service_step("echo", namespace, image="stepline/echo:0.1.0", path="/echo"))
        wait_ready_step(bed, "echo")
        apply_workflow(bed, "flow", [{"name": "a", "stepRef": "echo"}])
        for index in range(5):
            start_run(bed, f"quick-{index}", "flow", {"n": index})
            assert wait_finished(bed, f"quick-{index}")["status"]["phase"] == "Succeeded"
        start_run(bed, "held", "flow", {"n": 5})
        running = wait_until(
            lambda: (run := get(cluster, "workflowrun", "held", namespace))
            and run.get("status", {}).get("estimatedCompletionTime") and run,
            timeout=5, what="the held run's estimated completion time",
        )  # fmt: skip
        status = running["status"]
        assert status["phase"] == "Running"
        started = datetime.fromisoformat(status["startedAt"])
        estimate = datetime.fromisoformat(status["estimatedCompletionTime"])
        # From the quick runs: about 0.2 s after the start (whole seconds in the status).
        assert -1 <= (estimate - started).total_seconds() <= 2, status
        finished = wait_finished(bed, "held", timeout=30)
        assert finished["status"]["phase"] == "Succeeded"
        assert "estimatedCompletionTime" not in finished["status"]
    finally:
        operator.stop()
        server.stop()
