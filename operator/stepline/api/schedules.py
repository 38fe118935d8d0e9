"""WorkflowSchedule: runs of a Workflow on a cron schedule, modelled field for field on CronJob.

Declarative only. Admission checks what CEL can see in one string of at most 128 characters:
no `TZ=`/`CRON_TZ=` in the schedule, the shape of the five cron fields or one of the seven
macros (the pattern is built here, from each field's values, never written by hand), and the
shape of an IANA zone name. What needs arithmetic or a zone database (a backward range such as
`5-3`, a date that never comes, an unknown zone) passes admission and is refused by the
operator with the Ready condition and an Event (controllers/workflowschedules/timing.py).

A schedule's runs are named `<schedule>-<scheduled time in Unix minutes>`, as CronJob names its
Jobs, so the name of a schedule is at most `MAX_SCHEDULE_NAME_LENGTH` characters: 52 and a dash
and up to ten digits stay within 63.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from stepline.api.base import (
    MAX_LABEL_LENGTH,
    ApiModel,
    KindInfo,
    KubeObject,
    ObjectName,
    PrinterColumn,
    Rule,
    RuleReason,
    SpecModel,
    list_type,
)
from stepline.api.conditions import Condition
from stepline.api.payloads import InputPayload

MAX_SCHEDULE_NAME_LENGTH = 52
MAX_SCHEDULE_LENGTH = 128
MAX_TIME_ZONE_LENGTH = 64
# CronJob's bound of its history limits is none; a thousand kept runs of one schedule is more
# than anyone reads and keeps a list of them cheap.
MAX_HISTORY_LIMIT = 1000
# Runs listed by name in status.active; activeCount is the real number.
MAX_ACTIVE_LISTED = 100
DEFAULT_TIME_ZONE = "Etc/UTC"

# CronJob's macros (robfig/cron's descriptors), each the five fields it stands for.
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")  # fmt: skip
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class CronField(StrEnum):
    """The five fields of a schedule, in order; each value's range is `CRON_RANGES`."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day of month"
    MONTH = "month"
    WEEKDAY = "weekday"


# Inclusive bounds of each field's numbers (weekday 7 is Sunday again, as 0).
CRON_RANGES: dict[CronField, tuple[int, int]] = {
    CronField.MINUTE: (0, 59),
    CronField.HOUR: (0, 23),
    CronField.DAY: (1, 31),
    CronField.MONTH: (1, 12),
    CronField.WEEKDAY: (0, 7),
}
# One value of each field, as a regular expression (RE2 and Python's `re` alike): numbers within
# the field's range, with one leading zero allowed, and for months and weekdays their names.
_VALUES: dict[CronField, str] = {
    CronField.MINUTE: "[0-5]?[0-9]",
    CronField.HOUR: "[01]?[0-9]|2[0-3]",
    CronField.DAY: "0?[1-9]|[12][0-9]|3[01]",
    CronField.MONTH: "|".join(("0?[1-9]|1[0-2]", *MONTH_NAMES)),
    CronField.WEEKDAY: "|".join(("[0-7]", *WEEKDAY_NAMES)),
}
# `?` (any) stands alone in the day fields only, as robfig/cron and croniter read it.
_QUESTION_MARK_FIELDS = frozenset({CronField.DAY, CronField.WEEKDAY})
_STEP = "/[1-9][0-9]?"
# Blanks between fields, as robfig/cron splits them: a space or a tab. The tab is CEL's escape
# `\t` inside the rule's string literal (the regex itself then holds a real tab).
_BLANK = "[ \\t]"


def build_field_pattern(field: CronField) -> str:
    """One field: a comma-separated list of `*`, a value or a range `a-b`, each with an optional
    step `/n`; or `?` alone in the day fields."""
    value = f"(?:{_VALUES[field]})"
    element = f"(?:[*]|{value}(?:-{value})?)(?:{_STEP})?"
    listed = f"{element}(?:,{element})*"
    return f"(?:[?]|{listed})" if field in _QUESTION_MARK_FIELDS else f"(?:{listed})"


