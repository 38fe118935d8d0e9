"""Rerunning a failed run (`workflowruns.rerunning`): the source's checks, each refusal naming its
cause; the records a rerun resumes from (Succeeded and Skipped steps copied and marked, every
other step Pending with the attempts made, a forEach step's completed elements kept); the
definition the source recorded, not the Workflow now; the root run's uid; and what
`prepare_rerun` writes and posts, once, after which the source is never read again. The last
tests execute a rerun's start through the real executor: only the failed step is called, under
the root run's key, numbered after the source's attempts."""

from __future__ import annotations

import types
from typing import Any

import pytest

from stepline.api import (
    ItemError,
    ItemsSummary,
    PayloadInfo,
    Reason,
    StepPhase,
    StepRecord,
    Workflow,
    WorkflowRun,
    record_payload,
)
from stepline.controllers.workflowruns.rerunning import (
    NOT_A_RERUN,
    RerunRefusal,
    RerunStart,
    check_rerun,
    compute_reused_records,
    prepare_rerun,
)
from stepline.controllers.workflowruns.runner import RunProgress
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.elements import encode_bitmap
from stepline.httpclient.transports import AiohttpTransport
from tests.unit.controllers.fakes import FakeKube, RecordedEvents
from tests.unit.engine.stepservers import Answer, StepServer, build_service_step

API_VERSION = "stepline.io/v1alpha1"
STEPS = [
    {"name": "order", "stepRef": "order"},
    {"name": "pricing", "stepRef": "pricing"},
    {"name": "settlement", "stepRef": "settlement"},
]
STARTED = "2026-12-06T10:00:00+00:00"


def record(name: str, phase: str, attempts: int = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "phase": phase, "attempts": attempts, **fields}


def failed_trade(**status: Any) -> dict[str, Any]:
    """The source: order and pricing succeeded, settlement failed after 3 attempts."""
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": "trade-x7k2p", "namespace": "shop", "uid": "uid-root"},
        "spec": {"workflowRef": "trade", "input": {"account": "a-1", "amount": 12}},
        "status": {
            "phase": "Failed",
            "startedAt": STARTED,
            "workflowGeneration": 4,
            "workflowSpec": {"steps": STEPS},
            "steps": [
                record("order", "Succeeded", output={"orderId": "o-1"}),
                record("pricing", "Succeeded", 2, output={"price": 99}),
                record(
                    "settlement", "Failed", 3, error={"reason": "ServerError", "message": "503"}
                ),
            ],
            **status,
        },
    }


def rerun(name: str = "trade-x7k2p-r1", **spec: Any) -> WorkflowRun:
    return WorkflowRun.from_body({
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": 1},
        "spec": {"workflowRef": "trade", "input": {"amount": 12, "account": "a-1"},
                 "rerunOf": "trade-x7k2p", **spec},
    })  # fmt: skip


def started(source: dict[str, Any], run: WorkflowRun | None = None) -> RerunStart:
    start = check_rerun(run or rerun(), source)
    assert isinstance(start, RerunStart), start
    return start


def refusal(source: dict[str, Any] | None, run: WorkflowRun | None = None) -> RerunRefusal:
    refused = check_rerun(run or rerun(), source)
    assert isinstance(refused, RerunRefusal), refused
    return refused


def test_a_source_that_is_not_there_is_refused_as_not_found_naming_it() -> None:
    refused = refusal(None)
    assert refused.reason is Reason.RERUN_SOURCE_NOT_FOUND
    assert refused.message == (
        "spec.rerunOf: WorkflowRun 'trade-x7k2p' not found in namespace 'shop'; a rerun starts "
        "from a run that still exists"
    )


