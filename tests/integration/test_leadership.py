"""Two operator replicas on the real control plane: one leader writes, the other stands by and
takes over when the leader is killed (issue 16: one leadership for every writer).

Both replicas watch the same namespace and elect a leader on one Lease there. What is checked:

- ServiceSteps and a Workflow created while both run are reconciled (by the leader);
- the leader is SIGKILLed while 50 runs are under way: the standby takes the Lease over within
  its bound (the lease duration after it last saw the Lease change, plus one jittered retry
  period), resumes the runs, and every run succeeds;
- no step is called for the same run by both replicas at once, and every call carries the key
  `<run uid>/<step>`;
- the standby wrote nothing to the API server before it held the Lease, and kopf wrote nothing
  at all: read from the API server's audit log, where each replica's requests carry its name in
  their User-Agent (not from the operator's own account of itself).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import LEASE_TIMINGS, OperatorProcess
from tests.integration.stepobjects import API_VERSION, get, service_step, wait_ready
from tests.integration.stepservices import ThreadedStepServer
from tests.unit.engine.stepservers import Answer

RUNS = 50
STEP_SECONDS = 0.3
DURATION = float(LEASE_TIMINGS["STEPLINE_LEASE_DURATION_SECONDS"])
RETRY = float(LEASE_TIMINGS["STEPLINE_LEASE_RETRY_PERIOD_SECONDS"])
# The standby reads the Lease every retry period, jittered up to 2.2 times it, and takes it over
# once it has not changed for the lease duration since it saw it last change; the slack is for
# the machine (2 cores running the control plane and both replicas).
TAKEOVER_BOUND = DURATION + 2.2 * RETRY + 3.0


@pytest.fixture
def steps(cluster: LocalCluster) -> Iterator[ThreadedStepServer]:
    server = ThreadedStepServer().start()
    try:
        yield server
    finally:
        server.stop()


def start_replica(
    cluster: LocalCluster, namespace: str, name: str, overrides: dict[str, str], log_dir: Path
) -> OperatorProcess:
    return OperatorProcess(
        cluster, (namespace,), log_dir / f"{name}.log",
        extra_env={"STEPLINE_POD_ID": name, "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides)},
    ).start()  # fmt: skip


def lease_holder(cluster: LocalCluster, namespace: str) -> str | None:
    lease = get(cluster, "lease", "stepline", namespace) or {}
    holder = (lease.get("spec") or {}).get("holderIdentity")
    return holder if isinstance(holder, str) and holder else None


def replica_of(holder: str) -> str:
    """The replica's name in a holder identity (`<name>_<random suffix>`)."""
    return holder.rsplit("_", 1)[0]


def audit_writes(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """The writes the API server took in `namespace`, in the order it answered them."""
    entries = []
    for line in cluster.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if (entry.get("objectRef") or {}).get("namespace") != namespace:
            continue
        if entry.get("stage") == "ResponseComplete":
            entries.append(entry)
    return entries


def received_at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["requestReceivedTimestamp"])