def build_schedule_pattern() -> str:
    """Five fields separated by blanks, case-insensitive (month and weekday names)."""
    fields = f"{_BLANK}+".join(build_field_pattern(field) for field in CronField)
    return f"(?i)^{_BLANK}*{fields}{_BLANK}*$"


SCHEDULE_PATTERN = build_schedule_pattern()
TIME_ZONE_PATTERN = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
SCHEDULE_MESSAGE = (
    "schedule must be five cron fields (minute 0-59, hour 0-23, day 1-31, month 1-12 or "
    "JAN-DEC, weekday 0-7 or SUN-SAT; *, a-b, /n and lists) or @yearly, @annually, @monthly, "
    "@weekly, @daily, @midnight, @hourly"
)


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


class ConcurrencyPolicy(StrEnum):
    """What a schedule does at a time when a run it started earlier is still active."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class SkipReason(StrEnum):
    """Why a schedule time got no run."""

    FORBID = "Forbid"  # a run was active, and concurrencyPolicy is Forbid
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # noticed more than startingDeadlineSeconds late
    WORKFLOW_NOT_FOUND = "WorkflowNotFound"  # the Workflow did not exist at that time


class WorkflowScheduleSpec(SpecModel):
    """When to start runs of which Workflow, with what input, and how runs may overlap."""

    rules = (
        Rule(
            "!self.schedule.contains('TZ')",
            message="put the time zone in spec.timeZone, not in the schedule (TZ=, CRON_TZ=)",
            field_path=".schedule",
            reason=RuleReason.INVALID,
        ),
        Rule(
            # A schedule with TZ in it is refused by the rule above alone.
            f"self.schedule.contains('TZ') || self.schedule in {_cel_list(tuple(MACROS))} || "
            f"self.schedule.matches('{SCHEDULE_PATTERN}')",
            message=SCHEDULE_MESSAGE,
            field_path=".schedule",
            reason=RuleReason.INVALID,
        ),
        Rule(
            f"self.timeZone.matches('{TIME_ZONE_PATTERN}')",
            message="timeZone is an IANA name such as Europe/Vienna",
            field_path=".timeZone",
            reason=RuleReason.INVALID,
        ),
    )

    workflow_ref: ObjectName = Field(
        description="Name of the Workflow, in the schedule's namespace, that each run executes."
    )
    schedule: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SCHEDULE_LENGTH)] = (
        Field(
            description="When to start runs: five cron fields (minute hour day-of-month month "
            "weekday, as CronJob reads them: a day of month and a weekday both restricted "
            "mean either), or @yearly, @annually, @monthly, @weekly, @daily, @midnight or "
            "@hourly. Read in timeZone."
        )
    )
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TIME_ZONE_LENGTH)] = (
        Field(
            default=DEFAULT_TIME_ZONE,
            description="The IANA time zone the schedule is read in, such as Europe/Vienna. "
            "Default Etc/UTC (CronJob's default is the controller's local zone; this says what "
            "it means). In a zone with daylight saving time, a time in the skipped hour runs at "
            "the first minute after it, and a fixed-time schedule runs once in the repeated "
            "hour.",
        )
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="When a run this schedule started is still active at the next time: Allow "
        "starts another; Forbid skips the time (status.lastSkip); Replace cancels the active "
        "runs (spec.cancel) and starts the new one.",
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description="A time noticed more than this many seconds late (the operator was down, "
        "or the schedule suspended) gets no run: it is recorded in status.lastSkip with "
        "reason DeadlineExceeded and a MissedSchedule Event. Default: a missed time is run "
        "however late. Only the latest missed time is ever run.",
    )
    suspend: bool = Field(
        default=False,
        description="true: no new runs start; runs already started go on. Set back to false, "
        "the latest time missed meanwhile runs, within startingDeadlineSeconds.",
    )
    successful_runs_history_limit: int = Field(
        default=3,
        ge=0,
        le=MAX_HISTORY_LIMIT,
        description="Succeeded runs of this schedule kept; older ones are deleted. The "
        "Workflow's retention applies too: the stricter wins.",
    )
    failed_runs_history_limit: int = Field(
        default=1,
        ge=0,
        le=MAX_HISTORY_LIMIT,
        description="Failed or cancelled runs of this schedule kept; older ones are deleted. "
        "The Workflow's retention applies too: the stricter wins.",
    )
    input: InputPayload = Field(
        default_factory=dict,
        description="The input of every run: a JSON object of at most 64 KiB of compact JSON "
        "(the scheduled time is in each run's stepline.io/scheduled-time annotation).",
    )


class ScheduleSkip(ApiModel):
    """A schedule time that got no run, and why."""

    time: datetime = Field(description="The scheduled time skipped.")
    reason: SkipReason = Field(description="Forbid, DeadlineExceeded or WorkflowNotFound.")


class ActiveRun(ApiModel):
    """A run this schedule started that has not finished."""

    name: Annotated[str, StringConstraints(max_length=253)] = Field(
        description="The WorkflowRun's name."
    )
    uid: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The WorkflowRun's uid."
    )


class WorkflowScheduleStatus(ApiModel):
    """The observed state of a schedule, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_type("map", "type"),
        description="Ready: the schedule parses, its time zone exists and its Workflow exists "
        "(reasons InvalidSchedule, InvalidTimeZone, WorkflowNotFound when not).",
    )
    last_schedule_time: datetime | None = Field(
        default=None, description="The scheduled time of the last run started."
    )
    last_successful_time: datetime | None = Field(
        default=None, description="When the last run of this schedule that succeeded finished."
    )
    next_schedule_time: datetime | None = Field(
        default=None, description="The next time a run is due; absent while suspended or invalid."
    )
    last_skip: ScheduleSkip | None = Field(
        default=None, description="The last schedule time that got no run, and why."
    )
    active_count: int = Field(default=0, ge=0, description="Runs of this schedule not finished.")
    active: list[ActiveRun] = Field(
        default_factory=list,
        max_length=MAX_ACTIVE_LISTED,
        json_schema_extra=list_type("map", "name"),
        description=f"The active runs, oldest first; at most {MAX_ACTIVE_LISTED} are listed "
        "(activeCount is the real number).",
    )