@pytest.mark.parametrize(
    ("run", "source", "says"),
    [
        (rerun(workflowRef="payout"), failed_trade(), "run 'trade-x7k2p' ran Workflow 'trade', "
         "this run names 'payout'; a rerun runs the same Workflow"),
        (rerun(input={"account": "a-1", "amount": 13}), failed_trade(),
         "this run's spec.input differs from run 'trade-x7k2p''s; a rerun takes the same input"),
        (rerun(), failed_trade(phase="Running"),
         "run 'trade-x7k2p' is Running; only a Failed or Cancelled run is rerun"),
        (rerun(), failed_trade(phase="Succeeded"),
         "run 'trade-x7k2p' is Succeeded; only a Failed or Cancelled run is rerun"),
        (rerun(), failed_trade(compensation={"phase": "Succeeded", "cause": "StepFailed"}),
         "run 'trade-x7k2p' ran its compensation (it undid its steps: Succeeded); the outputs a "
         "rerun would reuse were undone: start a fresh run"),
        (rerun(), failed_trade(workflowSpec=None),
         "run 'trade-x7k2p' holds no record of the definition it ran (status.workflowSpec)"),
        (rerun(), failed_trade(workflowSpec={"steps": [{"name": "order", "stepRef": "Order!"}]}),
         "the definition run 'trade-x7k2p' recorded is not valid"),
    ],
    ids=["another-workflow", "another-input", "running", "succeeded", "compensated",
         "no-definition", "invalid-definition"],
)  # fmt: skip
def test_a_source_the_rerun_cannot_start_from_is_refused_naming_the_cause(
    run: WorkflowRun, source: dict[str, Any], says: str
) -> None:
    refused = refusal(source, run)
    assert refused.reason is Reason.RERUN_NOT_ALLOWED
    assert refused.message.startswith("spec.rerunOf: ")
    assert says in refused.message


def test_a_cancelled_run_may_be_rerun_and_the_input_is_compared_as_json_not_as_text() -> None:
    start = started(failed_trade(phase="Cancelled"))  # the rerun's input has its keys reordered
    assert start.source == "trade-x7k2p"


def test_the_rerun_executes_the_definition_the_source_recorded_not_the_workflow_now() -> None:
    start = started(failed_trade())
    workflow = start.workflow
    assert [step.name for step in workflow.spec.steps] == ["order", "pricing", "settlement"]
    assert (workflow.metadata.name, workflow.metadata.namespace) == ("trade", "shop")
    assert workflow.metadata.generation == 4
    # Its own plan-cache key: never the Workflow's (uid, generation) of another definition.
    assert (workflow.metadata.uid or "").startswith("recorded-")
    other = started(failed_trade(workflowSpec={"steps": STEPS[:2]}))
    assert other.workflow.metadata.uid != workflow.metadata.uid


def test_the_first_run_of_the_chain_keys_the_rerun_and_a_rerun_of_a_rerun_keeps_that_root() -> None:
    assert started(failed_trade()).root_uid == "uid-root"
    second = failed_trade(rerun={"of": "trade-x7k2p", "rootUID": "uid-root", "reusedSteps": []})
    second["metadata"] = {"name": "trade-x7k2p-r1", "namespace": "shop", "uid": "uid-r1"}
    run = rerun("trade-x7k2p-r2", rerunOf="trade-x7k2p-r1")
    assert started(second, run).root_uid == "uid-root"


def test_succeeded_and_skipped_steps_are_copied_marked_and_the_others_start_over_counting() -> None:
    source = failed_trade()
    source["status"]["workflowSpec"] = {"steps": [*STEPS, {"name": "notify", "stepRef": "n"}]}
    source["status"]["steps"][1] = record("pricing", "Skipped", 0)
    start = started(source)

    by_name = {r.name: r for r in start.records}
    assert [r.name for r in start.records] == ["order", "pricing", "settlement", "notify"]
    assert start.reused_steps == ("order", "pricing")
    order = by_name["order"]
    assert (order.phase, order.output, order.reused_from) == (
        StepPhase.SUCCEEDED, {"orderId": "o-1"}, "trade-x7k2p",
    )  # fmt: skip
    assert (by_name["pricing"].phase, by_name["pricing"].reused_from) == (
        StepPhase.SKIPPED, "trade-x7k2p",
    )  # fmt: skip
    settlement = by_name["settlement"]
    assert (settlement.phase, settlement.attempts, settlement.error) == (StepPhase.PENDING, 3, None)
    assert settlement.reused_from is None
    assert by_name["notify"] == StepRecord(name="notify")


def test_a_step_recorded_running_counts_as_called_once_at_least() -> None:
    source = failed_trade()
    source["status"]["steps"][2] = record("settlement", "Running", 0)
    (*_, settlement) = started(source).records
    assert (settlement.phase, settlement.attempts) == (StepPhase.PENDING, 1)


