"""The load the operator puts on each step: its calls in flight and the calls it starts. Pure.

Every attempt of a call to a step is counted, by ServiceStep (namespace, name): an attempt is in
flight from its request to its answer (waits between attempts are not load on the step). The
scaling loop (`controllers/scaling.py`) takes a `LoadSample` of each step every few seconds: the
calls in flight averaged over the time since the last sample (weighted by time, so a burst
between two samples counts for as long as it lasted) and the calls started per second. These are
the figures an autoscaler follows when a step scales on InFlight or CallsPerSecond: the operator
makes every call, so it knows them exactly, where CPU use misses a step that waits on others.

It also keeps the durations of each step's last DURATION_WINDOW successful calls, whose p99
sets the time limit of a step with an adaptive timeout (`ServiceStep.spec.adaptiveTimeout`):
1 KiB per step, the p99 re-sorted once every 16 new calls.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

StepKey = tuple[str, str]  # (namespace, ServiceStep name)
DURATION_WINDOW = 128  # successful calls a step's p99 is taken over
MIN_DURATIONS = 20  # fewer: no p99 yet
RESORT_EVERY = 16


@dataclass(slots=True)
class _Durations:
    values: array[float] = field(default_factory=lambda: array("d"))
    next: int = 0  # the slot the next duration overwrites, once the window is full
    fresh: int = 0  # durations added since the p99 was computed
    p99: float | None = None

    def add(self, seconds: float) -> None:
        if len(self.values) < DURATION_WINDOW:
            self.values.append(seconds)
        else:
            self.values[self.next] = seconds
            self.next = (self.next + 1) % DURATION_WINDOW
        self.fresh += 1

    def quantile99(self) -> float | None:
        if len(self.values) < MIN_DURATIONS:
            return None
        if self.p99 is None or self.fresh >= RESORT_EVERY:
            ordered = sorted(self.values)
            self.p99 = ordered[max(math.ceil(0.99 * len(ordered)), 1) - 1]
            self.fresh = 0
        return self.p99


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One step's load over a window: mean calls in flight, calls in flight at its end, calls
    started per second."""

    in_flight: float
    in_flight_now: int
    calls_per_second: float


@dataclass(slots=True)
class _Load:
    since: float  # when the window began
    changed: float  # when in_flight last changed
    in_flight: int = 0
    started: int = 0  # calls started in the window
    area: float = 0.0  # ∫ in_flight dt over the window up to `changed`


@dataclass
class StepLoads:
    """Counts calls per step; `sample()` reads and restarts every step's window."""

    clock: Callable[[], float] = time.monotonic
    _loads: dict[StepKey, _Load] = field(default_factory=dict)
    _durations: dict[StepKey, _Durations] = field(default_factory=dict)

    def record_duration(self, key: StepKey, seconds: float) -> None:
        """One successful call to the step took `seconds`."""
        found = self._durations.get(key)
        if found is None:
            found = self._durations[key] = _Durations()
        found.add(seconds)

    def p99(self, key: StepKey) -> float | None:
        """The p99 of the step's last successful calls; None before MIN_DURATIONS of them."""
        found = self._durations.get(key)
        return found.quantile99() if found is not None else None

    def forget(self, key: StepKey) -> None:
        """The step is gone: its durations with it."""
        self._durations.pop(key, None)

    @contextmanager
    def call(self, key: StepKey) -> Iterator[None]:
        """Counts one attempt to the step `key` while it lasts."""
        load = self._touch(key)
        load.started += 1
        load.in_flight += 1
        try:
            yield
        finally:
            load = self._touch(key)
            load.in_flight -= 1

    def in_flight(self, key: StepKey) -> int:
        load = self._loads.get(key)
        return load.in_flight if load else 0

    def sample(self) -> dict[StepKey, LoadSample]:
        """Every step's load since the last sample; steps idle for a whole window are dropped
        (an absent step's load is zero)."""
        now = self.clock()
        found: dict[StepKey, LoadSample] = {}
        for key, load in list(self._loads.items()):
            span = now - load.since
            area = load.area + load.in_flight * (now - load.changed)
            if span > 0:
                found[key] = LoadSample(
                    in_flight=area / span,
                    in_flight_now=load.in_flight,
                    calls_per_second=load.started / span,
                )
            if load.in_flight == 0 and load.started == 0:
                del self._loads[key]
            else:
                load.since = load.changed = now
                load.area, load.started = 0.0, 0
        return found

    def _touch(self, key: StepKey) -> _Load:
        now = self.clock()
        load = self._loads.get(key)
        if load is None:
            load = self._loads[key] = _Load(since=now, changed=now)
        else:
            load.area += load.in_flight * (now - load.changed)
            load.changed = now
        return load