def test_the_standby_takes_over_a_killed_leader_and_no_run_is_lost_or_doubled(
    cluster: LocalCluster,
    crds: None,
    namespace: str,
    steps: ThreadedStepServer,
    tmp_path: Path,
) -> None:
    overrides = {f"{namespace}/{name}": steps.base_url for name in ("check", "place")}
    for path in ("/check", "/place"):
        steps.server.answer(path, Answer(json={"ok": True}, delay=STEP_SECONDS))
    replicas = {
        name: start_replica(cluster, namespace, name, overrides, tmp_path)
        for name in ("operator-a", "operator-b")
    }
    try:
        holder = wait_until(lambda: lease_holder(cluster, namespace), what="a leader")
        leader, standby = replica_of(holder), next(r for r in replicas if r != replica_of(holder))

        # Created while both run: reconciled (by the leader alone, as the audit log shows).
        cluster.apply([
            service_step(name, namespace, image="stepline/echo:0.1.0", path=f"/{name}",
                         timeoutSeconds=5)
            for name in ("check", "place")
        ])  # fmt: skip
        for name in ("check", "place"):
            wait_ready(cluster, "servicestep", name, namespace)
        cluster.apply({
            "apiVersion": API_VERSION, "kind": "Workflow",
            "metadata": {"name": "trade", "namespace": namespace},
            "spec": {"steps": [{"name": "check", "stepRef": "check"},
                               {"name": "place", "stepRef": "place"}]},
        })  # fmt: skip
        wait_ready(cluster, "workflow", "trade", namespace)

        cluster.apply([
            {"apiVersion": API_VERSION, "kind": "WorkflowRun",
             "metadata": {"name": f"order-{n}", "namespace": namespace},
             "spec": {"workflowRef": "trade", "input": {"n": n}}}
            for n in range(RUNS)
        ])  # fmt: skip
        wait_until(
            lambda: len(steps.server.calls("/place")) >= 5, timeout=60, what="runs under way"
        )
        replicas[leader].kill()
        killed_at = time.monotonic()

        new_holder = wait_until(
            lambda: (h := lease_holder(cluster, namespace)) and replica_of(h) == standby and h,
            timeout=TAKEOVER_BOUND + 10,
            what=f"{standby} to take the Lease over",
        )
        took = time.monotonic() - killed_at
        assert took <= TAKEOVER_BOUND, f"took over after {took:.1f} s"
        assert new_holder != holder

        def finished() -> list[dict[str, Any]] | None:
            runs = cluster.get_json("workflowruns", "-n", namespace)["items"]
            done = [r for r in runs if (r.get("status") or {}).get("phase") in
                    ("Succeeded", "Failed", "Cancelled")]  # fmt: skip
            return runs if len(done) == RUNS else None

        try:
            runs = wait_until(finished, timeout=120, what=f"all {RUNS} runs to finish")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{standby}'s log:\n{replicas[standby].log_tail()}"
            ) from exc
        failed = {r["metadata"]["name"]: r["status"] for r in runs
                  if r["status"]["phase"] != "Succeeded"}  # fmt: skip
        assert not failed, failed

        assert_each_step_called_once_at_a_time_under_its_key(steps, runs)
        assert_only_the_leader_wrote(cluster, namespace, leader=leader, standby=standby)
    finally:
        for replica in replicas.values():
            replica.stop()


def assert_each_step_called_once_at_a_time_under_its_key(
    steps: ThreadedStepServer, runs: list[dict[str, Any]]
) -> None:
    """Every step of every run was called, under `<run uid>/<step>`, and no call of a run's step
    started while another was being answered (a step answers in STEP_SECONDS)."""
    uids = {run["metadata"]["uid"] for run in runs}
    calls: dict[str, list[float]] = defaultdict(list)
    for path in ("/check", "/place"):
        for call in steps.server.calls(path):
            key = call.headers["Idempotency-Key"]
            uid, step = key.rsplit("/", 1)
            assert uid in uids, key
            assert f"/{step}" == path, key
            calls[key].append(call.at)
    assert len(calls) == 2 * len(runs)
    for key, starts in calls.items():
        starts.sort()
        too_close = [b - a for a, b in itertools.pairwise(starts) if b - a < STEP_SECONDS]
        assert not too_close, f"{key}: calls {too_close} s apart, one still being answered"


def assert_only_the_leader_wrote(
    cluster: LocalCluster, namespace: str, *, leader: str, standby: str
) -> None:
    """From the audit log: kopf wrote nothing; the standby wrote nothing before it took the
    Lease; the leader wrote the steps' objects, the Workflow's status and the runs'."""
    writes = audit_writes(cluster, namespace)
    by_kopf = [w for w in writes if w.get("userAgent", "").startswith("kopf/")]
    assert not by_kopf, [(w["verb"], w["objectRef"]) for w in by_kopf]
    standby_writes = [w for w in writes if f"({standby}_" in w.get("userAgent", "")]
    took_lease = [
        w for w in standby_writes
        if w["objectRef"].get("resource") == "leases"
        and (w.get("responseStatus") or {}).get("code") in (200, 201)
    ]  # fmt: skip
    assert took_lease, "the standby's taking of the Lease is not in the audit log"
    since = received_at(took_lease[0])
    early = [
        (w["verb"], w["objectRef"].get("resource"), w["objectRef"].get("name"))
        for w in standby_writes
        if w["objectRef"].get("resource") != "leases" and received_at(w) < since
    ]
    assert not early, f"{standby} wrote before it led: {early}"
    leader_wrote = {
        w["objectRef"].get("resource") for w in writes if f"({leader}_" in w.get("userAgent", "")
    }
    assert {"deployments", "workflows", "workflowruns"} <= leader_wrote, leader_wrote
