"""Cron times of a WorkflowSchedule: croniter behind three functions. Pure: no I/O, no clock.

`parse_schedule` reads a schedule in its time zone and refuses what admission cannot see (CEL
has no arithmetic over a field, and no zone database): an unknown zone, a backward range such as
`5-3` (robfig/cron, CronJob's parser, refuses it; croniter would wrap it round), and a day of
month that no month of the schedule has (`0 0 30 2 *`). `next_time` and `latest_time` give the
schedule's times after, and at or before, an instant; both answer in UTC.

Rules, as CronJob's (robfig/cron v3) where they differ from croniter's defaults or a naive reading:

- A day of month and a weekday both restricted mean either (`0 0 13 * 5`: every 13th and every
  Friday); a step (`*/2`) counts as restricted. croniter's `day_or` does the same.
- Daylight saving time: a time in the skipped hour runs at the first minute after it (croniter
  gives that instant). In the repeated hour, a *fixed-time* schedule (no `*` in its minute or
  hour field, as Vixie cron calls it) runs once: the second occurrence of a wall-clock time it
  already ran at is skipped, where croniter alone would run `30 1 * * *` twice. A wildcard
  schedule (`*/15 * * * *`, `@hourly`) keeps its pace through both passes of the hour.

croniter sits behind this module alone (docs/proposals/workflow-semantics.md, section 6): a
swap for another library touches nothing else. Its errors become `ScheduleError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from stepline.api import Reason
from stepline.api.schedules import (
    CRON_RANGES,
    MACROS,
    MONTH_NAMES,
    WEEKDAY_NAMES,
    CronField,
)

# The most days each month can have (February in a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NAMES = {
    CronField.MONTH: {name: number for number, name in enumerate(MONTH_NAMES, start=1)},
    CronField.WEEKDAY: {name: number for number, name in enumerate(WEEKDAY_NAMES)},
}
_RANGE = re.compile(r"^([0-9A-Za-z]+)-([0-9A-Za-z]+)$")


class ScheduleError(ValueError):
    """A schedule the operator cannot run: `field` names it (spec.schedule, spec.timeZone),
    `reason` is the Ready condition's (InvalidSchedule, InvalidTimeZone)."""

    def __init__(self, message: str, *, field: str, reason: Reason) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: its five fields (a macro spelt out), its zone, and whether it is
    fixed-time (no `*` in minute or hour: once in a repeated hour)."""

    fields: str
    zone: ZoneInfo
    fixed_time: bool


def parse_schedule(schedule: str, time_zone: str) -> CronSchedule:
    """The schedule read in `time_zone`; `ScheduleError` naming the field when it cannot run."""
    zone = _parse_zone(time_zone)
    text = schedule.strip()
    fields = MACROS.get(text, text)
    parts = fields.split()
    if len(parts) != len(CronField):
        raise ScheduleError(
            f"{schedule!r} has {len(parts)} fields; a schedule has five (minute hour day "
            "month weekday) or is a macro such as @daily",
            field="spec.schedule",
            reason=Reason.INVALID_SCHEDULE,
        )
    for field, part in zip(CronField, parts, strict=True):
        _check_ranges(field, part)
    try:
        expanded = croniter.expand(fields)[0]
    except CroniterError as exc:
        raise ScheduleError(
            f"{schedule!r} is not a schedule: {exc}",
            field="spec.schedule",
            reason=Reason.INVALID_SCHEDULE,
        ) from exc
    _check_days_come(schedule, expanded)
    fixed = "*" not in parts[0] and "*" not in parts[1]
    return CronSchedule(fields=fields, zone=zone, fixed_time=fixed)


def next_time(schedule: CronSchedule, after: datetime) -> datetime | None:
    """The first time of the schedule strictly after `after`, in UTC; None if none comes."""
    times = croniter(schedule.fields, after.astimezone(schedule.zone))
    try:
        while True:
            found = _aware(times.get_next(datetime))
            if not (schedule.fixed_time and _is_repeated(found)):
                return found.astimezone(UTC)
    except CroniterBadDateError:
        return None


def latest_time(schedule: CronSchedule, at_or_before: datetime) -> datetime | None:
    """The last time of the schedule at or before `at_or_before`, in UTC; None if none came.
    Asked of the library directly (its previous time), so however many times were missed,
    this is one step, not a count of them."""
    # Times fall on whole minutes: the latest at or before t is the latest before the next minute.
    start = at_or_before.replace(second=0, microsecond=0) + timedelta(minutes=1)
    times = croniter(schedule.fields, start.astimezone(schedule.zone))
    try:
        while True:
            found = _aware(times.get_prev(datetime))
            if not (schedule.fixed_time and _is_repeated(found)):
                return found.astimezone(UTC)
    except CroniterBadDateError:
        return None


def run_minutes(scheduled: datetime) -> int:
    """A schedule time in Unix minutes: the suffix of its run's name, as CronJob's Jobs have."""
    return int(scheduled.timestamp()) // 60


def _parse_zone(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {time_zone!r}: use an IANA name such as Europe/Vienna or Etc/UTC",
            field="spec.timeZone",
            reason=Reason.INVALID_TIME_ZONE,
        ) from exc


def _check_ranges(field: CronField, part: str) -> None:
    """Each `a-b` of the field runs forward and within the field's bounds."""
    low, high = CRON_RANGES[field]
    for element in part.split(","):
        match = _RANGE.match(element.split("/", 1)[0])
        if match is None:
            continue
        start, end = (_value(field, text) for text in match.groups())
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(
                f"the range {match.group(0)} of the {field} field leaves {low}-{high}",
                field="spec.schedule",
                reason=Reason.INVALID_SCHEDULE,
            )
        if start > end:
            raise ScheduleError(
                f"the range {match.group(0)} of the {field} field runs backward (CronJob "
                f"refuses it too): to wrap round, write {start}-{high},{low}-{end}",
                field="spec.schedule",
                reason=Reason.INVALID_SCHEDULE,
            )


def _value(field: CronField, text: str) -> int:
    named = _NAMES.get(field, {}).get(text.upper())
    if named is not None:
        return named
    try:
        return int(text)
    except ValueError as exc:
        raise ScheduleError(
            f"{text!r} is not a value of the {field} field",
            field="spec.schedule",
            reason=Reason.INVALID_SCHEDULE,
        ) from exc


def _check_days_come(schedule: str, expanded: list[list[int | str]]) -> None:
    """A restricted day of month with any weekday must fall in some month of the schedule."""
    days, months, weekdays = expanded[2], expanded[3], expanded[4]
    if days == ["*"] or weekdays != ["*"]:
        return  # every day, or days OR weekdays: some day always comes
    month_numbers = range(1, 13) if months == ["*"] else [m for m in months if isinstance(m, int)]
    longest = max(_MONTH_DAYS[month - 1] for month in month_numbers)
    day_numbers = [day for day in days if isinstance(day, int)]
    if day_numbers and min(day_numbers) > longest:
        raise ScheduleError(
            f"{schedule!r} never runs: no month it names has day {min(day_numbers)}",
            field="spec.schedule",
            reason=Reason.INVALID_SCHEDULE,
        )


def _aware(found: object) -> datetime:
    if not isinstance(found, datetime) or found.tzinfo is None:
        raise TypeError(f"croniter gave {found!r}, not a datetime in a zone")
    return found


def _is_repeated(moment: datetime) -> bool:
    """`moment`'s wall-clock time came once already, earlier the same night (a clock set back):
    its first occurrence is an earlier instant."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=moment.tzinfo, fold=0)
    return first.astimezone(UTC) < moment.astimezone(UTC)
