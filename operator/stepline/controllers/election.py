"""Leader election among the operator's replicas on a coordination.k8s.io/v1 Lease, with a fence:
which replica may write, and until when.

The algorithm and its defaults are client-go's (tools/leaderelection: `tryAcquireOrRenew`,
`renew`, `release`; a 15 s lease, a 10 s renew deadline, a 2 s retry period), so the Lease reads
in `kubectl get lease` like any controller's:

- A standby reads the Lease every retry period, jittered. It takes the Lease over only when the
  version it saw (resourceVersion and spec) has not changed for the lease's duration, counted on
  its own monotonic clock from when it first saw that version. It never compares the holder's
  `renewTime` with its own wall clock, so skewed clocks cannot make it take a live lease. Taking
  over names it the holder, sets `acquireTime` and `renewTime` to now (MicroTime, UTC) and adds
  one to `leaseTransitions`. An absent Lease is created, with 0 transitions.
- The leader renews every retry period by replacing the Lease it last wrote. Every write carries
  the resourceVersion it was read at, so of two replicas writing one version only one wins. A
  409 means someone else wrote: the leader reads the Lease again and renews it only if it still
  names this replica; it never overwrites another holder, and steps down at once if there is one.

The fence is what client-go leaves out (its doc.go says it gives no fencing guarantee). The
leader may write only while `monotonic() < fence`, where the fence is the time it *sent* its
last successful write of the Lease plus the renew deadline. A standby starts counting only once
it has seen that write, which was after it was sent, so it cannot take over before the send time
plus the lease duration: the old leader's fence comes at least (duration - renew deadline)
earlier, a margin for clock-rate drift and scheduling delays. Every request is bounded by the
time left before the fence (the leader's, or for a standby the renew deadline, past which a
write would win nothing), so a hung request cannot carry a leader past it. The loop therefore
wakes at the fence at the latest: a leader that has not renewed by then steps down there
(`is_leading()` is false from the fence on, `wait_lost()` returns, `stepline_leader` drops to 0)
and goes back to trying to acquire. Checking the fence before each write is the writers' part.

A round in which the holder (the leader, or a replica the Lease named when it last saw it) does
not write the Lease is a renew failure (`stepline_lease_renew_failures_total`): an error or no
answer from the API server, or a conflict that leaves the Lease with another holder. A standby
losing a race for a free Lease, or finding it held, has failed at nothing.

`release()`, at shutdown, hands the Lease over at once: it clears the holder (a lease of 1 s) so
that a standby takes it on its next read instead of after a lease duration.

The Lease is the only thing it reads or writes, through `LeaseApi` (`KubeApi` is one); time and
jitter are given, so that tests drive it without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stepline.engine import SYSTEM_CLOCK, Clock
from stepline.errors import KubeApiError, KubeConflictError
from stepline.observability import Metrics
from stepline.settings import JITTER_FACTOR, Settings

logger = logging.getLogger(__name__)

LEASE_API_VERSION = "coordination.k8s.io/v1"
# client-go's release: a lease of one second, so that nobody waits on a holder that is gone.
RELEASED_LEASE_SECONDS = 1


class LeaseApi(Protocol):
    """The requests the elector makes; each gives up after `timeout` seconds, raising
    `KubeApiError` (status 0) as for no answer. `KubeApi` is one."""

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, timeout: float | None
    ) -> dict[str, Any] | None: ...

    async def create(
        self, manifest: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]: ...

    async def replace(
        self, manifest: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaseTimings:
    """Seconds; client-go's defaults. The settings check `duration > renew_deadline > 1.2 x
    retry_period`."""

    duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseTimings:
        return cls(
            duration=settings.lease_duration_seconds,
            renew_deadline=settings.lease_renew_deadline_seconds,
            retry_period=settings.lease_retry_period_seconds,
        )


DEFAULT_TIMINGS = LeaseTimings()


def new_identity(name: str | None = None) -> str:
    """A holder identity: the pod's name (its hostname) and a random suffix, as client-go's
    users make it, so that a restarted pod of the same name is a new holder."""
    return f"{name or socket.gethostname()}_{secrets.token_hex(4)}"


def micro_time(when: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_lease_spec(
    *, holder: str | None, duration: int, acquired: str, renewed: str, transitions: int
) -> dict[str, Any]:
    """A Lease's spec as client-go writes it; no holder (a released Lease) leaves it out."""
    spec: dict[str, Any] = {
        "leaseDurationSeconds": duration,
        "acquireTime": acquired,
        "renewTime": renewed,
        "leaseTransitions": transitions,
    }
    if holder:
        spec["holderIdentity"] = holder
    return spec


class LeaseElector:
    """Acquires and renews the Lease `namespace/name` as `identity`: `run()` is the task that
    does it, `is_leading()` and `fence` say whether and until when this replica may write."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        metrics: Metrics,
        timings: LeaseTimings = DEFAULT_TIMINGS,
        clock: Clock = SYSTEM_CLOCK,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.identity = identity
        self._api, self._namespace, self._name = api, namespace, name
        self._metrics, self._timings, self._clock, self._jitter = metrics, timings, clock, jitter
        self._fence = -math.inf
        self._lease: dict[str, Any] | None = None  # as this replica last read or wrote it
        self._observed: tuple[object, object] | None = None  # (resourceVersion, spec)
        self._observed_at = -math.inf
        self._leading, self._lost = asyncio.Event(), asyncio.Event()
        self._lost.set()
        self._released = False

    @property
    def fence(self) -> float:
        """The monotonic time until which this replica may write (-inf while it stands by)."""
        return self._fence

    def is_leading(self) -> bool:
        """This replica leads and may write now: true only before the fence."""
        return self._clock.monotonic() < self._fence

    async def wait_leading(self) -> None:
        """Returns once this replica leads (at once if it does)."""
        await self._leading.wait()

    async def wait_lost(self) -> None:
        """Returns once this replica stands by (at once if it does): after it stepped down, at
        its fence at the latest."""
        await self._lost.wait()

    async def run(self) -> None:
        """Acquires the Lease, then renews it, until cancelled or released."""
        while not self._released:
            await self._clock.sleep(await self.try_acquire_or_renew())

    async def try_acquire_or_renew(self) -> float:
        """One round of the election: the leader renews, a standby tries to acquire. Returns
        the seconds to wait before the next: a retry period, for a standby jittered, for a
        leader cut short so that the next round comes at its fence at the latest. Once
        released, it writes nothing."""
        self._step_down_past_fence()
        if not self._released:
            holding = self._holds()
            written = await (self._renew() if self._leading.is_set() else self._try_acquire())
            if holding and not written:
                self._metrics.record_lease_renew_failure()
        self._step_down_past_fence()
        period = self._timings.retry_period
        if self._leading.is_set():
            return min(period, self._fence - self._clock.monotonic())
        return period * (1 + JITTER_FACTOR * self._jitter())

    async def release(self) -> bool:
        """Steps down and, if this replica led, clears the Lease's holder so that a standby
        takes it over on its next read. Call it at shutdown, after cancelling `run()`. Guarded
        by the resourceVersion: a Lease written meanwhile by someone else is left alone.
        Returns whether the Lease was released."""
        self._released = True
        lease, time_left = self._lease, self._fence - self._clock.monotonic()
        self._step_down("released at shutdown", level=logging.INFO)
        if lease is None or time_left <= 0:
            return False
        now = micro_time(self._clock.now())
        spec = build_lease_spec(
            holder=None, duration=RELEASED_LEASE_SECONDS, acquired=now, renewed=now,
            transitions=_transitions(lease),
        )  # fmt: skip
        try:
            async with self._deadline(time_left):
                await self._api.replace({**lease, "spec": spec}, timeout=time_left)
        except KubeApiError as exc:
            logger.warning("could not release the Lease %s: %s", self._where(), exc)
            return False
        logger.info("released the Lease %s", self._where())
        return True

    async def _renew(self) -> bool:
        """client-go's fast path: replace the Lease as last written; only when it moved on (a
        409) or vanished (a 404) read it again, as a standby would. Returns whether this
        replica wrote it and leads on."""
        lease = self._lease
        if lease is None:
            return await self._try_acquire()
        try:
            return await self._write(
                self._api.replace, self._spec_for(lease, taking_over=False), lease
            )
        except KubeApiError as exc:
            if exc.status not in (404, 409):
                logger.warning("could not renew the Lease %s: %s", self._where(), exc)
                return False
            return await self._try_acquire()

    async def _try_acquire(self) -> bool:
        """Reads the Lease and writes it if it is free, expired on this replica's clock, or
        names this replica already; creates it if it is absent. Returns whether this replica
        wrote it and leads."""
        try:
            timeout = self._time_for_a_request()
            async with self._deadline(timeout):
                lease = await self._api.get(
                    LEASE_API_VERSION, "Lease", self._namespace, self._name, timeout=timeout
                )
            if lease is None:
                spec = self._spec_for(None, taking_over=True)
                return await self._write(self._api.create, spec, None)
            self._observe(lease)
            holder = _spec(lease).get("holderIdentity") or ""
            if holder and holder != self.identity and not self._expired(lease):
                self._step_down(f"the Lease is held by {holder}")
                return False
            spec = self._spec_for(lease, taking_over=holder != self.identity)
            return await self._write(self._api.replace, spec, lease)
        except KubeConflictError:
            logger.debug("another replica wrote the Lease %s first", self._where())
        except KubeApiError as exc:
            log = logger.warning if self._leading.is_set() else logger.info
            log("could not acquire or renew the Lease %s: %s", self._where(), exc)
        return False

    async def _write(
        self,
        request: Callable[..., Awaitable[dict[str, Any]]],
        spec: dict[str, Any],
        lease: Mapping[str, Any] | None,
    ) -> bool:
        """Creates (no `lease`) or replaces the Lease with `spec` (`request` is the API's
        `create` or `replace`); on success this replica leads until the send time plus the
        renew deadline. Returns whether it does."""
        manifest = {**lease, "spec": spec} if lease is not None else self._new_lease(spec)
        timeout = self._time_for_a_request()
        sent = self._clock.monotonic()
        async with self._deadline(timeout):
            written = await request(manifest, timeout=timeout)
        self._lease = written
        self._observe(written)
        return self._won(fence=sent + self._timings.renew_deadline)

    def _spec_for(self, lease: Mapping[str, Any] | None, *, taking_over: bool) -> dict[str, Any]:
        """The spec that names this replica the holder: on a takeover from now on, else (a
        renewal) keeping when it was acquired and how often it changed hands."""
        now = micro_time(self._clock.now())
        old = _spec(lease) if lease is not None else {}
        return build_lease_spec(
            holder=self.identity,
            duration=self._timings.duration,
            acquired=now if taking_over else str(old.get("acquireTime") or now),
            renewed=now,
            transitions=_transitions(lease) + (1 if taking_over and lease is not None else 0),
        )

    def _new_lease(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": spec,
        }

    def _observe(self, lease: Mapping[str, Any]) -> None:
        """Notes when this version of the Lease was first seen, on this replica's clock."""
        version = (lease.get("metadata", {}).get("resourceVersion"), lease.get("spec"))
        if version != self._observed:
            self._observed, self._observed_at = version, self._clock.monotonic()

    def _holds(self) -> bool:
        """It leads, or the Lease as it last saw it names it: its write would be a renewal."""
        if self._leading.is_set():
            return True
        spec = self._observed[1] if self._observed is not None else None
        return isinstance(spec, Mapping) and spec.get("holderIdentity") == self.identity

    def _expired(self, lease: Mapping[str, Any]) -> bool:
        """Unchanged for its duration since this replica first saw it."""
        duration = _spec(lease).get("leaseDurationSeconds")
        seconds = duration if isinstance(duration, int | float) else 0
        return self._clock.monotonic() >= self._observed_at + seconds

    def _time_for_a_request(self) -> float:
        """The leader's time left before its fence; a standby's renew deadline, as a write
        sent later than that would grant a fence already past."""
        if self._leading.is_set():
            return max(self._fence - self._clock.monotonic(), 0.0)
        return self._timings.renew_deadline

    @contextlib.asynccontextmanager
    async def _deadline(self, timeout: float) -> AsyncIterator[None]:
        """Gives the request in the block up after `timeout` seconds. The API seam is told the
        timeout too; the event loop enforces it here, so that no request outlives it whatever
        the seam does. With no time left, nothing is sent."""
        if timeout <= 0:
            raise KubeApiError(f"Lease {self._where()}: no time left to send", status=0)
        try:
            async with asyncio.timeout(timeout):
                yield
        except TimeoutError as exc:
            raise KubeApiError(
                f"Lease {self._where()}: no answer within {timeout:.1f} s", status=0
            ) from exc

    def _won(self, *, fence: float) -> bool:
        if self._released or fence <= self._clock.monotonic():
            return False  # released meanwhile, or sent too long ago to grant any time
        self._fence = fence
        if not self._leading.is_set():
            self._leading.set()
            self._lost.clear()
            self._metrics.set_leader(leading=True)
            logger.info("became the leader (Lease %s, as %s)", self._where(), self.identity)
        return True

    def _step_down_past_fence(self) -> None:
        if self._leading.is_set() and not self.is_leading():
            self._step_down("the Lease was not renewed within the renew deadline")

    def _step_down(self, why: str, *, level: int = logging.WARNING) -> None:
        self._fence = -math.inf
        if self._leading.is_set():
            self._leading.clear()
            self._lost.set()
            self._metrics.set_leader(leading=False)
            logger.log(level, "stopped leading (Lease %s): %s", self._where(), why)

    def _where(self) -> str:
        return f"{self._namespace}/{self._name}"


def _spec(lease: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = lease.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _transitions(lease: Mapping[str, Any] | None) -> int:
    transitions = _spec(lease).get("leaseTransitions") if lease is not None else None
    return transitions if isinstance(transitions, int) else 0
