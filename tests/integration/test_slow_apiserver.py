"""WorkflowRuns while the API server answers slowly, or not at all for a while (issue 19): the
operator is slowed down, never loses state. Every run still ends Succeeded with the output its
steps make, its status records each step once, and the operator neither exits nor logs a
traceback. Through a slow API server each step is called exactly once per run. Through one that
stalls for longer than a request's timeout (and than the Lease's renew deadline, so the operator
stops leading and leads again), a step whose result could not be checkpointed may be called
again, as after a crash: always under its run's idempotency key, and never numbered below an
attempt its checkpoint knows of.

The real API server answers at once, so the operator reaches it through `DelayingProxy`
(delayingproxy.py), a TCP proxy that holds each chunk the server sends for 200-500 ms and can
stall both ways; the operator gets a copy of the kubeconfig pointing at the proxy. The tests
themselves (kubectl) talk to the API server directly. One namespace, step server, proxy and
operator serve the module (see stepservices.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.delayingproxy import DelayingProxy, upstream_of, write_kubeconfig_through
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.stepobjects import API_VERSION, Manifest, condition, items
from tests.integration.stepservices import (
    FINISHED_PHASES,
    StepBed,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    step_status,
)
from tests.unit.engine.stepservers import Received

pytestmark = pytest.mark.integration

STEPS = ("validate", "score")
DELAY_RANGE = (0.2, 0.5)  # seconds each chunk from the API server is held
# A stall outlasts a request's timeout: the operator's requests in flight then time out. It
# outlasts the Lease's renew deadline too (operatorprocess.LEASE_TIMINGS: 4 s).
API_TIMEOUT_SECONDS = 3
STALL_SECONDS = 6
# Ample for runs that take a few seconds each at this delay, on 2 shared cores.
FINISH_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def proxy(cluster: LocalCluster) -> Iterator[DelayingProxy]:
    started = DelayingProxy(upstream_of(cluster.kubeconfig), delay_range=DELAY_RANGE).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster,
    crds: None,
    proxy: DelayingProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StepBed]:
    log_dir = tmp_path_factory.mktemp("slow-api")
    kubeconfig = write_kubeconfig_through(proxy, cluster.kubeconfig, log_dir / "kubeconfig")
    opened = open_step_bed(
        cluster, "slow-api", STEPS, log_dir,
        extra_env={"KUBECONFIG": str(kubeconfig),
                   "STEPLINE_API_TIMEOUT_SECONDS": str(API_TIMEOUT_SECONDS)},
    )  # fmt: skip
    try:
        opened.server.answer("/validate", lambda got: {"n": got["n"], "double": 2 * got["n"]})
        opened.server.answer("/score", lambda got: {"score": got["double"] + 1})
        apply_workflow(
            opened, "scoring",
            [{"name": "validate", "stepRef": "validate"}, {"name": "score", "stepRef": "score"}],
            output='{"n": steps.validate.output.n, "score": steps.score.output.score}',
        )  # fmt: skip
        yield opened
    finally:
        close_step_bed(opened)


def test_runs_through_a_slow_api_server_succeed_each_calling_each_step_once(
    bed: StepBed, proxy: DelayingProxy
) -> None:
    chunks_before = proxy.delayed_chunks
    began = time.monotonic()

    uids = start_runs(bed, "slow", range(20))
    runs = wait_all_finished(bed, uids)

    print(f"\n20 runs through the slow API server: {time.monotonic() - began:.1f} s")
    assert proxy.delayed_chunks > chunks_before  # the operator did talk through the proxy
    for name, uid in uids.items():
        assert_succeeded(runs[name], number(name))
        for step in STEPS:
            calls = bed.server.calls(f"/{step}", run_uid=uid)
            assert [key_and_attempt(call) for call in calls] == [(f"{uid}/{step}", 1)], name
            assert step_status(runs[name], step)["attempts"] == 1
    assert_operator_healthy(bed)
    # Renewals a few round trips late are well within the renew deadline.
    assert "stopped leading" not in bed.operator.log_path.read_text(errors="replace")


def test_runs_survive_the_api_server_stalling_longer_than_a_request_timeout(
    bed: StepBed, proxy: DelayingProxy
) -> None:
    uids = start_runs(bed, "stalled", range(100, 110))
    # Through the slow proxy a run takes seconds: the stall finds some runs before their first
    # step, some between their steps, some writing their end.
    wait_until(
        lambda: sum(bool(bed.server.calls("/validate", run_uid=uid)) for uid in uids.values()) >= 3,
        timeout=FINISH_TIMEOUT,
        what="a few runs to call their first step",
    )
    logged_before = bed.operator.log_path.stat().st_size

    proxy.stall()
    time.sleep(STALL_SECONDS)
    proxy.flow()

    runs = wait_all_finished(bed, uids)
    with bed.operator.log_path.open(errors="replace") as log:
        log.seek(logged_before)
        assert "no answer" in log.read()  # requests in flight did time out
    repeated = 0
    for name, uid in uids.items():
        assert_succeeded(runs[name], number(name))
        for step in STEPS:
            calls = [key_and_attempt(call) for call in bed.server.calls(f"/{step}", run_uid=uid)]
            assert calls, (name, step)
            assert {key for key, _ in calls} == {f"{uid}/{step}"}, (name, calls)
            # Never numbered below an attempt checkpointed; a run whose start was not written
            # yet starts over (runner.py), its first step numbered 1 again.
            attempts = [attempt for _, attempt in calls]
            assert attempts == sorted(attempts), (name, calls)
            # A Running checkpoint whose write timed out yet landed counts as an attempt begun.
            assert step_status(runs[name], step)["attempts"] == attempts[-1], (name, calls)
            repeated += len(calls) - 1
    print(f"\nsteps called again after the stall: {repeated}")
    assert_operator_healthy(bed)


def start_runs(bed: StepBed, prefix: str, numbers: range) -> dict[str, str]:
    """Creates a WorkflowRun `<prefix>-<n>` with input {"n": n} per number, in one apply;
    returns their uids by name."""
    names = [f"{prefix}-{n}" for n in numbers]
    bed.cluster.apply(
        [
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowRun",
                "metadata": {"name": name, "namespace": bed.namespace},
                "spec": {"workflowRef": "scoring", "input": {"n": n}},
            }
            for name, n in zip(names, numbers, strict=True)
        ]
    )
    found = {
        run["metadata"]["name"]: run for run in items(bed.cluster, "workflowrun", bed.namespace)
    }
    return {name: found[name]["metadata"]["uid"] for name in names}


def number(name: str) -> int:
    """The input `n` of the run `<prefix>-<n>`."""
    return int(name.rsplit("-", 1)[1])


def wait_all_finished(bed: StepBed, uids: dict[str, str]) -> dict[str, Manifest]:
    """Waits until every run in `uids` is Succeeded, Failed or Cancelled; returns them by name."""

    def finished() -> dict[str, Manifest] | None:
        runs = {r["metadata"]["name"]: r for r in items(bed.cluster, "workflowrun", bed.namespace)}
        done = {
            name: run
            for name, run in runs.items()
            if name in uids and (run.get("status") or {}).get("phase") in FINISHED_PHASES
        }
        return done if len(done) == len(uids) else None

    try:
        return wait_until(finished, timeout=FINISH_TIMEOUT, interval=1, what="every run to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{bed.operator.log_tail()}") from exc


def assert_succeeded(run: Manifest, n: int) -> None:
    """The run succeeded with the output of its input `n`, and its status records each step
    once, in order, Succeeded with its output."""
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(run, "Succeeded")["status"] == "True", status
    assert status["output"] == {"n": n, "score": 2 * n + 1}, status
    assert status["startedAt"] <= status["finishedAt"], status
    assert [record["name"] for record in status["steps"]] == list(STEPS), status
    for step, output in [("validate", {"n": n, "double": 2 * n}), ("score", {"score": 2 * n + 1})]:
        record = step_status(run, step)
        assert (record["phase"], record["output"]) == ("Succeeded", output), status


def key_and_attempt(call: Received) -> tuple[str, int]:
    return call.headers["Idempotency-Key"], int(call.headers["Stepline-Attempt"])


def assert_operator_healthy(bed: StepBed) -> None:
    """The operator still runs and has logged no traceback."""
    process = bed.operator.process
    assert process is not None
    assert process.poll() is None, f"the operator exited:\n{bed.operator.log_tail()}"
    log = bed.operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, bed.operator.log_tail(200)
