"""The command-line client (`stepline start|invoke|runs|describe|graph|cancel`, and as the kubectl
plugin `kubectl stepline`) against the real control plane, the operator running as a process and
the steps served by a local HTTP server. Each command runs as a subprocess (`python -m stepline`),
so what is checked is what a user sees: its output and its exit code (0 done, 1 refused or the
run did not succeed, 2 bad input, 3 no answer or no token).

One namespace, step server and operator serve the module (see stepservices.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import get, items
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    module_step_bed,
    start_run,
    wait_finished,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("order", "settle", "slow", "traffic", "air", "report")
CREATED = re.compile(r"^workflowrun\.stepline\.io/(?P<name>pair-[a-z0-9]{5}) created$")

bed = module_step_bed("cli", STEPS)


def stepline(
    bed: StepBed, *args: str, stdin: str | None = None, namespaced: bool = True,
    kubeconfig: Path | None = None, env: dict[str, str] | None = None, timeout: float = 90,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`python -m stepline ARGS --kubeconfig … [-n <bed's namespace>]`, as a user runs it."""
    flags = ["--kubeconfig", str(kubeconfig or bed.cluster.kubeconfig)]
    if namespaced:
        flags += ["-n", bed.namespace]
    return subprocess.run(
        [sys.executable, "-m", "stepline", *args, *flags],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def pair(bed: StepBed) -> None:
    """The Workflow `pair`: order → settle, both answering."""
    bed.server.answer("/order", lambda got: {"orderId": f"o-{got['account']}"})
    bed.server.answer("/settle", lambda got: {"settled": got["orderId"]})
    apply_workflow(
        bed,
        "pair",
        [{"name": "order", "stepRef": "order"}, {"name": "settle", "stepRef": "settle"}],
    )


def runs_of(bed: StepBed, workflow: str) -> list[str]:
    found = items(bed.cluster, "workflowrun", bed.namespace)
    return [r["metadata"]["name"] for r in found if r["spec"]["workflowRef"] == workflow]


def test_start_wait_on_a_two_step_workflow_prints_the_timeline_and_exits_0(bed: StepBed) -> None:
    pair(bed)
    out = stepline(bed, "start", "pair", "-f", "-", "--wait", "--timeout", "60",
                   stdin='{"account": "a-1"}')  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    created = CREATED.match(lines[0])
    assert created, out.stdout
    name = created["name"]
    assert f"Run:        {name} (namespace {bed.namespace})" in lines
    assert "Phase:      Succeeded, 2/2 steps done" in lines
    assert 'Output:     {"settled":"o-a-1"}' in lines
    header = next(line for line in lines if line.startswith("STEP"))
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    assert [(row[0], row[1], row[4], row[5]) for row in rows] == [
        ("order", "Succeeded", "1", '{"orderId":"o-a-1"}'),
        ("settle", "Succeeded", "1", '{"settled":"o-a-1"}'),
    ]
    run = get(bed.cluster, "workflowrun", name, bed.namespace)
    assert run is not None
    assert run["spec"]["input"] == {"account": "a-1"}


def test_start_of_a_missing_workflow_exits_1_creating_nothing(bed: StepBed) -> None:
    out = stepline(bed, "start", "nosuch")
    assert out.returncode == 1
    assert out.stderr == (
        f"stepline start: Workflow 'nosuch' not found in namespace '{bed.namespace}'\n"
    )
    assert runs_of(bed, "nosuch") == []


def test_start_with_input_that_is_not_json_exits_2_creating_nothing(
    bed: StepBed, tmp_path: Path
) -> None:
    pair(bed)
    before = runs_of(bed, "pair")
    bad = tmp_path / "input.json"
    bad.write_text('{"account": "a-1",\n "amount": 12,,\n}\n')
    out = stepline(bed, "start", "pair", "-f", str(bad))
    assert out.returncode == 2
    assert out.stderr == (
        f"stepline start: {bad} is not JSON: Expecting property name enclosed in double quotes "
        "at line 2, column 15\n"
    )
    array = stepline(bed, "start", "pair", "-f", "-", stdin="[1, 2]")
    assert array.returncode == 2
    assert "a run's input is a JSON object" in array.stderr
    assert runs_of(bed, "pair") == before


def test_runs_lists_the_run_with_its_workflow_phase_and_steps(bed: StepBed) -> None:
    pair(bed)
    start_run(bed, "pair-listed", "pair", {"account": "a-2"})
    wait_finished(bed, "pair-listed")

    out = stepline(bed, "runs", "--workflow", "pair")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["NAME", "WORKFLOW", "PHASE", "STEPS", "AGE", "DURATION"]
    assert rows[-1].split()[:4] == ["pair-listed", "pair", "Succeeded", "2/2"]

    every = stepline(bed, "runs", "-A", "--phase", "succeeded", namespaced=False)
    assert every.returncode == 0, every.stderr
    assert [bed.namespace, "pair-listed", "pair", "Succeeded", "2/2"] in [
        line.split()[:5] for line in every.stdout.splitlines()
    ]


def test_runs_watch_prints_a_new_run_as_it_changes_and_ctrl_c_ends_it_with_0(
    bed: StepBed,
) -> None:
    pair(bed)
    command = [sys.executable, "-m", "stepline", "runs", "-w", "--workflow", "pair",
               "-n", bed.namespace, "--kubeconfig", str(bed.cluster.kubeconfig)]  # fmt: skip
    watching = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watching.stdout is not None
        header = watching.stdout.readline()
        assert header.split()[:2] == ["NAME", "WORKFLOW"], header
        start_run(bed, "pair-watched", "pair", {"account": "a-6"})
        seen: list[list[str]] = []
        while ["pair-watched", "Succeeded"] not in seen:
            line = watching.stdout.readline()
            assert line, f"the watch ended: {watching.stderr.read() if watching.stderr else ''}"
            seen.append([line.split()[0], line.split()[2]])
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=30) == 0
        assert watching.stderr is not None
        assert "Traceback" not in watching.stderr.read()
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()


