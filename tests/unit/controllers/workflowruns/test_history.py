"""The run index that retention and statistics read, kept from raw watch events."""

from __future__ import annotations

from typing import Any

from stepline.api import RunPhase
from stepline.controllers.workflowruns.history import RunIndex


def run(name: str, workflow: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": name,
            "creationTimestamp": "2026-11-27T05:00:00Z",
        },
        "spec": {"workflowRef": workflow},
        "status": status,
    }


def test_runs_are_indexed_by_workflow_and_follow_their_latest_event() -> None:
    index = RunIndex()
    index.record("ADDED", run("a-1", "orders"))
    index.record("ADDED", run("b-1", "refunds"))
    index.record(
        "MODIFIED",
        run("a-1", "orders", phase="Succeeded", finishedAt="2026-11-27T05:00:02Z",
            durationSeconds=2.0,
            steps=[{"name": "pay", "phase": "Succeeded", "durationSeconds": 1.5}]),
    )  # fmt: skip

    [entry] = index.entries("shop", "orders")
    assert entry.finished is not None
    assert entry.finished.phase is RunPhase.SUCCEEDED
    assert entry.summary.step_seconds == {"pay": 1.5}
    assert [e.summary.name for e in index.entries("shop", "refunds")] == ["b-1"]
    assert index.entries("other", "orders") == []


def test_a_deleted_run_leaves_the_index_and_a_malformed_one_never_enters_it() -> None:
    index = RunIndex()
    index.record("ADDED", run("a-1", "orders"))
    index.record("ADDED", {"metadata": {"namespace": "shop", "name": "odd"}, "spec": {}})
    index.record("ADDED", run("a-2", "orders", phase="NoSuchPhase"))
    index.record("DELETED", {"metadata": {"namespace": "shop", "name": "a-1"},
                             "spec": {"workflowRef": "orders"}})  # fmt: skip
    assert index.entries("shop", "orders") == []


def test_a_successful_run_enters_the_history_once_and_stays_after_it_is_deleted() -> None:
    index = RunIndex()
    succeeded = run(
        "a-1", "orders", phase="Succeeded", finishedAt="2026-11-27T05:00:02Z",
        durationSeconds=2.0, steps=[{"name": "pay", "phase": "Succeeded", "durationSeconds": 1.5}],
    )  # fmt: skip
    index.record("ADDED", run("a-1", "orders", phase="Running"))
    index.record("MODIFIED", succeeded)
    index.record("MODIFIED", succeeded)  # seen again (a relist, a label): counted once
    index.record("ADDED", run("a-2", "orders", phase="Failed", durationSeconds=1.0))
    index.record("DELETED", succeeded)  # retention let it go
    assert [e.summary.name for e in index.entries("shop", "orders")] == ["a-2"]
    assert [(o.duration_seconds, dict(o.step_seconds)) for o in index.observations(
        "shop", "orders")] == [(2.0, {"pay": 1.5})]  # fmt: skip
    index.forget_histories_except({("shop", "refunds")})  # the workflow was deleted
    assert index.observations("shop", "orders") == []


def test_the_web_view_reads_each_namespaces_runs_and_a_workflows_statistics_now() -> None:
    index = RunIndex()
    index.record("ADDED", run("a-1", "orders", phase="Succeeded", durationSeconds=2.0,
                              finishedAt="2026-11-27T05:00:02Z"))  # fmt: skip
    index.record("ADDED", run("a-2", "orders", phase="Failed", finishedAt="2026-11-27T05:00:03Z"))
    index.record("ADDED", run("b-1", "refunds", phase="Running"))

    rows = sorted((row.workflow, row.name, row.phase, row.duration_seconds)
                  for row in index.rows_in("shop"))  # fmt: skip
    statistics = index.statistics("shop", "orders")

    assert rows == [
        ("orders", "a-1", RunPhase.SUCCEEDED, 2.0),
        ("orders", "a-2", RunPhase.FAILED, None),
        ("refunds", "b-1", RunPhase.RUNNING, None),
    ]
    assert list(index.rows_in("elsewhere")) == []
    assert statistics is not None
    assert (statistics.total, statistics.succeeded, statistics.failed) == (2, 1, 1)
    assert statistics.success_rate == 0.5
    assert index.statistics("shop", "nothing") is None
