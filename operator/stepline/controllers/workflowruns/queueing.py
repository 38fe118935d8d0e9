"""Runs waiting for their turn: at most `STEPLINE_RUN_LIMIT` runs execute at once in the operator,
and at most its Workflow's `spec.concurrency` of each Workflow; the others wait here, in the
order they arrived, as a few names each, with no task, no parsed body and no input held.

A flood of 10,000 runs created at once gave each a task and a parsed run straight away (their
inputs too, up to 64 KiB each), and the operator's memory grew by 240 MiB until they had all
finished (bench/scale/RESULTS.md). A queued run costs some 300 bytes instead; when a run ends, the
oldest queued run that may go (its Workflow has room) is read again and started.

Within a Workflow the order is strict (first queued, first started). Across Workflows a run is
never held back by another Workflow's full concurrency: the Workflows with queued runs are
looked at in the order each first queued one, and a full one is passed over. Pure: the
supervisor calls it and starts what it admits.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

# (namespace, workflow): the runs of one Workflow.
WorkflowKey = tuple[str, str]
# A Workflow's spec.concurrency, None when the Workflow is not known (yet): not limited here,
# the run's task waits for it as before.
ConcurrencyOf = Callable[[str, str], int | None]


@dataclass(frozen=True)
class QueuedRun:
    uid: str
    namespace: str
    name: str
    workflow: str

    @property
    def key(self) -> WorkflowKey:
        return (self.namespace, self.workflow)


class RunQueue:
    """The runs executing in this operator (by uid) and those waiting for their turn."""

    def __init__(self, limit: int, concurrency_of: ConcurrencyOf) -> None:
        self.limit = limit
        self._concurrency_of = concurrency_of
        self._executing: dict[str, WorkflowKey] = {}
        self._per_workflow: Counter[WorkflowKey] = Counter()
        # Each Workflow's waiting runs, the Workflows in the order they first queued one.
        self._waiting: OrderedDict[WorkflowKey, deque[QueuedRun]] = OrderedDict()
        self._queued: dict[str, QueuedRun] = {}

    def admit(self, run: QueuedRun) -> bool:
        """Whether `run` may execute now; if so, it counts as executing until `done(uid)`. A run
        already executing is admitted again (a later event of it)."""
        if run.uid in self._executing:
            return True
        if run.uid in self._queued or not self._has_room(run.key) or run.key in self._waiting:
            return False
        self._start(run)
        return True

    def admit_now(self, run: QueuedRun) -> None:
        """Counts `run` as executing whatever the limits: a run to cancel, or one that only
        parks itself (suspended), goes at once."""
        self.remove(run.uid)
        if run.uid not in self._executing:
            self._start(run)

    def enqueue(self, run: QueuedRun) -> bool:
        """Puts `run` at the end of its Workflow's queue; False if it is queued already."""
        if run.uid in self._queued:
            return False
        self._queued[run.uid] = run
        self._waiting.setdefault(run.key, deque()).append(run)
        return True

    def remove(self, uid: str) -> QueuedRun | None:
        """Takes a queued run out (deleted, say); None if it is not queued."""
        run = self._queued.pop(uid, None)
        if run is not None:
            waiting = self._waiting[run.key]
            waiting.remove(run)
            if not waiting:
                del self._waiting[run.key]
        return run

    def done(self, uid: str) -> None:
        """The run executing as `uid` stopped (ended, parked, or was left to another leader)."""
        key = self._executing.pop(uid, None)
        if key is not None:
            self._per_workflow[key] -= 1
            if not self._per_workflow[key]:
                del self._per_workflow[key]

    def next_admitted(self) -> list[QueuedRun]:
        """Takes out of the queue, oldest first, the runs that may execute now (each counts as
        executing from now): call it when a run stopped."""
        admitted: list[QueuedRun] = []
        for key in list(self._waiting):
            waiting = self._waiting[key]
            while waiting and len(self._executing) < self.limit and self._has_room(key):
                run = waiting.popleft()
                del self._queued[run.uid]
                self._start(run)
                admitted.append(run)
            if not waiting:
                del self._waiting[key]
            if len(self._executing) >= self.limit:
                break
        return admitted

    def clear(self) -> list[QueuedRun]:
        """Empties the queue (this replica stopped leading: the new leader queues them anew);
        the runs that were in it."""
        runs = list(self._queued.values())
        self._queued.clear()
        self._waiting.clear()
        return runs

    def is_queued(self, uid: str) -> bool:
        return uid in self._queued

    @property
    def executing(self) -> int:
        return len(self._executing)

    @property
    def queued(self) -> int:
        return len(self._queued)

    def _has_room(self, key: WorkflowKey) -> bool:
        if len(self._executing) >= self.limit:
            return False
        concurrency = self._concurrency_of(*key)
        return concurrency is None or self._per_workflow[key] < concurrency

    def _start(self, run: QueuedRun) -> None:
        self._executing[run.uid] = run.key
        self._per_workflow[run.key] += 1
