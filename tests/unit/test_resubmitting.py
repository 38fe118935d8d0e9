"""`stepline rerun`: the run read and refused when it could never be rerun (exit 1, nothing
created), the new run made with rerunOf and the source's workflowRef and input, named
`<run>-r<N>` with the first N free (one stem for a chain) or as --name says; the API server's
refusal passed on (exit 1) and its absence told apart (exit 3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from stepline import cli
from stepline.errors import KubeApiError, KubeConflictError, RerunError
from stepline.resubmitting import create_rerun
from tests.unit.clusterfakes import fake_connections

NAMESPACE = "shop"
RUN = "trade-x7k2p"


class RerunKube:
    """The KubeApi calls a rerun makes, answered from `runs` (by name); a create of a name
    that exists answers 409, as the API server does."""

    def __init__(self, *runs: Mapping[str, Any], refuse: KubeApiError | None = None) -> None:
        self.runs = {run["metadata"]["name"]: dict(run) for run in runs}
        self.created: list[dict[str, Any]] = []
        self.refuse = refuse

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        assert kind == "WorkflowRun"
        return self.runs.get(name)

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        name = manifest["metadata"]["name"]
        if name in self.runs:
            raise KubeConflictError(f"workflowruns {name!r} already exists", status=409)
        self.created.append(dict(manifest))
        self.runs[name] = dict(manifest)
        return dict(manifest)

    async def close(self) -> None:
        pass


def run(name: str = RUN, phase: str = "Failed", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"workflowRef": "trade", "input": {"amount": 12, "tags": ["a"]}, **spec},
        "status": {"phase": phase},
    }


async def rerun(fake: RerunKube, source: str = RUN, *, name: str | None = None) -> str:
    return await create_rerun(fake, NAMESPACE, source, name=name)  # type: ignore[arg-type]


async def test_a_rerun_copies_the_workflow_and_input_and_names_its_source() -> None:
    fake = RerunKube(run())
    assert await rerun(fake) == "trade-x7k2p-r1"
    (created,) = fake.created
    assert created == {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "trade-x7k2p-r1", "namespace": NAMESPACE},
        "spec": {"workflowRef": "trade", "input": {"amount": 12, "tags": ["a"]},
                 "rerunOf": RUN},
    }  # fmt: skip


async def test_the_next_free_number_is_taken() -> None:
    fake = RerunKube(run(), run("trade-x7k2p-r1"), run("trade-x7k2p-r2"))
    assert await rerun(fake) == "trade-x7k2p-r3"


async def test_a_rerun_of_a_rerun_keeps_the_chains_stem() -> None:
    fake = RerunKube(run(), run("trade-x7k2p-r1", rerunOf=RUN))
    assert await rerun(fake, "trade-x7k2p-r1") == "trade-x7k2p-r2"
    assert fake.created[0]["spec"]["rerunOf"] == "trade-x7k2p-r1"


async def test_a_run_named_like_a_rerun_but_rerunning_nothing_is_its_own_stem() -> None:
    fake = RerunKube(run("batch-r7"))
    assert await rerun(fake, "batch-r7") == "batch-r7-r1"


async def test_a_given_name_is_used_and_refused_when_taken() -> None:
    fake = RerunKube(run(), run("retry-me"))
    assert await rerun(fake, name="again") == "again"
    with pytest.raises(RerunError, match="WorkflowRun 'retry-me' exists already in namespace"):
        await rerun(fake, name="retry-me")


@pytest.mark.parametrize(
    ("phase", "says"),
    [
        ("Running", "WorkflowRun 'trade-x7k2p' is Running: only a Failed or Cancelled run is "
         "rerun; wait for it to end"),
        ("Succeeded", "WorkflowRun 'trade-x7k2p' succeeded: there is nothing to rerun"),
        (None, "WorkflowRun 'trade-x7k2p' is Pending"),
    ],
)  # fmt: skip
async def test_a_run_that_did_not_end_failed_or_cancelled_is_refused_and_nothing_created(
    phase: str | None, says: str
) -> None:
    source = run()
    source["status"] = {"phase": phase} if phase else {}
    fake = RerunKube(source)
    with pytest.raises(RerunError) as refused:
        await rerun(fake)
    assert says in str(refused.value)
    assert fake.created == []


async def test_a_missing_run_is_refused_naming_it() -> None:
    with pytest.raises(RerunError, match="WorkflowRun 'trade-x7k2p' not found in namespace 'shop'"):
        await rerun(RerunKube())


async def test_a_name_too_long_for_the_api_is_refused_asking_for_one() -> None:
    long_name = "t" * 251  # with "-r1", one over 253
    with pytest.raises(RerunError, match="give a name with --name"):
        await rerun(RerunKube(run(long_name)), long_name)


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[RerunKube]:
    return fake_connections(monkeypatch, NAMESPACE)


def test_rerun_prints_the_created_name_and_exits_0(
    connected: list[RerunKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(RerunKube(run()))
    assert cli.main(["rerun", RUN]) == 0
    assert capsys.readouterr().out == "workflowrun.stepline.io/trade-x7k2p-r1 created\n"


def test_a_refused_rerun_exits_1_with_the_reason(
    connected: list[RerunKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(RerunKube(run(phase="Running")))
    assert cli.main(["rerun", RUN, "-n", NAMESPACE]) == 1
    assert "stepline rerun: WorkflowRun 'trade-x7k2p' is Running" in capsys.readouterr().err


def test_the_api_servers_refusal_exits_1_with_its_message(
    connected: list[RerunKube], capsys: pytest.CaptureFixture[str]
) -> None:
    refused = KubeApiError("POST .../workflowruns: 403 forbidden: cannot create", status=403)
    connected.append(RerunKube(run(), refuse=refused))
    assert cli.main(["rerun", RUN]) == 1
    assert "403 forbidden" in capsys.readouterr().err


def test_no_credentials_exits_3(
    connected: list[RerunKube], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["rerun", RUN]) == 3
    assert capsys.readouterr().err.startswith("stepline rerun: no Kubernetes credentials")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["rerun"], "the following arguments are required: RUN"),
        (["rerun", "Trade_1"], "'Trade_1' is not a WorkflowRun name"),
        (["rerun", RUN, "--name", "Again!"], "'Again!' is not a WorkflowRun name"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument_and_send_nothing(
    connected: list[RerunKube], argv: list[str], complaint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
