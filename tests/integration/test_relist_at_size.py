"""A relist after a `410 Gone` at size, against the real API server (issue 19, item 4).

10,000 WorkflowRuns are followed by the operator's own run watch (`workflowruns.watch.RunWatch`
on `informers.Follower`, feeding a real `history.RunIndex`). While it is not watching, some runs
are deleted, some created and some finished; it then resumes from a version the API server no
longer keeps, gets the API server's 410 and lists again, page by page. The relist must report
every deletion, show every new and changed run, and leave the index equal to what the API server
lists; and, traced by tracemalloc, its burst of memory must be that of a page of bodies (the list
is paginated), not of the whole collection, and once it is done the watch must hold little more
than before.

Why a version is substituted (`FallingBehind`): the API server's watch cache grows to keep the
last minute or so of events, so after a burst of creations the version the watch really had
stays in the window unless more writes follow than the burst made. The resumed watch asks for
resourceVersion 1 instead, etcd's first revision, older than any watch cache's window: the 410
and the relist are the API server's and the Follower's own; only the staleness is hastened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
import tracemalloc
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.api import API_VERSION
from stepline.controllers import informers
from stepline.controllers.workflowruns.history import RunIndex
from stepline.controllers.workflowruns.watch import RunWatch
from stepline.errors import KubeApiError
from stepline.kube import KubeApi
from stepline.observability import Metrics
from stepline.settings import Settings
from tests.integration.asynctasks import running
from tests.integration.localcluster import LocalCluster

RUNS = 10_000
DELETED_IN_GAP = range(0, RUNS, 10)  # 1,000 runs deleted while nobody watches,
FINISHED_IN_GAP = range(5, RUNS, 20)  # 500 that succeed meanwhile,
NEW_IN_GAP = 500  # and 500 created.
WORKFLOW = "trade"  # no such Workflow is needed: no operator runs here
# Requests in flight while writing: enough to keep the API server busy (the client sends 8 at a
# time, `kube.CONNECTIONS`), few enough to leave it and etcd most of a small machine's CPU.
WRITERS = 16
# etcd's first revision: older than the window of any watch cache of the API server.
STALE_VERSION = "1"
WAIT = 120.0
# The relist's burst above the memory held before it, as a share of what the watch holds for
# 10,000 runs: it does not double. Measured 0.90 (+6.7 MiB over 7.4): the page being decoded (the
# JSON parser's working memory is several times the page's), the gap's tombstones and the
# reopened watch; 1.27 while the Follower kept the previous page and a second set of every key
# listed. A list of the whole collection at once needs many times what the watch holds (13).
RELIST_BURST_SHARE = 1.0
# Memory that may stay after the relist, beyond what the watch held before it, as a share of
# what it held: the index's entries are rebuilt from the new bodies, whose names are no longer
# the strings the Follower's keys share (once: another relist replaces them again).
KEPT_AFTER_RELIST = 0.15


class FallingBehind:
    """The run watch's API client: lists pass through; the first watch is held back until
    `catch_up()` (the gap: nobody watches), then asks for `STALE_VERSION` in place of the
    version the Follower gave. Notes the lists begun and the API server's 410s; `held` is set
    once a watch waits, `relisted` once one opens after a 410."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._caught_up = asyncio.Event()
        self.held = asyncio.Event()
        self.relisted = asyncio.Event()
        self.lists_begun = 0
        self.gone: list[KubeApiError] = []

    def catch_up(self) -> None:
        self._caught_up.set()

    async def list_page(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("continue_token") is None:
            self.lists_begun += 1
        return await self._kube.list_page(*args, **kwargs)

    async def watch(
        self, api_version: str, kind: str, namespace: str | None, *, resource_version: str,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, Any], None]:  # fmt: skip
        version = resource_version
        if not self._caught_up.is_set():
            self.held.set()
            await self._caught_up.wait()
            version = STALE_VERSION
        elif self.gone:
            self.relisted.set()
        events = self._kube.watch(api_version, kind, namespace, resource_version=version, **kwargs)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        except KubeApiError as exc:
            if exc.status == 410:
                self.gone.append(exc)
            raise


@dataclass
class Deletions:
    """Stands in for the run supervisor (a standby's starts nothing): the names of the runs the
    watch reported deleted."""

    names: set[str] = field(default_factory=set)

    def follow_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if event_type == "DELETED":
            self.names.add(body["metadata"]["name"])


@dataclass
class Memory:
    """tracemalloc's figures, in bytes: `held` by the watch once 10,000 runs are listed, the
    total just `before` the relist, its `peak` during the relist, and the total `after` it."""

    held: int = 0
    before: int = 0
    peak: int = 0
    after: int = 0

    @property
    def rise(self) -> int:
        return self.peak - self.before

    def __str__(self) -> str:
        mib = 1 << 20
        return (
            f"held {self.held / mib:.1f} MiB, relist peak {self.rise / mib:+.1f} MiB above "
            f"{self.before / mib:.1f} MiB, after {(self.after - self.before) / mib:+.1f} MiB"
        )


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def run_manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workflowRef": WORKFLOW},
    }  # fmt: skip


