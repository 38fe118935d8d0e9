"""The run queue alone (controllers/workflowruns/queueing.py): the operator's run limit, each
Workflow's concurrency, first come first started within a Workflow, and no Workflow held back
by another's full concurrency."""

from __future__ import annotations

from stepline.controllers.workflowruns.queueing import QueuedRun, RunQueue

CONCURRENCY = {"trade": 1, "report": 5}


def run(index: int, workflow: str = "trade") -> QueuedRun:
    return QueuedRun(f"u-{index}", "shop", f"run-{index}", workflow)


def queue(limit: int) -> RunQueue:
    return RunQueue(limit, lambda namespace, workflow: CONCURRENCY.get(workflow))


def test_runs_over_the_limit_are_refused_until_one_is_done_then_the_oldest_goes() -> None:
    runs = queue(2)
    assert runs.admit(run(1, "report"))
    assert runs.admit(run(2, "report"))
    assert not runs.admit(run(3, "report"))
    runs.enqueue(run(3, "report"))
    runs.enqueue(run(4, "report"))
    assert runs.next_admitted() == []  # nothing ended
    runs.done("u-1")
    assert runs.next_admitted() == [run(3, "report")]
    assert (runs.executing, runs.queued) == (2, 1)


def test_a_workflow_at_its_concurrency_holds_back_its_own_runs_only() -> None:
    runs = queue(10)
    assert runs.admit(run(1, "trade"))
    assert not runs.admit(run(2, "trade"))  # trade runs one at a time
    runs.enqueue(run(2, "trade"))
    assert runs.admit(run(3, "report"))  # not behind trade's queue
    assert runs.next_admitted() == []
    runs.done("u-1")
    assert runs.next_admitted() == [run(2, "trade")]


def test_a_new_run_waits_behind_its_workflows_queued_runs() -> None:
    runs = queue(1)
    assert runs.admit(run(1, "report"))
    runs.enqueue(run(2, "report"))
    runs.done("u-1")  # room now, but run 2 came first
    assert not runs.admit(run(3, "report"))
    assert runs.next_admitted() == [run(2, "report")]


def test_when_the_limit_frees_the_oldest_workflow_with_room_goes_first() -> None:
    runs = queue(2)
    assert runs.admit(run(1, "trade"))
    assert runs.admit(run(2, "report"))
    for queued in (run(3, "trade"), run(4, "report"), run(5, "report")):
        runs.enqueue(queued)
    runs.done("u-2")  # a report run ended; trade is still at its concurrency
    assert runs.next_admitted() == [run(4, "report")]
    runs.done("u-1")
    assert runs.next_admitted() == [run(3, "trade")]


def test_a_run_removed_or_admitted_at_once_leaves_the_queue() -> None:
    runs = queue(1)
    assert runs.admit(run(1))
    runs.enqueue(run(2))
    runs.enqueue(run(3))
    assert runs.remove("u-2") == run(2)
    runs.admit_now(run(3))  # to cancel: it goes whatever the limits
    assert (runs.executing, runs.queued) == (2, 0)
    assert runs.clear() == []
