"""WorkflowSchedules on the real control plane, with the operator as a process and step services
that answer as scripted: runs start on the minute and are named by it, Forbid skips a time while
a run is active, Replace cancels it, history limits prune, a schedule the operator cannot run
says why, and an operator stopped across fire times starts one run for the latest of them, or
none once startingDeadlineSeconds has passed.

Schedule times are real minutes: a test waits for minute boundaries, so the schedules of the
shared step bed are all created at once by its fixture and run side by side; each test then waits
for its own schedule (the first waits about a minute, the others for what is left of two).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, Manifest, condition, get, items
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    wait_finished,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

SCHEDULE_LABEL = "stepline.io/schedule"
SCHEDULED_TIME = "stepline.io/scheduled-time"
# The slow step answers after this long: a run of the slow workflow is still active at the
# next minute, and over a little after it (Replace's cancelled run then ends Cancelled).
SLOW_SECONDS = 75
# Two minute boundaries, the runs' own seconds and a CI machine of 2 shared cores.
TWO_MINUTES = 150.0
# Waits on minute-boundary fires have this much slack on a loaded 2-core machine; a wait ends as
# soon as its condition holds, so the slack costs nothing when all is well.
SLACK = 60.0


def schedule(name: str, namespace: str, workflow: str, cron: str, **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowSchedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workflowRef": workflow, "schedule": cron, **spec},
    }


def runs_of(cluster: LocalCluster, namespace: str, name: str) -> list[Manifest]:
    found = items(cluster, "workflowruns", namespace, "-l", f"{SCHEDULE_LABEL}={name}")
    return sorted(found, key=lambda run: run["metadata"]["name"])


def status_of(cluster: LocalCluster, namespace: str, name: str) -> Manifest:
    found = get(cluster, "workflowschedule", name, namespace) or {}
    status: Manifest = found.get("status") or {}
    return status


def events_of(cluster: LocalCluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    listed = cluster.get_json(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [(event["type"], event["reason"], event["message"]) for event in listed]


def scraped(operator: OperatorProcess) -> str:
    url = f"{operator.metrics_url}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http, our own)
        text: str = response.read().decode()
        return text


def minutes_of(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp()) // 60


@pytest.fixture(scope="module")
def schedule_crd(cluster: LocalCluster) -> LocalCluster:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                    str(Path(__file__).resolve().parents[2] / "crds"))  # fmt: skip
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/workflowschedules.stepline.io", "crd/workflowruns.stepline.io",
                    "crd/workflows.stepline.io", "crd/servicesteps.stepline.io")  # fmt: skip
    return cluster


@pytest.fixture(scope="module")
def bed(schedule_crd: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepBed]:
    """Steps `quick` (answers at once) and `slow` (after SLOW_SECONDS), two workflows, and the
    schedules the tests of this bed watch, all created at once."""
    bed = open_step_bed(schedule_crd, "sched", ["quick", "slow"], tmp_path_factory.mktemp("sched"))
    try:
        bed.server.answer("/slow", Answer(json={"slow": True}, delay=SLOW_SECONDS))
        apply_workflow(bed, "quick-flow", [{"name": "check", "stepRef": "quick"}])
        apply_workflow(bed, "slow-flow", [
            {"name": "measure", "stepRef": "slow", "timeoutSeconds": 2 * SLOW_SECONDS},
            {"name": "report", "stepRef": "quick"},
        ])  # fmt: skip
        namespace = bed.namespace
        schedule_crd.apply([
            schedule("minutely", namespace, "quick-flow", "* * * * *",
                     input={"device": "press-7"}),
            schedule("forbid", namespace, "slow-flow", "* * * * *", concurrencyPolicy="Forbid"),
            schedule("replace", namespace, "slow-flow", "* * * * *", concurrencyPolicy="Replace"),
            schedule("history", namespace, "quick-flow", "* * * * *",
                     successfulRunsHistoryLimit=1),
        ])  # fmt: skip
        yield bed
    finally:
        close_step_bed(bed)


def test_an_every_minute_schedule_starts_a_run_named_by_its_minute(bed: StepBed) -> None:
    cluster, namespace = bed.cluster, bed.namespace
    created = get(cluster, "workflowschedule", "minutely", namespace)
    assert created is not None
    runs = wait_until(lambda: runs_of(cluster, namespace, "minutely"), timeout=75 + SLACK,
                      what="the first run of minutely")  # fmt: skip
    run = runs[0]
    scheduled = run["metadata"]["annotations"][SCHEDULED_TIME]
    assert run["metadata"]["name"] == f"minutely-{minutes_of(scheduled)}"
    assert datetime.fromisoformat(scheduled).second == 0
    assert run["spec"] == {"workflowRef": "quick-flow", "input": {"device": "press-7"},
                           "cancel": False, "suspend": False}  # fmt: skip
    (owner,) = run["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "WorkflowSchedule", "minutely", created["metadata"]["uid"], True,
    )  # fmt: skip
    assert wait_finished(bed, run["metadata"]["name"])["status"]["phase"] == "Succeeded"

    def written() -> Manifest | None:
        status = status_of(cluster, namespace, "minutely")
        return status if status.get("lastSuccessfulTime") else None

    status = wait_until(written, timeout=30, what="lastSuccessfulTime")
    assert minutes_of(status["lastScheduleTime"]) >= minutes_of(scheduled)
    next_time = datetime.fromisoformat(status["nextScheduleTime"])
    assert next_time - datetime.fromisoformat(status["lastScheduleTime"]) == timedelta(minutes=1)
    assert condition({"status": status}, "Ready")["reason"] == "Scheduled"
    started = [e for e in events_of(cluster, namespace, "minutely") if e[1] == "RunStarted"]
    assert ("Normal", "RunStarted", f"started run {run['metadata']['name']} for {scheduled}") in (
        started
    )
    metrics = scraped(bed.operator)
    labels = f'namespace="{namespace}",outcome="started",schedule="minutely"'
    assert f"stepline_schedule_runs_total{{{labels}}}" in metrics
    assert f'stepline_schedule_next_run_timestamp_seconds{{namespace="{namespace}"' in metrics
    listing = cluster.kubectl("get", "wfsched", "minutely", "-n", namespace, "-o", "wide").stdout
    headers = ("WORKFLOW", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "TIMEZONE", "NEXT")
    for header in headers:
        assert header in listing
    assert "Etc/UTC" in listing


def test_forbid_skips_a_time_while_its_run_is_still_active(bed: StepBed) -> None:
    cluster, namespace = bed.cluster, bed.namespace

    def skipped() -> Manifest | None:
        status = status_of(cluster, namespace, "forbid")
        return status if (status.get("lastSkip") or {}).get("reason") == "Forbid" else None

    status = wait_until(skipped, timeout=TWO_MINUTES + SLACK, what="a time skipped under Forbid")
    (run,) = runs_of(cluster, namespace, "forbid")
    assert (run.get("status") or {}).get("phase") in {"Pending", "Running"}
    assert status["activeCount"] == 1
    assert status["active"] == [{"name": run["metadata"]["name"], "uid": run["metadata"]["uid"]}]
    assert minutes_of(status["lastSkip"]["time"]) == minutes_of(status["lastScheduleTime"]) + 1
    reasons = [e[1] for e in events_of(cluster, namespace, "forbid")]
    assert "RunSkipped" in reasons
    assert 'outcome="skipped",schedule="forbid"' in scraped(bed.operator)


def test_replace_cancels_the_active_run_and_starts_the_next(bed: StepBed) -> None:
    cluster, namespace = bed.cluster, bed.namespace
    runs = wait_until(
        lambda: (found := runs_of(cluster, namespace, "replace")) and len(found) >= 2 and found,
        timeout=TWO_MINUTES + SLACK,
        what="a second run of replace",
    )
    first, second = runs[0], runs[1]
    assert first["spec"]["cancel"] is True
    assert second["spec"]["cancel"] is False
    assert (
        wait_finished(bed, first["metadata"]["name"], timeout=SLOW_SECONDS)["status"]["phase"]
        == "Cancelled"
    )
    replaced = [e for e in events_of(cluster, namespace, "replace") if e[1] == "RunReplaced"]
    assert replaced
    assert first["metadata"]["name"] in replaced[0][2]
    assert 'outcome="replaced",schedule="replace"' in scraped(bed.operator)


def test_history_limits_delete_the_older_finished_runs(bed: StepBed) -> None:
    cluster, namespace = bed.cluster, bed.namespace
    seen: set[str] = set()

    def pruned() -> list[Manifest] | None:
        runs = runs_of(cluster, namespace, "history")
        seen.update(run["metadata"]["name"] for run in runs)
        finished = [r for r in runs if (r.get("status") or {}).get("phase") == "Succeeded"]
        return runs if len(seen) >= 2 and len(finished) == 1 and len(runs) == 1 else None

    (kept,) = wait_until(pruned, timeout=TWO_MINUTES + 30 + SLACK, what="one succeeded run kept")
    assert kept["metadata"]["name"] == max(seen)  # the newest stays


def test_a_schedule_the_operator_cannot_run_says_why_and_starts_nothing(bed: StepBed) -> None:
    cluster, namespace = bed.cluster, bed.namespace
    cluster.apply([
        schedule("backward", namespace, "quick-flow", "5-3 * * * *"),
        schedule("nowhere", namespace, "quick-flow", "@hourly", timeZone="Mars/Olympus"),
        schedule("orphan", namespace, "no-such-flow", "@hourly"),
    ])  # fmt: skip
    expected = {
        "backward": ("InvalidSchedule", "spec.schedule: the range 5-3 of the minute field"),
        "nowhere": ("InvalidTimeZone", "spec.timeZone: unknown time zone 'Mars/Olympus'"),
        "orphan": ("WorkflowNotFound", "spec.workflowRef: Workflow 'no-such-flow' not found"),
    }
    for name, (reason, says) in expected.items():
        ready = wait_until(
            lambda name=name: (c := condition(get(cluster, "workflowschedule", name, namespace),
                                              "Ready")) and c.get("status") == "False" and c,
            timeout=30, what=f"{name} not Ready",
        )  # fmt: skip
        assert ready["reason"] == reason
        assert says in ready["message"]
        event = "InvalidSchedule" if reason != "WorkflowNotFound" else reason
        wait_until(lambda name=name, event=event: event in [
            e[1] for e in events_of(cluster, namespace, name) if e[0] == "Warning"
        ], timeout=30, what=f"the {event} Event of {name}")  # fmt: skip
    assert "nextScheduleTime" not in status_of(cluster, namespace, "backward")
    assert runs_of(cluster, namespace, "backward") == []


@pytest.fixture
def stoppable(
    schedule_crd: LocalCluster, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(schedule_crd, (namespace,), tmp_path / "operator.log").start()
    try:
        yield process
    finally:
        process.stop()


def wait_past(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))


def test_an_operator_stopped_across_fire_times_starts_one_run_for_the_latest_or_none_too_late(
    schedule_crd: LocalCluster, namespace: str, stoppable: OperatorProcess
) -> None:
    cluster = schedule_crd
    cluster.apply([
        {"apiVersion": API_VERSION, "kind": "Workflow",
         "metadata": {"name": "flow", "namespace": namespace},
         "spec": {"steps": [{"name": "read", "stepRef": "sensor"}]}},
        # Its runs fail (no ServiceStep `sensor`): enough failed ones are kept to see them all.
        schedule("catch-up", namespace, "flow", "* * * * *", failedRunsHistoryLimit=10),
        schedule("strict", namespace, "flow", "* * * * *", startingDeadlineSeconds=5,
                 failedRunsHistoryLimit=10),
    ])  # fmt: skip
    first = {
        name: wait_until(lambda name=name: runs_of(cluster, namespace, name), timeout=75 + SLACK,
                         what=f"the first run of {name}")[0]["metadata"]["name"]
        for name in ("catch-up", "strict")
    }  # fmt: skip
    stoppable.stop()
    stopped_at = datetime.now(UTC)
    # Two more times pass while it is down; it comes back 20 s into the minute after them.
    back_at = stopped_at.replace(second=20, microsecond=0) + timedelta(minutes=2)
    wait_past(back_at)
    stoppable.start()
    latest = int(datetime.now(UTC).timestamp()) // 60

    runs = wait_until(
        lambda: (found := runs_of(cluster, namespace, "catch-up")) and len(found) >= 2 and found,
        timeout=30 + SLACK, what="the catch-up run",
    )  # fmt: skip
    # Sorted by minute: the first, then the one for the latest missed time (the next minute's
    # may follow if the wait ran past it).
    assert [run["metadata"]["name"] for run in runs][:2] == [
        first["catch-up"],
        f"catch-up-{latest}",
    ]

    def missed() -> Manifest | None:
        status = status_of(cluster, namespace, "strict")
        reason = (status.get("lastSkip") or {}).get("reason")
        return status if reason == "DeadlineExceeded" else None

    status = wait_until(missed, timeout=30, what="the missed time of strict")
    assert minutes_of(status["lastSkip"]["time"]) == latest
    strict_runs = [run["metadata"]["name"] for run in runs_of(cluster, namespace, "strict")]
    assert strict_runs[0] == first["strict"]
    assert f"strict-{latest}" not in strict_runs
    warnings = [e for e in events_of(cluster, namespace, "strict") if e[0] == "Warning"]
    assert [reason for _, reason, _ in warnings] == ["MissedSchedule"]
    assert "startingDeadlineSeconds (5)" in warnings[0][2]
    assert 'outcome="missed",schedule="strict"' in scraped(stoppable)
    assert json.loads(json.dumps(status))["nextScheduleTime"]