def test_describe_of_a_failed_run_shows_the_steps_error(bed: StepBed) -> None:
    bed.server.answer("/order", Answer(json={"orderId": "o-9"}))
    bed.server.answer("/settle", Answer(status=503, json={"error": "ledger unavailable"}))
    apply_workflow(
        bed, "failing",
        [{"name": "order", "stepRef": "order"}, {"name": "settle", "stepRef": "settle"}],
    )  # fmt: skip
    start_run(bed, "failing-1", "failing", {})
    assert wait_finished(bed, "failing-1")["status"]["phase"] == "Failed"

    out = stepline(bed, "describe", "failing-1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Phase:      Failed (StepFailed), 1/2 steps done" in lines
    assert any(line.startswith("Message:    step 'settle'") for line in lines), out.stdout
    settle = next(line for line in lines if line.startswith("settle"))
    assert settle.split()[1:2] + settle.split()[4:] == [
        "Failed",
        "3",
        "ServerError",
        "(HTTP",
        "503)",
    ]
    assert '    body: {"error": "ledger unavailable"}' in lines
    missing = stepline(bed, "describe", "failing-404")
    assert (missing.returncode, missing.stderr) == (
        1,
        f"stepline describe: WorkflowRun 'failing-404' not found in namespace '{bed.namespace}'\n",
    )


def test_graph_of_a_parallel_join_in_mermaid(bed: StepBed) -> None:
    apply_workflow(
        bed, "morning",
        [{"name": "traffic", "stepRef": "traffic", "dependsOn": []},
         {"name": "air", "stepRef": "air", "dependsOn": []},
         {"name": "report", "stepRef": "report", "dependsOn": ["traffic", "air"],
          "when": "size(steps.traffic.output) > 0"}],
    )  # fmt: skip
    out = stepline(bed, "graph", "morning", "--format", "mermaid")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "flowchart TD\n"
        '    s_traffic["traffic<br/>traffic"]\n'
        '    s_air["air<br/>air"]\n'
        '    s_report["report<br/>report<br/>when: size(steps.traffic.output) #gt; 0"]\n'
        "    s_traffic --> s_report\n"
        "    s_air --> s_report\n"
        "    classDef conditional stroke-dasharray: 5 5\n"
        "    class s_report conditional\n"
    )
    text = stepline(bed, "graph", "morning")
    assert "report  (calls report)\n    after: traffic, air\n" in text.stdout