def test_a_succeeded_step_whose_output_was_truncated_runs_again_to_get_it_back() -> None:
    source = failed_trade()
    _, info = record_payload({"blob": "x" * 20_000})
    source["status"]["steps"][1] = record(
        "pricing", "Succeeded", 1, outputInfo=info.to_wire()
    )  # fmt: skip
    start = started(source)
    assert start.reused_steps == ("order",)
    assert (start.records[1].phase, start.records[1].attempts) == (StepPhase.PENDING, 1)


def foreach_record(*, truncated: bool = False) -> StepRecord:
    """A forEach step of 6 elements: 0, 1 and 3 completed, 2 failed, 4 in flight."""
    outputs = [{"i": 0}, {"i": 1}, None, {"i": 3}, None, None]
    return StepRecord(
        name="stations",
        phase=StepPhase.FAILED,
        attempts=7,
        output=outputs,
        output_info=PayloadInfo(size_bytes=60, sha256="0" * 64, truncated=truncated),
        items=ItemsSummary(
            total=6, succeeded=3, failed=1, completed=encode_bitmap({0, 1, 3}, 6),
            in_flight=[4], max_attempts=2,
            errors=[ItemError(index=2, reason="ServerError", message="503")],
        ),
    )  # fmt: skip


def foreach_source(step: StepRecord) -> WorkflowRun:
    body = failed_trade(
        workflowSpec={"steps": [{"name": "stations", "stepRef": "station",
                                 "forEach": {"items": "input.stations"}}]},
        steps=[step.to_wire()],
    )  # fmt: skip
    return WorkflowRun.from_body(body)


def test_a_foreach_step_keeps_its_completed_elements_and_its_failed_ones_count_as_called() -> None:
    source = foreach_source(foreach_record())
    workflow = Workflow.from_body({"metadata": {"name": "trade"},
                                   "spec": source.status.workflow_spec})  # fmt: skip
    (stations,), reused, elements = compute_reused_records(workflow, source)
    assert (reused, elements) == ((), 3)
    assert (stations.phase, stations.attempts) == (StepPhase.PENDING, 7)
    assert stations.items is not None
    assert stations.items.completed == encode_bitmap({0, 1, 3}, 6)
    assert stations.items.in_flight == [2, 4]  # called before: attempt 2 or more
    assert stations.output == [{"i": 0}, {"i": 1}, None, {"i": 3}, None, None]


def test_a_foreach_step_whose_outputs_were_truncated_keeps_no_element() -> None:
    source = foreach_source(foreach_record(truncated=True))
    workflow = Workflow.from_body({"metadata": {"name": "trade"},
                                   "spec": source.status.workflow_spec})  # fmt: skip
    (stations,), _, elements = compute_reused_records(workflow, source)
    assert elements == 0
    assert stations.items is not None
    assert (stations.items.completed, stations.items.succeeded) == ("", 0)


def test_the_event_says_how_many_steps_were_reused_and_where_the_rerun_starts() -> None:
    assert started(failed_trade()).describe() == (
        "2 steps reused from trade-x7k2p; starting at 'settlement'"
    )
    source = failed_trade()
    source["status"]["steps"] = [record("order", "Succeeded", output={})]
    assert started(source).describe() == "1 step reused from trade-x7k2p; starting at 'pricing'"


def test_the_first_checkpoint_holds_the_rerun_the_definition_and_the_records() -> None:
    status = started(failed_trade()).first_checkpoint()
    assert status["rerun"] == {
        "of": "trade-x7k2p", "rootUID": "uid-root", "reusedSteps": ["order", "pricing"],
    }  # fmt: skip
    assert (status["workflowGeneration"], status["workflowSpec"]["steps"]) == (4, STEPS)
    assert [s["phase"] for s in status["steps"]] == ["Succeeded", "Succeeded", "Pending"]
    assert status["steps"][0]["reusedFrom"] == "trade-x7k2p"
    assert status["progress"] == "2/3"


