"""StepLoads: the calls in flight to each step, averaged over time, and the calls started."""

from __future__ import annotations

import pytest

from stepline.engine.loads import StepLoads

KEY = ("shop", "validate")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_in_flight_is_averaged_over_the_time_each_call_lasted() -> None:
    clock = FakeClock()
    loads = StepLoads(clock=clock)
    loads.sample()
    with loads.call(KEY):
        clock.now += 2.0  # one call for 2 s
        with loads.call(KEY):
            assert loads.in_flight(KEY) == 2
            clock.now += 1.0  # two calls for 1 s
        clock.now += 1.0  # one call for 1 s
    clock.now += 1.0  # none for 1 s
    sample = loads.sample()[KEY]
    assert sample.in_flight == pytest.approx((2 * 1 + 1 * 2 + 1 * 1) / 5)
    assert sample.calls_per_second == pytest.approx(2 / 5)
    assert sample.in_flight_now == 0


def test_a_call_still_in_flight_counts_in_every_window_it_spans() -> None:
    clock = FakeClock()
    loads = StepLoads(clock=clock)
    with loads.call(KEY):
        clock.now += 4.0
        first = loads.sample()[KEY]
        clock.now += 5.0
        second = loads.sample()[KEY]
    assert first.in_flight == pytest.approx(1.0)
    assert first.calls_per_second == pytest.approx(0.25)
    assert second.in_flight == pytest.approx(1.0)
    assert second.calls_per_second == 0  # started in the first window, not this one
    assert second.in_flight_now == 1


def test_a_step_idle_for_a_whole_window_is_dropped_and_reads_as_no_load() -> None:
    clock = FakeClock()
    loads = StepLoads(clock=clock)
    with loads.call(KEY):
        clock.now += 1.0
    clock.now += 1.0
    assert loads.sample()[KEY].calls_per_second == pytest.approx(0.5)
    clock.now += 5.0
    idle = loads.sample()[KEY]  # the idle window itself reads zero
    assert (idle.in_flight, idle.calls_per_second) == (0.0, 0.0)
    clock.now += 5.0
    assert loads.sample() == {}  # then the step is forgotten: absent means no load
    assert loads.in_flight(KEY) == 0


def test_a_failed_call_leaves_flight_too() -> None:
    loads = StepLoads(clock=FakeClock())
    with pytest.raises(RuntimeError), loads.call(KEY):
        raise RuntimeError("connection refused")
    assert loads.in_flight(KEY) == 0


def test_the_p99_of_a_steps_last_successful_calls_needs_twenty_of_them() -> None:
    loads = StepLoads(clock=FakeClock())
    for _ in range(19):
        loads.record_duration(KEY, 0.1)
    assert loads.p99(KEY) is None
    loads.record_duration(KEY, 0.9)
    assert loads.p99(KEY) == pytest.approx(0.9)  # 20 calls: the slowest is the p99


def test_the_p99_follows_the_last_calls_only() -> None:
    loads = StepLoads(clock=FakeClock())
    for _ in range(200):
        loads.record_duration(KEY, 2.0)
    for _ in range(128):  # the window: the slow ones have all left it
        loads.record_duration(KEY, 0.05)
    assert loads.p99(KEY) == pytest.approx(0.05)
    loads.forget(KEY)
    assert loads.p99(KEY) is None
