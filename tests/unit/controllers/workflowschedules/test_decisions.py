"""What a schedule does at an instant: the missed-time rule, the starting deadline and the
concurrency policy, decided on instants the test chooses (no clock, no waiting)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stepline.api import ConcurrencyPolicy, SkipReason
from stepline.controllers.workflowschedules.decisions import Action, ScheduleState, decide
from stepline.controllers.workflowschedules.timing import parse_schedule

CREATED = datetime(2026, 5, 1, 11, 58, 30, tzinfo=UTC)
EVERY_MINUTE = parse_schedule("* * * * *", "Etc/UTC")
HOURLY = parse_schedule("0 * * * *", "Etc/UTC")
STATE = ScheduleState(
    created=CREATED,
    last_schedule_time=None,
    last_skip_time=None,
    suspend=False,
    starting_deadline_seconds=None,
    concurrency_policy=ConcurrencyPolicy.ALLOW,
    active_runs=(),
    workflow_exists=True,
)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 5, 1, hour, minute, second, tzinfo=UTC)


def test_a_new_schedule_waits_for_its_first_time() -> None:
    decision = decide(EVERY_MINUTE, STATE, now=at(11, 58, 40))
    assert decision.action is Action.WAIT
    assert decision.next_time == at(11, 59)


def test_its_time_come_it_starts_a_run_for_that_time_and_looks_again_at_the_next() -> None:
    decision = decide(EVERY_MINUTE, STATE, now=at(11, 59, 0))
    assert (decision.action, decision.time, decision.next_time) == (
        Action.START, at(11, 59), at(12, 0),
    )  # fmt: skip


def test_a_timer_that_rings_a_little_late_still_starts_the_time_it_was_set_for() -> None:
    decision = decide(EVERY_MINUTE, STATE, now=at(11, 59, 0) + timedelta(milliseconds=30))
    assert (decision.action, decision.time) == (Action.START, at(11, 59))


def test_a_time_already_started_is_not_started_again() -> None:
    state = replace(STATE, last_schedule_time=at(11, 59))
    decision = decide(EVERY_MINUTE, state, now=at(11, 59, 20))
    assert decision.action is Action.WAIT
    assert decision.next_time == at(12, 0)


def test_a_time_skipped_is_dealt_with_too() -> None:
    state = replace(STATE, last_skip_time=at(11, 59))
    assert decide(EVERY_MINUTE, state, now=at(11, 59, 20)).action is Action.WAIT


def test_after_a_stop_across_many_times_only_the_latest_is_started() -> None:
    # Last run at 11:59; the operator comes back at 14:30:10: 150 times were missed.
    state = replace(STATE, last_schedule_time=at(11, 59))
    decision = decide(EVERY_MINUTE, state, now=at(14, 30, 10))
    assert (decision.action, decision.time, decision.next_time) == (
        Action.START, at(14, 30), at(14, 31),
    )  # fmt: skip


def test_a_time_missed_by_more_than_the_starting_deadline_is_skipped_as_missed() -> None:
    state = replace(STATE, last_schedule_time=at(11, 0), starting_deadline_seconds=300)
    decision = decide(HOURLY, state, now=at(13, 5, 1))  # 13:00 is 301 s ago
    assert (decision.action, decision.time, decision.skip_reason) == (
        Action.SKIP, at(13, 0), SkipReason.DEADLINE_EXCEEDED,
    )  # fmt: skip
    assert decision.next_time == at(14, 0)


def test_a_time_missed_by_no_more_than_the_starting_deadline_still_starts() -> None:
    state = replace(STATE, last_schedule_time=at(11, 0), starting_deadline_seconds=300)
    decision = decide(HOURLY, state, now=at(13, 5, 0))  # exactly 300 s
    assert (decision.action, decision.time) == (Action.START, at(13, 0))


def test_a_starting_deadline_of_zero_allows_only_a_punctual_start() -> None:
    state = replace(STATE, starting_deadline_seconds=0)
    assert decide(EVERY_MINUTE, state, now=at(11, 59, 0)).action is Action.START
    late = decide(EVERY_MINUTE, state, now=at(11, 59, 0) + timedelta(milliseconds=1))
    assert late.skip_reason is SkipReason.DEADLINE_EXCEEDED


def test_times_before_the_schedule_was_created_are_never_run() -> None:
    created_mid_minute = replace(STATE, created=at(12, 0, 30))
    assert decide(EVERY_MINUTE, created_mid_minute, now=at(12, 0, 40)).action is Action.WAIT


def test_a_suspended_schedule_starts_nothing_and_sets_no_timer() -> None:
    decision = decide(EVERY_MINUTE, replace(STATE, suspend=True), now=at(12, 30))
    assert (decision.action, decision.next_time) == (Action.WAIT, None)


def test_a_schedule_resumed_after_a_suspension_runs_the_latest_time_missed_meanwhile() -> None:
    resumed = replace(STATE, last_schedule_time=at(12, 0), starting_deadline_seconds=120)
    assert decide(EVERY_MINUTE, resumed, now=at(12, 30, 5)).time == at(12, 30)
    assert decide(HOURLY, resumed, now=at(12, 30, 5)).action is Action.WAIT  # 12:00 was run


@pytest.mark.parametrize(
    ("policy", "action", "reason"),
    [
        (ConcurrencyPolicy.ALLOW, Action.START, None),
        (ConcurrencyPolicy.FORBID, Action.SKIP, SkipReason.FORBID),
        (ConcurrencyPolicy.REPLACE, Action.REPLACE, None),
    ],
)
def test_with_a_run_still_active_the_concurrency_policy_decides(
    policy: ConcurrencyPolicy, action: Action, reason: SkipReason | None
) -> None:
    state = replace(STATE, concurrency_policy=policy, active_runs=("nightly-29630219",))
    decision = decide(EVERY_MINUTE, state, now=at(11, 59, 1))
    assert (decision.action, decision.time, decision.skip_reason) == (action, at(11, 59), reason)


@pytest.mark.parametrize("policy", list(ConcurrencyPolicy))
def test_with_no_run_active_every_policy_starts(policy: ConcurrencyPolicy) -> None:
    decision = decide(EVERY_MINUTE, replace(STATE, concurrency_policy=policy), now=at(11, 59, 1))
    assert decision.action is Action.START


def test_a_missing_workflow_skips_the_time_rather_than_pile_up_waiting_runs() -> None:
    decision = decide(EVERY_MINUTE, replace(STATE, workflow_exists=False), now=at(11, 59, 1))
    assert (decision.action, decision.skip_reason) == (Action.SKIP, SkipReason.WORKFLOW_NOT_FOUND)


def test_the_deadline_is_judged_before_the_concurrency_policy() -> None:
    state = replace(
        STATE, concurrency_policy=ConcurrencyPolicy.FORBID, active_runs=("r",),
        starting_deadline_seconds=10, last_schedule_time=at(11, 0),
    )  # fmt: skip
    assert decide(HOURLY, state, now=at(12, 1)).skip_reason is SkipReason.DEADLINE_EXCEEDED
