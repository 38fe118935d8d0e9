"""Runs that stop before their end and go on later (`RunStatus.SUSPENDED`, `RunStatus.WAITING`):
an approval step waits for a person's decision, or fails when rejected or out of time; a
suspended run lets its calls in flight end and starts nothing, and goes on from its records
when resumed. Against a real HTTP step server on loopback."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from stepline.api import ApprovalDecision, Reason, StepPhase, Workflow
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.httpclient.transports import AiohttpTransport
from tests.unit.engine.stepservers import T0, Answer, FakeClock, StepServer, build_service_step

SERVICES = ("plan", "ship", "audit", "flaky")


def workflow(steps: list[dict[str, Any]]) -> Workflow:
    metadata = {"name": "shift", "namespace": "shop", "generation": 1, "uid": "uid-shift"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps}})


def executor(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock | None = None
) -> Executor:
    retry = {"limit": 3, "backoff": {"initialSeconds": 0.3, "maxSeconds": 0.3}}
    steps = [build_service_step(name, path=f"/{name}", retry=retry) for name in SERVICES]
    overrides = dict.fromkeys(SERVICES, server.base_url)
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "jitter": lambda: 0.0}
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides, **timing)


RELEASE = {
    "name": "release",
    "approval": {"message": '"Release " + string(steps.plan.output.batches) + " batches"',
                 "timeoutSeconds": 3600},
}  # fmt: skip
STEPS = [
    {"name": "plan", "stepRef": "plan"},
    RELEASE,
    {"name": "ship", "stepRef": "ship", "dependsOn": ["release"]},
    {"name": "audit", "stepRef": "audit", "dependsOn": ["plan"]},
]


def decision(approve: bool, reason: str = "checked with the line lead") -> ApprovalDecision:
    return ApprovalDecision(
        approve=approve, user="ada", uid="u-ada", reason=reason,
        decided_at=T0 + timedelta(minutes=5), name="shift-1-release-x7",
    )  # fmt: skip


async def test_an_approval_step_waits_while_the_other_branches_go_on(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/plan", Answer(json={"batches": 3}))
    clock = FakeClock()

    outcome = await executor(server, transport, clock).execute(
        build_plan(workflow(STEPS)), RunRequest("uid-1", {})
    )

    assert outcome.status is RunStatus.WAITING
    assert outcome.reason is Reason.WAITING_FOR_APPROVAL
    phases = {state.name: state.phase for state in outcome.states}
    assert phases == {
        "plan": StepPhase.SUCCEEDED, "release": StepPhase.WAITING,
        "ship": StepPhase.PENDING, "audit": StepPhase.SUCCEEDED,
    }  # fmt: skip
    (wait,) = outcome.waits
    assert wait.step == "release"
    assert wait.deadline - wait.since == timedelta(hours=1)
    assert wait.message == "Release 3 batches"
    assert server.calls("/ship") == []


async def test_a_decision_approves_the_step_and_the_run_goes_on(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/plan", Answer(json={"batches": 3}))
    run = executor(server, transport)
    waited = await run.execute(build_plan(workflow(STEPS)), RunRequest("uid-1", {}))
    records = waited.records()
    asked: list[tuple[str, Any]] = []

    def decide(step: str, since: Any) -> ApprovalDecision:
        asked.append((step, since))
        return decision(approve=True)

    outcome = await run.execute(
        build_plan(workflow(STEPS)), RunRequest("uid-1", {}, resume_from=records, decide=decide)
    )

    assert outcome.status is RunStatus.SUCCEEDED
    release = next(record for record in outcome.records() if record.name == "release")
    assert release.phase is StepPhase.SUCCEEDED
    assert release.output == {
        "decision": "Approve", "user": "ada", "reason": "checked with the line lead",
    }  # fmt: skip
    assert release.approval is not None
    assert (release.approval.user, release.approval.approval_name) == ("ada", "shift-1-release-x7")
    # It is asked with when the wait began, so an Approval made before that does not count.
    assert asked == [("release", records[1].started_at)]
    assert len(server.calls("/ship")) == 1
    assert len(server.calls("/plan")) == 1  # done before the wait: not called again


async def test_a_rejection_fails_the_step_and_the_run(
    server: StepServer, transport: AiohttpTransport
) -> None:
    outcome = await executor(server, transport).execute(
        build_plan(workflow(STEPS)),
        RunRequest("uid-1", {}, decide=lambda step, since: decision(False, "wrong line")),
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.reason == Reason.REJECTED
    assert outcome.message == "step 'release' rejected by ada: wrong line"
    assert server.calls("/ship") == []


async def test_no_decision_by_the_deadline_fails_the_step(
    server: StepServer, transport: AiohttpTransport
) -> None:
    clock = FakeClock()
    run = executor(server, transport, clock)
    waited = await run.execute(build_plan(workflow(STEPS)), RunRequest("uid-1", {}))
    clock.time += 3601

    outcome = await run.execute(
        build_plan(workflow(STEPS)), RunRequest("uid-1", {}, resume_from=waited.records())
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.reason == Reason.APPROVAL_TIMED_OUT


async def test_a_suspended_run_lets_its_call_end_starts_nothing_and_goes_on_when_resumed(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/plan", Answer(json={"batches": 3}, delay=0.3))
    steps = [{"name": "plan", "stepRef": "plan"}, {"name": "ship", "stepRef": "ship"}]
    suspend = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, suspend.set)
    run = executor(server, transport)

    suspended = await run.execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {}, suspend=suspend)
    )

    assert suspended.status is RunStatus.SUSPENDED
    assert suspended.reason is Reason.SUSPENDED
    assert [state.phase for state in suspended.states] == [StepPhase.SUCCEEDED, StepPhase.PENDING]
    assert server.calls("/ship") == []

    resumed = await run.execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {}, resume_from=suspended.records())
    )

    assert resumed.status is RunStatus.SUCCEEDED
    assert len(server.calls("/plan")) == 1
    assert len(server.calls("/ship")) == 1


async def test_suspending_stops_a_steps_retries_and_it_goes_on_from_its_attempts(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/flaky", Answer(status=503, json={}), Answer(json={"ok": True}))
    steps = [{"name": "flaky", "stepRef": "flaky"}]
    suspend = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, suspend.set)  # during its backoff
    run = executor(server, transport)

    suspended = await run.execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {}, suspend=suspend)
    )
    resumed = await run.execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {}, resume_from=suspended.records())
    )

    assert suspended.status is RunStatus.SUSPENDED
    (record,) = suspended.records()
    assert (record.phase, record.attempts) == (StepPhase.PENDING, 1)
    assert resumed.status is RunStatus.SUCCEEDED
    assert [c.headers["Stepline-Attempt"] for c in server.calls("/flaky")] == ["1", "2"]
