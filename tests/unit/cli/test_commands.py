"""The terminal commands end to end through `cli.main`, against a stand-in for the API server:
what each prints and its exit code (0 done, 1 refused, 2 bad arguments or input, 3 no
credentials or no answer, naming the address tried)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from stepline import cli
from stepline.errors import KubeApiError
from stepline.terminal import invoking
from tests.unit.clusterfakes import fake_connections
from tests.unit.terminal.fakekube import FakeKube

NAMESPACE = "shop"
WORKFLOW = {
    "apiVersion": "stepline.io/v1alpha1", "kind": "Workflow",
    "metadata": {"name": "trade", "namespace": NAMESPACE},
    "spec": {"steps": [{"name": "order", "stepRef": "order"},
                       {"name": "settle", "stepRef": "settle"}]},
}  # fmt: skip


def run(name: str, phase: str | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "creationTimestamp": "2026-12-07T06:00:00Z"},
        "spec": {"workflowRef": "trade", "input": {}},
        "status": {"phase": phase, **status} if phase else {},
    }  # fmt: skip


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[FakeKube]:
    return fake_connections(monkeypatch, NAMESPACE)


def main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_creates_a_run_named_after_its_workflow_with_the_empty_input(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(fake := FakeKube(WORKFLOW))
    created_line = "workflowrun.stepline.io/trade-x7k2p created\n"
    assert main(capsys, "start", "trade") == (0, created_line, "")
    (created,) = fake.created
    assert created["metadata"] == {"generateName": "trade-", "namespace": NAMESPACE,
                                   "name": "trade-x7k2p", "resourceVersion": "100"}  # fmt: skip
    assert created["spec"] == {"workflowRef": "trade", "input": {}}


def test_start_takes_the_input_from_a_file_or_stdin_and_a_name(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    connected.append(fake := FakeKube(WORKFLOW))
    (tmp_path / "in.json").write_text('{"account": "a-1"}')
    assert main(capsys, "start", "trade", "-f", str(tmp_path / "in.json"), "--name", "t1")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO('{"account": "a-2"}'))
    assert main(capsys, "start", "trade", "-f", "-", "-n", NAMESPACE)[0] == 0
    assert [(c["metadata"]["name"], c["spec"]["input"]) for c in fake.created] == [
        ("t1", {"account": "a-1"}), ("trade-x7k2p", {"account": "a-2"}),
    ]  # fmt: skip


def test_start_of_a_missing_workflow_exits_1_and_creates_nothing(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(fake := FakeKube())
    code, out, err = main(capsys, "start", "trade")
    assert (code, out) == (1, "")
    assert err == "stepline start: Workflow 'trade' not found in namespace 'shop'\n"
    assert fake.created == []


def test_start_with_input_that_is_not_json_exits_2_before_connecting(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.json").write_text('{"a": 1,\n}')
    code, _, err = main(capsys, "start", "trade", "-f", str(tmp_path / "bad.json"))
    assert code == 2
    assert err == (
        f"stepline start: {tmp_path / 'bad.json'} is not JSON: Expecting property name enclosed "
        "in double quotes at line 2, column 1\n"
    )


def test_start_wait_follows_the_run_prints_its_timeline_and_exits_as_it_ended(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    ended = run("trade-x7k2p", "Succeeded", startedAt="2026-12-07T06:00:00Z",
                durationSeconds=0.2, output={"ok": True},
                steps=[{"name": "order", "phase": "Succeeded", "attempts": 1,
                        "startedAt": "2026-12-07T06:00:00Z", "durationSeconds": 0.1,
                        "output": {"ok": True}}])  # fmt: skip
    connected.append(
        fake := FakeKube(
            WORKFLOW, events=[("MODIFIED", run("trade-x7k2p", "Running")), ("MODIFIED", ended)]
        )
    )
    code, out, _ = main(capsys, "start", "trade", "--wait", "--timeout", "30")
    assert code == 0
    assert out.startswith("workflowrun.stepline.io/trade-x7k2p created\n\nRun:        trade-x7k2p")
    assert 'order  Succeeded  +0ms   100ms     1         {"ok":true}\n' in out
    assert fake.watches[0]["field_selector"] == "metadata.name=trade-x7k2p"
    assert fake.watches[0]["resource_version"] == "100"

    connected[0] = FakeKube(WORKFLOW, events=[("MODIFIED", run("trade-x7k2p", "Failed"))])
    assert main(capsys, "start", "trade", "--wait")[0] == 1


def test_start_timeout_needs_wait(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(capsys, "start", "trade", "--timeout", "5") == (
        2, "", "stepline start: --timeout needs --wait\n",
    )  # fmt: skip


def test_runs_lists_the_namespaces_runs_newest_last(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    older = run("trade-a", "Succeeded", progress="2/2", durationSeconds=1.5)
    newer = run("trade-b", "Running", progress="1/2")
    newer["metadata"]["creationTimestamp"] = "2026-12-07T06:00:05Z"
    connected.append(FakeKube(newer, older))
    code, out, _ = main(capsys, "runs")
    assert code == 0
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["NAME", "WORKFLOW", "PHASE", "STEPS"],
        ["trade-a", "trade", "Succeeded", "2/2"],
        ["trade-b", "trade", "Running", "1/2"],
    ]


def test_runs_with_none_says_so_on_stderr(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(FakeKube())
    assert main(capsys, "runs", "-A") == (0, "", "No WorkflowRuns found in any namespace.\n")


def test_runs_watch_prints_the_rows_that_change_and_ends_0_on_ctrl_c(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    first = run("trade-a", "Running", progress="0/2")
    events = [
        ("MODIFIED", run("trade-a", "Running", progress="0/2")),  # nothing a person sees
        ("MODIFIED", run("trade-a", "Running", progress="1/2")),
        ("ADDED", run("trade-b")),
        ("DELETED", run("trade-a", "Succeeded", progress="2/2")),
    ]
    connected.append(FakeKube(first, events=events, then=KeyboardInterrupt()))
    code, out, _ = main(capsys, "runs", "--watch")
    assert code == 0
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["NAME", "WORKFLOW", "PHASE", "STEPS"],
        ["trade-a", "trade", "Running", "0/2"],
        ["trade-a", "trade", "Running", "1/2"],
        ["trade-b", "trade", "Pending", "-"],
        ["trade-a", "trade", "Deleted", "2/2"],
    ]


def test_describe_prints_the_timeline_and_a_missing_run_exits_1(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(FakeKube(run("trade-a", "Failed")))
    code, out, _ = main(capsys, "describe", "trade-a")
    assert code == 0
    assert "Phase:      Failed\n" in out
    assert main(capsys, "describe", "trade-z") == (
        1, "", "stepline describe: WorkflowRun 'trade-z' not found in namespace 'shop'\n",
    )  # fmt: skip


def test_graph_draws_the_workflow_and_a_missing_one_exits_1(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(FakeKube(WORKFLOW))
    code, out, _ = main(capsys, "graph", "trade", "--format", "mermaid")
    assert (code, out.splitlines()[-1]) == (0, "    s_order --> s_settle")
    assert main(capsys, "graph", "city") == (
        1, "", "stepline graph: Workflow 'city' not found in namespace 'shop'\n",
    )  # fmt: skip


def test_cancel_sets_spec_cancel_and_a_finished_run_is_refused(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(fake := FakeKube(run("trade-a", "Running"), run("trade-b", "Succeeded")))
    assert main(capsys, "cancel", "trade-a") == (
        0, "workflowrun.stepline.io/trade-a cancel requested\n", "",
    )  # fmt: skip
    assert fake.patches == [("WorkflowRun", "trade-a", {"spec": {"cancel": True}})]
    assert main(capsys, "cancel", "trade-b") == (
        1, "", "stepline cancel: WorkflowRun 'trade-b' is already Succeeded: there is nothing "
        "to cancel\n",
    )  # fmt: skip
    assert len(fake.patches) == 1


def test_an_api_server_that_does_not_answer_exits_3_naming_its_address(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKube()

    async def silent(*args: Any, **kwargs: Any) -> None:
        raise KubeApiError("GET /apis/…/workflowruns/x: no answer (connection refused)", status=0)

    monkeypatch.setattr(fake, "get", silent)
    connected.append(fake)
    code, _, err = main(capsys, "describe", "x")
    assert code == 3
    assert err.startswith(
        "stepline describe: no answer from the API server at https://127.0.0.1:6443: GET"
    )


def test_no_credentials_or_no_kubeconfig_file_exits_3(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = main(capsys, "runs")
    assert (code, err) == (3, "stepline runs: no Kubernetes credentials: not in a pod, and no "
                              "kubeconfig\n")  # fmt: skip
    missing = tmp_path / "nothing"
    assert main(capsys, "cancel", "x", "--kubeconfig", str(missing)) == (
        3, "", f"stepline cancel: no kubeconfig at {missing} (--kubeconfig): no such file\n",
    )  # fmt: skip


def test_invoke_takes_url_and_token_from_the_environment(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, bytes, str]] = []

    def record(url: str, body: bytes, *, token: str, **kwargs: Any) -> int:
        sent.append((url, body, token))
        return 0

    monkeypatch.setattr(invoking, "invoke", record)
    monkeypatch.setenv("STEPLINE_URL", "http://operator:8080")
    monkeypatch.setenv("STEPLINE_TOKEN", "from-env")
    assert main(capsys, "invoke", "trade")[0] == 0
    assert main(capsys, "invoke", "trade", "--token", "given", "-n", "other")[0] == 0
    assert sent == [
        ("http://operator:8080/v1/namespaces/shop/workflows/trade:invoke", b"{}", "from-env"),
        ("http://operator:8080/v1/namespaces/other/workflows/trade:invoke", b"{}", "given"),
    ]


def test_invoke_without_a_token_anywhere_says_how_to_get_one_and_exits_3(
    connected: list[FakeKube], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.delenv("STEPLINE_TOKEN", raising=False)
    (tmp_path / "config").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {}}],
    }))  # fmt: skip
    code, _, err = main(
        capsys, "invoke", "trade", "--url", "http://x:1", "--kubeconfig", str(tmp_path / "config")
    )
    assert code == 3
    assert err.startswith("stepline invoke: no token to invoke with: give --token, or set")
