"""Leader election on a Lease (controllers.election): client-go's algorithm, judged on the
standby's own clock, and the fence that ends a leader's writes before anyone can take over.

Time is a fake clock that moves only when a test moves it (or when a fake request is said to take
its whole timeout), and the API server is a fake that keeps one Lease with resourceVersions the
way a real one does: each round of an elector is a call of `try_acquire_or_renew()`.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from stepline.controllers.election import (
    LeaseElector,
    LeaseTimings,
    build_lease_spec,
    micro_time,
    new_identity,
)
from stepline.errors import KubeApiError, KubeConflictError
from stepline.observability import Metrics
from stepline.settings import Settings
from tests.unit.engine.stepservers import T0, FakeClock

NAMESPACE, NAME = "stepline-system", "stepline"
START = 1000.0  # FakeClock's first monotonic time
# What a scripted request does instead of answering: take its whole timeout and fail, never
# answer at all, or reach the server and lose its answer on the way back.
TIMES_OUT, NEVER_ANSWERS, ANSWER_LOST = "times out", "never answers", "answer lost"


class LeaseServer:
    """An API server with at most one Lease: every write gets a new resourceVersion, a replace
    of a version it no longer has is a 409, a create of a Lease it has is a 409."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lease: dict[str, Any] | None = None
        self._versions = itertools.count(1)

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise KubeConflictError("POST leases: 409 already exists", status=409)
        return self._store(manifest)

    def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.lease is None:
            raise KubeApiError("PUT leases/stepline: 404 not found", status=404)
        if manifest["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise KubeConflictError("PUT leases/stepline: 409 modified meanwhile", status=409)
        return self._store(manifest)

    def edit(self, **labels: str) -> None:
        """Someone else (kubectl) changes the Lease without touching its spec."""
        assert self.lease is not None
        self.lease["metadata"]["labels"] = labels
        self.lease["metadata"]["resourceVersion"] = str(next(self._versions))

    def holder(self) -> str | None:
        return self.lease["spec"].get("holderIdentity") if self.lease else None

    def _store(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        metadata = {**manifest["metadata"], "resourceVersion": str(next(self._versions))}
        self.lease = {**manifest, "metadata": metadata, "spec": dict(manifest["spec"])}
        return {**self.lease, "metadata": dict(metadata)}


class LeaseClient:
    """One replica's requests to the server (a `LeaseApi`). `script` says what the next requests
    do instead of answering (an exception is raised before the server sees them); `down` fails
    every request; `calls` records (method, timeout)."""

    def __init__(self, server: LeaseServer) -> None:
        self.server = server
        self.script: list[Any] = []
        self.down = False
        self.calls: list[tuple[str, float | None]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, timeout: float | None
    ) -> dict[str, Any] | None:
        assert (api_version, kind, namespace, name) == ("coordination.k8s.io/v1", "Lease",
                                                         NAMESPACE, NAME)  # fmt: skip
        lease = await self._answer("get", timeout, lambda: self.server.lease)
        return None if lease is None else {**lease, "metadata": dict(lease["metadata"])}

    async def create(self, manifest: Mapping[str, Any], *, timeout: float | None) -> dict[str, Any]:
        return await self._answer("create", timeout, lambda: self.server.create(manifest))

    async def replace(
        self, manifest: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        return await self._answer("replace", timeout, lambda: self.server.replace(manifest))

    async def _answer(self, method: str, timeout: float | None, serve: Any) -> Any:
        self.calls.append((method, timeout))
        await asyncio.sleep(0)  # a request is a wait: another replica may go meanwhile
        what = self.script.pop(0) if self.script else ("down" if self.down else None)
        if what == "down":
            raise KubeApiError(f"{method} lease: no answer (connection refused)", status=0)
        if isinstance(what, BaseException):
            raise what
        if what == TIMES_OUT:
            assert timeout is not None
            self.server.clock.time += timeout
            raise KubeApiError(f"{method} lease: no answer within {timeout} s", status=0)
        if what == NEVER_ANSWERS:
            try:
                await asyncio.Event().wait()
            finally:  # cut off by the elector's own deadline, once its time has gone by
                self.server.clock.time += timeout or 0
        answer = serve()
        if what == ANSWER_LOST:
            raise KubeApiError(f"{method} lease: connection reset", status=0)
        return answer


def elector(
    server: LeaseServer,
    identity: str,
    *,
    metrics: Metrics | None = None,
    timings: LeaseTimings = LeaseTimings(),  # noqa: B008 (frozen)
) -> tuple[LeaseElector, LeaseClient]:
    client = LeaseClient(server)
    found = LeaseElector(
        client, namespace=NAMESPACE, name=NAME, identity=identity, timings=timings,
        metrics=metrics or Metrics(), clock=server.clock, jitter=lambda: 0.5,
    )  # fmt: skip
    return found, client


def leader_gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("stepline_leader")


@pytest.fixture
def server() -> LeaseServer:
    return LeaseServer(FakeClock())


def held_by(holder: str, *, transitions: int = 3) -> dict[str, Any]:
    """A Lease another replica holds, its renewTime years in the past on this machine's clock:
    a standby must not care."""
    long_ago = "2020-01-01T00:00:00.000000Z"
    spec = build_lease_spec(
        holder=holder, duration=15, acquired=long_ago, renewed=long_ago, transitions=transitions
    )
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": spec,
    }


# Acquiring


async def test_an_absent_lease_is_created_naming_this_replica_which_leads_until_its_fence(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    a, client = elector(server, "operator-a_1f2e", metrics=metrics)
    assert not a.is_leading()
    assert leader_gauge(metrics) == 0

    delay = await a.try_acquire_or_renew()

    assert server.lease is not None
    assert server.lease["spec"] == {
        "holderIdentity": "operator-a_1f2e",
        "leaseDurationSeconds": 15,
        "acquireTime": micro_time(T0 + timedelta(seconds=START)),
        "renewTime": server.lease["spec"]["acquireTime"],
        "leaseTransitions": 0,
    }
    assert [method for method, _ in client.calls] == ["get", "create"]
    assert a.is_leading()
    assert a.fence == START + 10  # sent at START, plus the renew deadline
    assert delay == 2  # renew every retry period
    await asyncio.wait_for(a.wait_leading(), 1)
    assert leader_gauge(metrics) == 1


async def test_a_lease_held_by_a_live_leader_is_not_taken(server: LeaseServer) -> None:
    server.create(held_by("operator-b_9a9a"))
    a, client = elector(server, "operator-a_1f2e")

    for _ in range(7):  # 14 seconds of reads, each finding the same version
        delay = await a.try_acquire_or_renew()
        server.clock.time += 2

    assert server.holder() == "operator-b_9a9a"
    assert not a.is_leading()
    assert [method for method, _ in client.calls] == ["get"] * 7
    assert delay == 2 * (1 + 1.2 * 0.5)  # a standby's period, jittered (client-go: 2 to 4.4 s)


async def test_a_lease_unchanged_for_its_duration_on_the_standbys_own_clock_is_taken_over(
    server: LeaseServer,
) -> None:
    server.create(held_by("operator-b_9a9a", transitions=3))
    a, _ = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()  # first seen at START

    server.clock.time = START + 14.999
    await a.try_acquire_or_renew()
    assert server.holder() == "operator-b_9a9a"

    server.clock.time = START + 15
    await a.try_acquire_or_renew()
    assert server.holder() == "operator-a_1f2e"
    assert a.is_leading()
    assert server.lease is not None
    spec = server.lease["spec"]
    assert spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == spec["renewTime"] == micro_time(server.clock.now())


async def test_a_standby_counts_the_duration_again_from_each_change_it_sees(
    server: LeaseServer,
) -> None:
    server.create(held_by("operator-b_9a9a"))
    a, _ = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()

    server.clock.time = START + 10
    server.edit(team="shop")  # any write is a sign of life: a new resourceVersion
    await a.try_acquire_or_renew()
    server.clock.time = START + 24.9
    await a.try_acquire_or_renew()
    assert server.holder() == "operator-b_9a9a"

    server.clock.time = START + 25
    await a.try_acquire_or_renew()
    assert server.holder() == "operator-a_1f2e"


async def test_two_replicas_racing_for_an_absent_lease_elect_one(server: LeaseServer) -> None:
    a, a_client = elector(server, "operator-a_1f2e")
    b, b_client = elector(server, "operator-b_9a9a")

    await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())

    assert [m for m, _ in a_client.calls] == [m for m, _ in b_client.calls] == ["get", "create"]
    assert [a.is_leading(), b.is_leading()].count(True) == 1
    assert server.holder() == ("operator-a_1f2e" if a.is_leading() else "operator-b_9a9a")


# Renewing


async def test_a_renewal_keeps_leadership_and_moves_the_fence_to_its_send_time_plus_deadline(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    assert server.lease is not None
    acquired = server.lease["spec"]["acquireTime"]

    server.clock.time = START + 2
    delay = await a.try_acquire_or_renew()

    assert client.calls[-1] == ("replace", 8.0)  # the fast path: no read; the time left
    assert a.is_leading()
    assert a.fence == START + 12
    assert delay == 2
    spec = server.lease["spec"]
    assert spec["acquireTime"] == acquired
    assert spec["renewTime"] == micro_time(server.clock.now())
    assert spec["leaseTransitions"] == 0


async def test_a_conflict_on_renewal_rereads_and_never_overwrites_another_holder(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    assert server.lease is not None
    server.replace(
        {**server.lease, "spec": held_by("operator-b_9a9a", transitions=1)["spec"]}
    )  # b took it over (say, after a's requests were lost for a lease duration)
    taken = server.lease

    server.clock.time = START + 2
    await a.try_acquire_or_renew()

    assert [method for method, _ in client.calls] == ["get", "create", "replace", "get"]
    assert server.lease == taken
    assert not a.is_leading()
    await asyncio.wait_for(a.wait_lost(), 1)


async def test_a_conflict_on_renewal_of_a_lease_still_naming_this_replica_renews_it_again(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    server.edit(team="shop")  # someone labelled it: our version is stale, the holder is us

    server.clock.time = START + 2
    await a.try_acquire_or_renew()

    assert [method for method, _ in client.calls] == ["get", "create", "replace", "get", "replace"]
    assert server.holder() == "operator-a_1f2e"
    assert server.lease is not None
    assert server.lease["metadata"]["labels"] == {"team": "shop"}
    assert a.fence == START + 12


async def test_a_renewal_whose_answer_was_lost_is_followed_by_one_on_the_fresh_version(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    client.script = [ANSWER_LOST]

    server.clock.time = START + 2
    await a.try_acquire_or_renew()  # written, but a does not know: its fence stays
    assert a.fence == START + 10
    server.clock.time = START + 4
    await a.try_acquire_or_renew()  # a 409 on the version a knows; it is still a's: renewed

    assert a.fence == START + 14
    assert server.holder() == "operator-a_1f2e"


# Stepping down


async def test_a_leader_that_cannot_renew_steps_down_exactly_at_its_fence(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    timings = LeaseTimings(retry_period=3)  # so that retries do not land on the fence anyway
    a, client = elector(server, "operator-a_1f2e", metrics=metrics, timings=timings)
    server.clock.time = START + 0.5
    await a.try_acquire_or_renew()
    fence = a.fence
    assert fence == START + 10.5
    client.down = True

    delays = []
    while server.clock.time < fence:
        assert a.is_leading()
        assert not a._lost.is_set()
        delays.append(await a.try_acquire_or_renew())
        server.clock.time += delays[-1]
    assert delays == [3, 3, 3, 1]  # every retry period, the last one cut to land on the fence
    assert server.clock.time == fence

    server.clock.time = fence - 1e-9
    assert a.is_leading()
    server.clock.time = fence
    assert not a.is_leading()
    await a.try_acquire_or_renew()  # the round due at the fence steps down, then reads again
    await asyncio.wait_for(a.wait_lost(), 1)
    assert not a._leading.is_set()
    assert a.fence == -math.inf
    assert leader_gauge(metrics) == 0
    assert client.calls[-1] == ("get", 10.0)  # trying to acquire again, as a standby


async def test_each_renewal_is_bounded_by_the_time_left_before_the_fence(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    client.script = [ANSWER_LOST, TIMES_OUT]

    server.clock.time = START + 3.5
    await a.try_acquire_or_renew()  # lost: the fence stays at START + 10
    server.clock.time = START + 5.5
    await a.try_acquire_or_renew()  # takes all of its 4.5 s: ends at the fence

    assert client.calls[2:] == [("replace", 6.5), ("replace", 4.5)]
    assert server.clock.time == START + 10
    assert not a.is_leading()
    await asyncio.wait_for(a.wait_lost(), 1)


async def test_a_request_that_never_answers_is_cut_off_at_the_fence(server: LeaseServer) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    client.script = [NEVER_ANSWERS]

    server.clock.time = a.fence - 0.02  # 20 ms left: the event loop's own deadline, for real
    async with asyncio.timeout(5):
        await a.try_acquire_or_renew()

    assert client.calls[-1] == ("replace", pytest.approx(0.02))
    assert not a.is_leading()
    await asyncio.wait_for(a.wait_lost(), 1)


async def test_a_leader_that_stepped_down_acquires_again_once_the_api_answers(
    server: LeaseServer,
) -> None:
    a, client = elector(server, "operator-a_1f2e")
    await a.try_acquire_or_renew()
    client.down = True
    server.clock.time = START + 11
    await a.try_acquire_or_renew()
    assert not a.is_leading()

    client.down = False
    server.clock.time = START + 13
    await a.try_acquire_or_renew()  # the Lease still names it and nobody wrote since: renewed

    assert a.is_leading()
    await asyncio.wait_for(a.wait_leading(), 1)
    assert server.lease is not None
    assert server.lease["spec"]["leaseTransitions"] == 0


# Counting renew failures


def renew_failures(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("stepline_lease_renew_failures_total")


async def test_a_renewal_the_api_server_fails_or_does_not_answer_is_counted_once_per_round(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    a, client = elector(server, "operator-a_1f2e", metrics=metrics)
    await a.try_acquire_or_renew()
    assert renew_failures(metrics) == 0
    client.script = [KubeApiError("PUT leases/stepline: 500 etcd timeout", status=500), TIMES_OUT]

    server.clock.time = START + 2
    await a.try_acquire_or_renew()
    assert renew_failures(metrics) == 1
    server.clock.time = START + 4
    await a.try_acquire_or_renew()  # takes all of its 6 s: gives up at the fence
    assert renew_failures(metrics) == 2
    assert not a.is_leading()


async def test_a_holder_that_stepped_down_counts_its_failures_until_it_renews_again(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    a, client = elector(server, "operator-a_1f2e", metrics=metrics)
    await a.try_acquire_or_renew()
    client.down = True
    for second in (2, 4, 6, 8, 10, 12):  # at 10 it steps down; the Lease still names it
        server.clock.time = START + second
        await a.try_acquire_or_renew()
    assert not a.is_leading()
    assert renew_failures(metrics) == 6

    client.down = False
    server.clock.time = START + 14
    await a.try_acquire_or_renew()
    assert a.is_leading()
    assert renew_failures(metrics) == 6


async def test_a_conflict_that_leaves_the_lease_with_another_holder_is_one_failure(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    a, _ = elector(server, "operator-a_1f2e", metrics=metrics)
    await a.try_acquire_or_renew()
    assert server.lease is not None
    server.replace({**server.lease, "spec": held_by("operator-b_9a9a", transitions=1)["spec"]})

    for second in (2, 4, 6):  # then a is a standby finding the Lease held: no failure
        server.clock.time = START + second
        await a.try_acquire_or_renew()

    assert not a.is_leading()
    assert renew_failures(metrics) == 1


async def test_a_conflict_resolved_by_renewing_again_and_a_standbys_rounds_are_no_failures(
    server: LeaseServer,
) -> None:
    metrics = Metrics()
    a = elector(server, "operator-a_1f2e", metrics=metrics)
    b = elector(server, "operator-b_9a9a", metrics=metrics)
    await asyncio.gather(a[0].try_acquire_or_renew(), b[0].try_acquire_or_renew())  # a race
    (leader, _), (standby, standby_client) = (a, b) if a[0].is_leading() else (b, a)
    server.edit(team="shop")  # the leader's version is stale; it renews on the fresh one

    server.clock.time = START + 2
    await leader.try_acquire_or_renew()
    await standby.try_acquire_or_renew()
    standby_client.down = True  # a standby that cannot read is not failing to renew
    server.clock.time = START + 4
    await standby.try_acquire_or_renew()

    assert leader.is_leading()
    assert renew_failures(metrics) == 0


# Releasing


async def test_release_clears_the_holder_so_that_a_standby_takes_over_at_once(
    server: LeaseServer,
) -> None:
    a, _ = elector(server, "operator-a_1f2e")
    b, _ = elector(server, "operator-b_9a9a")
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()

    server.clock.time = START + 1
    assert await a.release()

    assert not a.is_leading()
    await asyncio.wait_for(a.wait_lost(), 1)
    assert server.lease is not None
    assert "holderIdentity" not in server.lease["spec"]
    assert server.lease["spec"]["leaseDurationSeconds"] == 1
    server.clock.time = START + 3
    await b.try_acquire_or_renew()  # long before a lease duration
    assert b.is_leading()
    assert server.lease["spec"]["leaseTransitions"] == 1


async def test_release_leaves_alone_a_lease_written_by_someone_else_and_a_standby_writes_nothing(
    server: LeaseServer,
) -> None:
    a, a_client = elector(server, "operator-a_1f2e")
    b, b_client = elector(server, "operator-b_9a9a")
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    server.edit(team="shop")
    written = server.lease

    assert not await a.release()  # a 409: not overwritten
    assert not await b.release()

    assert server.lease == written
    assert [method for method, _ in b_client.calls] == ["get"]
    assert a_client.calls[-1][0] == "replace"

    server.clock.time = START + 30  # and a released elector does not take the Lease again
    await a.try_acquire_or_renew()
    assert server.lease == written


async def test_run_keeps_renewing_every_retry_period_until_cancelled(server: LeaseServer) -> None:
    a, client = elector(server, "operator-a_1f2e")
    task = asyncio.create_task(a.run())
    async with asyncio.timeout(5):
        while server.clock.time < START + 9:
            await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert server.clock.sleeps[:4] == [2, 2, 2, 2]
    assert [method for method, _ in client.calls][:4] == ["get", "create", "replace", "replace"]
    assert a.is_leading()
    assert await a.release()


# Two replicas


async def test_two_replicas_never_lead_at_once_through_a_partition_and_a_takeover(
    server: LeaseServer,
) -> None:
    a, a_client = elector(server, "operator-a_1f2e")
    b, _ = elector(server, "operator-b_9a9a")
    leaders = []
    for second in range(41):
        server.clock.time = START + second
        a_client.down = 6 < second < 30  # a's requests get no answer for a while
        if second == 8:
            a_client.script = [ANSWER_LOST]  # its last renewal reaches the server, unknown to it
        for replica in (a, b):
            await replica.try_acquire_or_renew()
        assert not (a.is_leading() and b.is_leading()), second
        leaders.append("a" if a.is_leading() else "b" if b.is_leading() else "-")

    # a renewed at 6 (fence 16); b saw the lost write at 8 and took over 15 s later.
    assert "".join(leaders) == "a" * 16 + "-" * 7 + "b" * 18
    assert server.holder() == "operator-b_9a9a"
    assert server.lease is not None
    assert server.lease["spec"]["leaseTransitions"] == 1


@pytest.mark.parametrize("seed", range(20))
async def test_two_replicas_never_lead_at_once_in_random_interleavings(seed: int) -> None:
    server = LeaseServer(FakeClock())
    replicas = [elector(server, "operator-a_1f2e"), elector(server, "operator-b_9a9a")]
    chance = random.Random(seed)  # noqa: S311 (reproducible interleavings)
    led = set()
    for _ in range(400):
        replica, client = chance.choice(replicas)
        move = chance.random()
        if move < 0.5:
            await replica.try_acquire_or_renew()
        elif move < 0.8:
            server.clock.time += chance.uniform(0, 4)
        elif move < 0.9:
            client.down = not client.down
        else:
            client.script.append(chance.choice([TIMES_OUT, ANSWER_LOST]))
        leading = [found.identity for found, _ in replicas if found.is_leading()]
        assert len(leading) <= 1, (seed, server.clock.time, leading)
        led.update(leading)
    assert led  # someone led at some point: the interleaving was not vacuous


# Settings and pieces


def test_the_lease_timings_default_to_client_gos_and_must_leave_room_to_renew() -> None:
    assert LeaseTimings.from_settings(Settings()) == LeaseTimings(
        duration=15, renew_deadline=10.0, retry_period=2.0
    )
    with pytest.raises(ValidationError, match="renew deadline"):
        Settings(lease_duration_seconds=10)
    with pytest.raises(ValidationError, match="retry period"):
        Settings(lease_retry_period_seconds=9)


def test_an_identity_is_the_pods_name_with_a_random_suffix() -> None:
    first, second = new_identity("operator-7c9f"), new_identity("operator-7c9f")
    assert first.startswith("operator-7c9f_")
    assert first != second
