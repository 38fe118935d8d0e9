"""`stepline approve` and `stepline reject`: arguments checked before anything is sent (exit 2),
the run read to fill workflowRef and to refuse what could never be honoured (exit 1, nothing
created), the API server's refusal passed on (exit 1) and its absence told apart (exit 3), and
the created Approval's name printed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from stepline import cli
from stepline.api import Verdict
from stepline.deciding import record_decision
from stepline.errors import DecisionError, KubeApiError
from tests.unit.clusterfakes import fake_connections
from tests.unit.controllers.approvals.samples import NAMESPACE, RUN, WORKFLOW, waiting_run

APPROVAL_STEP = {"name": "release", "approval": {"message": "'release?'"}}
CALLED_STEP = {"name": "scheduling", "stepRef": "scheduler"}


class DecidingKube:
    """The KubeApi calls a decision makes, answered from what the test puts in `objects`."""

    def __init__(self, *objects: Mapping[str, Any], refuse: KubeApiError | None = None) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): dict(o) for o in objects}
        self.created: list[dict[str, Any]] = []
        self.refuse = refuse

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(dict(manifest))
        named = f"{manifest['metadata']['generateName']}x2k9q"
        return {**manifest, "metadata": {**manifest["metadata"], "name": named}}

    async def close(self) -> None:
        pass


def workflow(*steps: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "Workflow", "metadata": {"name": WORKFLOW}, "spec": {"steps": list(steps)}}


async def decide(fake: DecidingKube, step: str = "release", **kw: Any) -> str:
    return await record_decision(
        fake, NAMESPACE, RUN, step=step, verdict=kw.pop("verdict", Verdict.APPROVE),  # type: ignore[arg-type]
        reason=kw.pop("reason", None),
    )  # fmt: skip


async def test_a_decision_creates_an_approval_naming_the_runs_workflow() -> None:
    fake = DecidingKube(waiting_run(), workflow(CALLED_STEP, APPROVAL_STEP))
    name = await decide(fake, verdict=Verdict.REJECT, reason="short of steel")
    assert name == "line-7-morning-release-x2k9q"
    (created,) = fake.created
    assert created["spec"] == {"runRef": RUN, "workflowRef": WORKFLOW, "step": "release",
                               "decision": "Reject", "reason": "short of steel"}  # fmt: skip


async def test_the_definition_the_run_pinned_is_read_before_the_workflows_current_one() -> None:
    run = waiting_run()
    run["status"]["workflowSpec"] = {"steps": [APPROVAL_STEP]}
    fake = DecidingKube(run, workflow(CALLED_STEP))  # the Workflow changed since
    assert await decide(fake) == "line-7-morning-release-x2k9q"


async def test_a_missing_run_is_refused_naming_it() -> None:
    with pytest.raises(DecisionError, match="WorkflowRun 'line-7-morning' not found in namespace"):
        await decide(DecidingKube())


async def test_a_step_the_workflow_does_not_have_is_refused_listing_its_steps() -> None:
    fake = DecidingKube(waiting_run(), workflow(CALLED_STEP, APPROVAL_STEP))
    with pytest.raises(DecisionError, match=r"has no step 'relase' \(its steps: scheduling, "):
        await decide(fake, step="relase")
    assert fake.created == []


async def test_a_step_that_calls_a_service_is_refused_as_no_approval_step() -> None:
    fake = DecidingKube(waiting_run(step="scheduling"), workflow(CALLED_STEP, APPROVAL_STEP))
    with pytest.raises(DecisionError, match=r"'scheduling' .* is not an approval step"):
        await decide(fake, step="scheduling")


async def test_a_run_not_waiting_at_the_step_is_refused_saying_where_it_is() -> None:
    run = waiting_run(recorded="earlier")  # decided already
    fake = DecidingKube(run, workflow(CALLED_STEP, APPROVAL_STEP))
    with pytest.raises(DecisionError, match=r"is not waiting at step 'release' .*Succeeded"):
        await decide(fake)
    assert fake.created == []


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[DecidingKube]:
    """`KubeApi.connect` answers with the fake the test appends; the namespace is the
    kubeconfig's unless -n says."""
    return fake_connections(monkeypatch, NAMESPACE)


def test_approve_prints_the_created_name_and_exits_0(
    connected: list[DecidingKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(DecidingKube(waiting_run(), workflow(APPROVAL_STEP)))
    assert cli.main(["approve", RUN, "--step", "release"]) == 0
    assert capsys.readouterr().out == "approval.stepline.io/line-7-morning-release-x2k9q created\n"


def test_a_refused_decision_exits_1_with_the_reason(
    connected: list[DecidingKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(DecidingKube())
    assert cli.main(["reject", RUN, "--step", "release", "--reason", "no", "-n", "shop"]) == 1
    assert "stepline reject: WorkflowRun 'line-7-morning' not found" in capsys.readouterr().err


def test_the_policys_refusal_exits_1_with_its_message(
    connected: list[DecidingKube], capsys: pytest.CaptureFixture[str]
) -> None:
    message = ("POST /apis/stepline.io/v1alpha1/namespaces/factory/approvals: 403 bob may not "
               "approve runs of Workflow production-shift")  # fmt: skip
    refused = KubeApiError(message, status=403)
    connected.append(DecidingKube(waiting_run(), workflow(APPROVAL_STEP), refuse=refused))
    assert cli.main(["approve", RUN, "--step", "release"]) == 1
    assert "may not approve runs of Workflow production-shift" in capsys.readouterr().err


@pytest.mark.parametrize(
    "failure",
    [None, KubeApiError("GET ...: no answer (connection refused)", status=0)],
    ids=["no-credentials", "unreachable"],
)
def test_no_credentials_or_no_answer_exits_3(
    connected: list[DecidingKube],
    failure: KubeApiError | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if failure is not None:

        class Unreachable(DecidingKube):
            async def get(self, *args: Any) -> dict[str, Any] | None:
                raise failure

        connected.append(Unreachable())
    assert cli.main(["approve", RUN, "--step", "release"]) == 3
    assert capsys.readouterr().err.startswith("stepline approve: ")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["reject", RUN, "--step", "release"], "the following arguments are required: --reason"),
        (["reject", RUN, "--step", "release", "--reason", "  "], "the reason is empty"),
        (["approve", RUN, "--step", "release", "--reason", "x" * 1025],
         "the reason has 1025 characters; at most 1024"),
        (["approve", RUN], "the following arguments are required: --step"),
        (["approve", RUN, "--step", "Release"], "'Release' is not a step name"),
        (["approve", "Line_7", "--step", "release"], "'Line_7' is not a WorkflowRun name"),
        (["approve", "--step", "release"], "the following arguments are required: RUN"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_naming_the_argument_and_send_nothing(
    connected: list[DecidingKube],
    argv: list[str],
    complaint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
