"""Cron times behind `timing`: CronJob's syntax and rules (robfig/cron v3) on croniter, in a time
zone, with daylight saving time handled as cron does. Pure: fixed instants, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stepline.api import Reason
from stepline.controllers.workflowschedules.timing import (
    CronSchedule,
    ScheduleError,
    latest_time,
    next_time,
    parse_schedule,
    run_minutes,
)

NEW_YORK = "America/New_York"
# 2026 in New York: clocks go forward at 02:00 on 8 March (02:00-02:59 never happens) and back
# at 02:00 on 1 November (01:00-01:59 happens twice, at UTC-4 and then UTC-5).
SPRING_FORWARD_EVE = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
FALL_BACK_EVE = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on 31 October


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def times(schedule: CronSchedule, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        moment = next_time(schedule, after)
        assert moment is not None
        found.append(moment)
        after = moment
    return found


@pytest.mark.parametrize(
    ("macro", "first", "second"),
    [
        ("@hourly", utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)),
        ("@daily", utc(2026, 1, 2), utc(2026, 1, 3)),
        ("@midnight", utc(2026, 1, 2), utc(2026, 1, 3)),
        ("@weekly", utc(2026, 1, 4), utc(2026, 1, 11)),  # Sundays
        ("@monthly", utc(2026, 2, 1), utc(2026, 3, 1)),
        ("@yearly", utc(2027, 1, 1), utc(2028, 1, 1)),
        ("@annually", utc(2027, 1, 1), utc(2028, 1, 1)),
    ],
)
def test_each_of_cronjobs_macros_means_its_five_fields(
    macro: str, first: datetime, second: datetime
) -> None:
    schedule = parse_schedule(macro, "Etc/UTC")
    assert times(schedule, utc(2026, 1, 1, 0, 30), 2) == [first, second]


def test_a_question_mark_in_a_day_field_means_any_day() -> None:
    schedule = parse_schedule("0 9 ? * ?", "Etc/UTC")
    assert times(schedule, utc(2026, 1, 1, 10), 2) == [utc(2026, 1, 2, 9), utc(2026, 1, 3, 9)]


def test_a_day_of_month_and_a_weekday_both_restricted_mean_either() -> None:
    # The 13th of each month, and every Friday: 2026-02-06 and -13 are Fridays, the 13th too.
    schedule = parse_schedule("0 0 13 * FRI", "Etc/UTC")
    assert times(schedule, utc(2026, 2, 1), 4) == [
        utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20), utc(2026, 2, 27),
    ]  # fmt: skip
    january = times(schedule, utc(2026, 1, 10), 2)
    assert january == [utc(2026, 1, 13), utc(2026, 1, 16)]  # a Tuesday, then a Friday


def test_a_step_in_the_day_of_month_counts_as_restricted_as_robfig_cron_has_it() -> None:
    # Odd days or Mondays; 2026-01-01 is a Thursday, the 5th a Monday, the 3rd odd.
    schedule = parse_schedule("0 0 */2 * 1", "Etc/UTC")
    assert times(schedule, utc(2026, 1, 1, 1), 3) == [
        utc(2026, 1, 3), utc(2026, 1, 5), utc(2026, 1, 7),
    ]  # fmt: skip


def test_a_star_in_the_day_of_month_leaves_the_weekday_to_decide() -> None:
    schedule = parse_schedule("0 0 * * MON", "Etc/UTC")
    assert times(schedule, utc(2026, 1, 1), 2) == [utc(2026, 1, 5), utc(2026, 1, 12)]


def test_names_of_months_and_weekdays_are_read_in_any_case_and_7_is_sunday() -> None:
    assert times(parse_schedule("0 0 1 jan,Jul *", "Etc/UTC"), utc(2026, 1, 2), 2) == [
        utc(2026, 7, 1), utc(2027, 1, 1),
    ]  # fmt: skip
    assert times(parse_schedule("0 0 * * 7", "Etc/UTC"), utc(2026, 1, 1), 1) == [utc(2026, 1, 4)]


def test_a_schedule_is_read_in_its_time_zone() -> None:
    schedule = parse_schedule("0 9 * * *", "Europe/Vienna")
    # 09:00 in Vienna is 08:00 UTC in winter and 07:00 UTC in summer.
    assert times(schedule, utc(2026, 1, 1), 1) == [utc(2026, 1, 1, 8)]
    assert times(schedule, utc(2026, 7, 1), 1) == [utc(2026, 7, 1, 7)]


def test_a_time_in_the_skipped_hour_runs_at_the_first_minute_after_it() -> None:
    daily = parse_schedule("30 2 * * *", NEW_YORK)
    first, second = times(daily, SPRING_FORWARD_EVE, 2)
    assert first == utc(2026, 3, 8, 7)  # 03:00 EDT: the first minute after the gap
    assert second == utc(2026, 3, 9, 6, 30)  # 02:30 EDT the next day
    assert latest_time(daily, utc(2026, 3, 8, 12)) == first


def test_several_times_in_the_skipped_hour_run_once_after_it() -> None:
    every_20 = parse_schedule("*/20 * * * *", NEW_YORK)
    found = times(every_20, utc(2026, 3, 8, 6, 30), 3)  # from 01:30 EST
    assert found == [utc(2026, 3, 8, 6, 40), utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 20)]


def test_a_fixed_time_schedule_runs_once_in_the_repeated_hour() -> None:
    daily = parse_schedule("30 1 * * *", NEW_YORK)
    assert daily.fixed_time
    # croniter alone gives 01:30 EDT (05:30 UTC) and 01:30 EST (06:30 UTC): the second is dropped.
    assert times(daily, FALL_BACK_EVE, 2) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert latest_time(daily, utc(2026, 11, 1, 7)) == utc(2026, 11, 1, 5, 30)


def test_a_list_of_fixed_times_runs_each_once_in_the_repeated_hour() -> None:
    twice = parse_schedule("0,30 1 * * *", NEW_YORK)
    assert times(twice, FALL_BACK_EVE, 3) == [
        utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6),
    ]  # fmt: skip


def test_a_wildcard_schedule_keeps_its_pace_through_the_repeated_hour() -> None:
    half_hourly = parse_schedule("*/30 * * * *", NEW_YORK)
    assert not half_hourly.fixed_time
    found = times(half_hourly, utc(2026, 11, 1, 4, 45), 5)  # from 00:45 EDT
    assert found == [utc(2026, 11, 1, 5) + timedelta(minutes=30 * n) for n in range(5)]
    hourly = parse_schedule("@hourly", NEW_YORK)
    assert times(hourly, utc(2026, 11, 1, 4, 30), 3) == [
        utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7),
    ]  # fmt: skip


def test_the_latest_time_is_at_or_before_the_instant_and_found_in_one_step() -> None:
    minutely = parse_schedule("* * * * *", "Etc/UTC")
    assert latest_time(minutely, utc(2026, 5, 1, 12, 0, 0)) == utc(2026, 5, 1, 12, 0)
    assert latest_time(minutely, utc(2026, 5, 1, 12, 0, 59)) == utc(2026, 5, 1, 12, 0)
    yearly = parse_schedule("@yearly", "Etc/UTC")
    assert latest_time(yearly, utc(2026, 5, 1)) == utc(2026, 1, 1)


def test_the_next_time_is_strictly_after_the_instant() -> None:
    minutely = parse_schedule("* * * * *", "Etc/UTC")
    assert next_time(minutely, utc(2026, 5, 1, 12, 0)) == utc(2026, 5, 1, 12, 1)
    assert next_time(minutely, utc(2026, 5, 1, 12, 0, 30)) == utc(2026, 5, 1, 12, 1)


def test_a_leap_day_schedule_waits_for_a_leap_year() -> None:
    leap = parse_schedule("0 0 29 2 *", "Etc/UTC")
    assert next_time(leap, utc(2026, 3, 1)) == utc(2028, 2, 29)


def test_a_run_is_named_by_its_scheduled_time_in_unix_minutes() -> None:
    assert run_minutes(utc(2026, 1, 1)) == 1767225600 // 60
    assert run_minutes(utc(2026, 1, 1, 0, 0, 59)) == run_minutes(utc(2026, 1, 1))


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("5-3 * * * *", "the range 5-3 of the minute field runs backward"),
        ("0 22-2 * * *", "the range 22-2 of the hour field runs backward"),
        ("0 0 * * FRI-MON", "write 5-7,0-1"),
        ("0 0 * DEC-JAN *", "the range DEC-JAN of the month field"),
        ("0 0 30 2 *", "no month it names has day 30"),
        ("0 0 31 4,6,9,11 *", "no month it names has day 31"),
        ("0 0 * * * *", "has 6 fields"),
        ("L * * * *", "not a schedule"),
    ],
)
def test_what_croniter_would_accept_but_cronjob_refuses_is_refused_naming_the_field(
    schedule: str, says: str
) -> None:
    with pytest.raises(ScheduleError) as refused:
        parse_schedule(schedule, "Etc/UTC")
    assert refused.value.field == "spec.schedule"
    assert refused.value.reason is Reason.INVALID_SCHEDULE
    assert str(refused.value).startswith("spec.schedule: ")
    assert says in str(refused.value)


def test_a_day_that_comes_on_a_weekday_instead_is_not_refused() -> None:
    # Both restricted: every Friday of February, though February has no 30th.
    schedule = parse_schedule("0 0 30 2 FRI", "Etc/UTC")
    assert next_time(schedule, utc(2026, 1, 1)) == utc(2026, 2, 6)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Atlantis", "../etc/passwd"])
def test_an_unknown_time_zone_is_refused_naming_the_field(zone: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        parse_schedule("@daily", zone)
    assert refused.value.field == "spec.timeZone"
    assert refused.value.reason is Reason.INVALID_TIME_ZONE
    assert "Europe/Vienna" in str(refused.value)