async def in_parallel(jobs: Iterable[Callable[[], Awaitable[object]]]) -> float:
    """Runs the jobs, `WRITERS` at a time; the seconds they took."""
    started, pending = time.monotonic(), iter(jobs)

    async def writer() -> None:
        for job in pending:
            await job()

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return time.monotonic() - started


async def listed_names(kube: KubeApi, namespace: str) -> set[str]:
    names: set[str] = set()
    token: str | None = None
    while True:
        page = await kube.list_page(API_VERSION, "WorkflowRun", namespace, continue_token=token)
        names.update(item["metadata"]["name"] for item in page["items"])
        token = page["metadata"].get("continue")
        if not token:
            return names


def indexed_names(index: RunIndex, namespace: str) -> set[str]:
    return {entry.summary.name for entry in index.entries(namespace, WORKFLOW)}


async def fall_behind(kube: KubeApi, namespace: str, names: list[str]) -> float:
    """Deletes, finishes and creates runs (module constants); the seconds it took."""
    finished_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    status = {"phase": "Succeeded", "finishedAt": finished_at, "durationSeconds": 1.5}
    jobs: list[Callable[[], Awaitable[object]]] = [
        *(
            functools.partial(kube.delete, API_VERSION, "WorkflowRun", namespace, names[n])
            for n in DELETED_IN_GAP
        ),
        *(
            functools.partial(
                kube.patch_status, API_VERSION, "WorkflowRun", namespace, names[n], status
            )
            for n in FINISHED_IN_GAP
        ),
        *(
            functools.partial(kube.create, run_manifest(f"late-{n:04d}", namespace))
            for n in range(NEW_IN_GAP)
        ),
    ]
    return await in_parallel(jobs)


async def test_a_relist_after_410_gone_at_10000_runs_loses_no_deletion_and_holds_a_page_at_a_time(
    cluster: LocalCluster,
    crds: None,
    namespace: str,
    kube: KubeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = [f"run-{n:05d}" for n in range(RUNS)]
    creation = await in_parallel(
        functools.partial(kube.create, run_manifest(name, namespace)) for name in names
    )
    client = FallingBehind(kube)
    index, deletions, memory = RunIndex(), Deletions(), Memory()
    runtime = types.SimpleNamespace(
        kube=client, settings=Settings(namespaces=(namespace,)), metrics=Metrics()
    )

    caplog.set_level(logging.WARNING, logger="stepline.controllers.informers")
    tracemalloc.start()
    try:
        baseline = traced_now()
        watch = RunWatch(runtime, deletions, index=index)  # type: ignore[arg-type]
        async with running(watch):
            started = time.monotonic()
            await asyncio.wait_for(client.held.wait(), WAIT)  # listed; not watching from now
            first_list = time.monotonic() - started
            memory.held = traced_now() - baseline
            assert len(indexed_names(index, namespace)) == RUNS

            gap = await fall_behind(kube, namespace, names)

            memory.before = traced_now()
            tracemalloc.reset_peak()
            started = time.monotonic()
            client.catch_up()
            await asyncio.wait_for(client.relisted.wait(), WAIT)
            relist = time.monotonic() - started
            memory.peak = tracemalloc.get_traced_memory()[1]
            memory.after = traced_now()
    finally:
        tracemalloc.stop()

    print(
        f"created {RUNS} runs in {creation:.1f} s; first list {first_list:.1f} s; gap writes "
        f"{gap:.1f} s; relist {relist:.1f} s; {memory}"
    )
    # The 410 was the API server's, and the Follower listed again at once (no back-off, which
    # would have logged a warning).
    assert [exc.status for exc in client.gone] == [410]
    assert "too old resource version" in str(client.gone[0])
    assert client.lists_begun == 2
    assert not [record for record in caplog.records if record.name == informers.__name__]
    # Nothing lost: every deletion reported, every new and finished run in the index, which
    # holds what the API server lists and nothing else.
    assert deletions.names == {names[n] for n in DELETED_IN_GAP}
    present = await listed_names(kube, namespace)
    assert indexed_names(index, namespace) == present
    assert present == (set(names) - deletions.names) | {f"late-{n:04d}" for n in range(NEW_IN_GAP)}
    finished = {e.summary.name for e in index.entries(namespace, WORKFLOW) if e.finished}
    assert finished == {names[n] for n in FINISHED_IN_GAP}
    # Paginated, the relist holds a page of bodies at a time, not all 10,000 beside the index,
    # and gives it back.
    assert memory.rise < RELIST_BURST_SHARE * memory.held, str(memory)
    assert memory.after - memory.before < KEPT_AFTER_RELIST * memory.held, str(memory)