class WorkflowSchedule(KubeObject):
    """Runs of a Workflow on a cron schedule, in a time zone, like a CronJob's Jobs."""

    kind_info = KindInfo(
        plural="workflowschedules",
        short_names=("wfsched",),
        columns=(
            PrinterColumn("Workflow", ".spec.workflowRef", description="The workflow run."),
            PrinterColumn("Schedule", ".spec.schedule", description="When runs start."),
            PrinterColumn("Suspend", ".spec.suspend", "boolean", "No new runs while true."),
            PrinterColumn("Active", ".status.activeCount", "integer", "Runs not finished."),
            PrinterColumn(
                "Last Schedule",
                ".status.lastScheduleTime",
                "date",
                "How long ago the last run was scheduled.",
            ),
            PrinterColumn(
                "TimeZone", ".spec.timeZone", description="The schedule's zone.", priority=1
            ),
            # A string, not a date: kubectl prints a future date as <invalid>.
            PrinterColumn(
                "Next",
                ".status.nextScheduleTime",
                description="When the next run is due.",
                priority=1,
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
    rules = (
        Rule(
            f"!has(self.metadata.name) || size(self.metadata.name) <= {MAX_SCHEDULE_NAME_LENGTH}",
            message=f"a WorkflowSchedule's name is at most {MAX_SCHEDULE_NAME_LENGTH} characters: "
            f"its runs are named <schedule>-<Unix minutes>, within {MAX_LABEL_LENGTH}",
            field_path=".metadata.name",
            reason=RuleReason.INVALID,
        ),
    )

    kind: Literal["WorkflowSchedule"] = "WorkflowSchedule"
    spec: WorkflowScheduleSpec = Field(description="When to run which workflow, and how.")
    status: WorkflowScheduleStatus = Field(
        default_factory=WorkflowScheduleStatus, description="Observed state, written by Stepline."
    )