def test_cancel_of_a_running_run_ends_it_cancelled(bed: StepBed) -> None:
    bed.server.answer("/slow", Answer(json={"slow": True}, delay=1.5))
    apply_workflow(
        bed, "slowly", [{"name": "slow", "stepRef": "slow"}, {"name": "then", "stepRef": "order"}]
    )
    uid = start_run(bed, "slowly-1", "slowly", {})
    wait_until(lambda: bed.server.calls("/slow", run_uid=uid), what="the slow step to be called")

    out = stepline(bed, "cancel", "slowly-1")
    assert (out.returncode, out.stdout) == (
        0,
        "workflowrun.stepline.io/slowly-1 cancel requested\n",
    )
    run = wait_finished(bed, "slowly-1")
    assert run["status"]["phase"] == "Cancelled", run["status"]
    assert bed.server.calls("/order", run_uid=uid) == []

    again = stepline(bed, "cancel", "slowly-1")
    assert (again.returncode, again.stderr) == (
        1, "stepline cancel: WorkflowRun 'slowly-1' is already Cancelled: there is nothing to "
        "cancel\n",
    )  # fmt: skip


def test_invoke_through_the_operators_url_with_a_token(bed: StepBed) -> None:
    pair(bed)
    url = bed.operator.base_url
    out = stepline(bed, "invoke", "pair", "-f", "-", "--url", url, "--token", bed.token,
                   stdin='{"account": "a-3"}')  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"settled": "o-a-3"}

    bed.server.answer("/settle", Answer(status=422, json={"error": "no such account"}))
    failed = stepline(bed, "invoke", "pair", "--url", url, "--token", bed.token,
                      "-f", "-", stdin='{"account": "a-4"}')  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("stepline invoke: 502 StepFailed: "), failed.stderr
    assert "(step 'settle', HTTP 422)" in failed.stderr

    # The test cluster's kubeconfig user has client certificates, no token.
    no_token = stepline(bed, "invoke", "pair", "--url", url,
                        env=without("STEPLINE_TOKEN", "STEPLINE_URL"))  # fmt: skip
    assert no_token.returncode == 3
    assert "no token to invoke with" in no_token.stderr
    assert "kubectl create token" in no_token.stderr


def test_a_cluster_that_does_not_answer_exits_3_naming_its_address(
    bed: StepBed, tmp_path: Path
) -> None:
    port = closed_port()
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                  "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }))  # fmt: skip
    out = stepline(bed, "runs", kubeconfig=config, timeout=60)
    assert out.returncode == 3, out.stderr
    assert out.stderr.startswith(
        f"stepline runs: no answer from the API server at https://127.0.0.1:{port}: GET "
    ), out.stderr

    absent = stepline(bed, "describe", "x", kubeconfig=tmp_path / "absent")
    assert (absent.returncode, absent.stderr) == (
        3, f"stepline describe: no kubeconfig at {tmp_path / 'absent'} (--kubeconfig): no such "
        "file\n",
    )  # fmt: skip


def test_kubectl_runs_it_as_its_plugin(bed: StepBed, tmp_path: Path) -> None:
    pair(bed)
    start_run(bed, "pair-plugin", "pair", {"account": "a-5"})
    wait_finished(bed, "pair-plugin")
    plugins = tmp_path / "bin"
    plugins.mkdir()
    # What pip writes for the console script kubectl-stepline: this interpreter, calling main.
    script = plugins / "kubectl-stepline"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom stepline.cli import main\n"
                      "sys.exit(main())\n")  # fmt: skip
    script.chmod(0o755)
    env = {**bed.cluster.env, "PATH": f"{plugins}:/usr/bin:/bin"}
    out = subprocess.run(
        [str(bed.cluster.kubectl_path), "stepline", "runs", "-n", bed.namespace,
         "--kubeconfig", str(bed.cluster.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert any(line.split()[:3] == ["pair-plugin", "pair", "Succeeded"]
               for line in out.stdout.splitlines()), out.stdout  # fmt: skip
    usage = subprocess.run(
        [str(bed.cluster.kubectl_path), "stepline", "describe"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: kubectl stepline describe")


def without(*names: str) -> dict[str, str]:
    """This process's environment but `names`: what a shell without them would pass."""
    return {key: value for key, value in os.environ.items() if key not in names}


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