class Preparing:
    """`prepare_rerun` on a fake API server and a status writer that records its writes."""

    def __init__(self, *, source: dict[str, Any] | None) -> None:
        self.kube = FakeKube()
        self.kube.answers["get"] = [source]
        self.events = RecordedEvents()
        self.runtime = types.SimpleNamespace(kube=self.kube, events=self.events)
        self.progress = RunProgress()
        self.written: list[dict[str, Any]] = []

    async def write(self, **status: Any) -> None:
        self.written.append(status)

    async def prepare(self, run: WorkflowRun) -> Any:
        return await prepare_rerun(self.runtime, run, self)  # type: ignore[arg-type]


async def test_a_run_that_reruns_nothing_is_left_alone() -> None:
    preparing = Preparing(source=failed_trade())
    plain = WorkflowRun.from_body({"metadata": {"name": "x", "namespace": "shop"},
                                   "spec": {"workflowRef": "trade"}})  # fmt: skip
    assert await preparing.prepare(plain) is NOT_A_RERUN
    assert (preparing.kube.calls, preparing.written, preparing.events.posted) == ([], [], [])


async def test_a_new_rerun_writes_its_first_checkpoint_before_anything_and_announces_it() -> None:
    preparing = Preparing(source=failed_trade())
    prepared = await preparing.prepare(rerun())

    assert (prepared.refused, prepared.key_uid) == (False, "uid-root")
    assert preparing.kube.called("get") == [("WorkflowRun", "shop", "trade-x7k2p")]
    (written,) = preparing.written
    assert written["rerun"]["of"] == "trade-x7k2p"
    assert preparing.events.posted == [
        ("Normal", "Rerun", "2 steps reused from trade-x7k2p; starting at 'settlement'")
    ]
    assert preparing.progress.workflow is not None
    assert preparing.progress.steps is not None
    assert [r.name for r in preparing.progress.steps] == ["order", "pricing", "settlement"]


async def test_a_refused_rerun_fails_with_its_reason_and_a_warning_event() -> None:
    preparing = Preparing(source=None)
    prepared = await preparing.prepare(rerun())

    assert prepared.refused
    (written,) = preparing.written
    assert written["phase"] == "Failed"
    (condition,) = written["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "RerunSourceNotFound")
    ((kind, reason, message),) = preparing.events.posted
    assert (kind, reason) == ("Warning", "Failed")
    assert "WorkflowRun 'trade-x7k2p' not found" in message


async def test_a_rerun_resumed_after_its_first_checkpoint_never_reads_its_source_again() -> None:
    first = Preparing(source=failed_trade())
    await first.prepare(rerun())
    body = rerun().to_wire()
    body["status"] = first.written[0]
    resumed = WorkflowRun.from_body(body)

    again = Preparing(source=None)  # the source is gone: retention deleted it
    prepared = await again.prepare(resumed)

    assert (prepared.refused, prepared.key_uid) == (False, "uid-root")
    assert (again.kube.calls, again.written, again.events.posted) == ([], [], [])
    assert again.progress.workflow is not None
    assert [s.name for s in again.progress.workflow.spec.steps] == [
        "order", "pricing", "settlement",
    ]  # fmt: skip
    assert again.progress.steps is None  # the runner resumes from the run's own status


async def test_a_rerun_calls_only_the_failed_step_under_the_root_key_after_its_attempts(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/pricing", Answer(json={"price": 1}))
    server.answer("/settlement", lambda got: {"settled": got})
    start = started(failed_trade())
    names = ("order", "pricing", "settlement")
    directory = StepIndex(
        build_service_step(name, path=f"/{name}", retry={"limit": 0}) for name in names
    )
    executor = Executor(
        transport=transport, directory=directory,
        overrides=dict.fromkeys(names, server.base_url),
    )  # fmt: skip

    outcome = await executor.execute(
        build_plan(start.workflow),
        RunRequest("uid-r1", {"account": "a-1"}, key_uid=start.root_uid,
                   resume_from=start.records),
    )  # fmt: skip

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    (call,) = server.received
    assert call.path == "/settlement"
    assert call.body == {"price": 99}  # pricing's recorded output, not called again
    assert call.headers["Idempotency-Key"] == "uid-root/settlement"
    assert call.headers["Stepline-Attempt"] == "4"
    records = {r.name: r for r in outcome.records()}
    assert records["order"].reused_from == "trade-x7k2p"
    assert records["settlement"].reused_from is None
    assert (records["settlement"].phase, records["settlement"].attempts) == (
        StepPhase.SUCCEEDED, 4,
    )  # fmt: skip
