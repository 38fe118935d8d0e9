"""A WorkflowRun as a step timeline: `stepline describe RUN`, and the end of `stepline start
--wait`. Pure: the run's body in, plain text out; the clock only as the `now` the caller passes
(for the time of what is still running).

The run's phase, reason, message and times come first, then one row per step in the order the
steps started (those not started last, in plan order): its phase, its start as an offset from
the run's, its duration, its attempts and what it gave: its output (compact JSON on one line,
cut), its error's reason, or why it has no result (skipped, waiting, not started). Lines indented
under a row add what the row cannot hold: an error's message, a waiting approval step's question
and who may decide, a forEach step's elements, a step's compensation. Lines are at most `width`
characters (100 by default: a terminal beside an editor).

The status is read through the API model (`WorkflowRunStatus`); what a skipped step's condition
was comes from the definition the run pinned (`status.workflowSpec`).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from stepline.api import (
    CompensationRecord,
    CompensationSummary,
    ItemsSummary,
    RunPhase,
    StepPhase,
    StepRecord,
    WaitRecord,
    WorkflowRunStatus,
)
from stepline.terminal.durations import (
    NONE,
    format_duration,
    format_offset,
    seconds_between,
)
from stepline.terminal.errors import RefusedError

WIDTH = 100  # when the output is not a terminal (a pipe, a file, a test)
NARROWEST = 80
HEADERS = ("STEP", "PHASE", "START", "DURATION", "ATTEMPTS", "RESULT")
GAP = "  "
INDENT = "    "
# Lines of an error's message shown under its step; a longer one is cut, `kubectl get -o yaml`
# has it whole.
MESSAGE_LINES = 4
# The narrowest RESULT column, however long the step names: below it a result says nothing.
MIN_RESULT = 24
CONDITION = "Succeeded"
LABEL_WIDTH = 12  # "Suspended: " and a space
# What a step in these phases shows in place of a result.
NO_RESULT = {
    StepPhase.WAITING: "waiting for a person",
    StepPhase.CANCELLED: "cancelled",
    StepPhase.PENDING: "not started",
}


@dataclass(frozen=True)
class StepRow:
    """One step of the timeline: its cells, and the lines under it."""

    cells: tuple[str, str, str, str, str, str]
    details: list[str] = field(default_factory=list)


def terminal_width() -> int:
    """The terminal's width (`COLUMNS`, else the terminal's own), at least NARROWEST; WIDTH
    when the output is not a terminal."""
    return max(shutil.get_terminal_size((WIDTH, 24)).columns, NARROWEST)


def render_timeline(
    run: Mapping[str, Any], *, now: datetime | None = None, width: int = WIDTH
) -> str:
    """The run as text: a header, then a row per step in start order."""
    status = parse_status(run)
    rows = build_rows(status, now=now, width=width)
    lines = [*render_header(run, status, now=now, width=width), ""]
    lines += render_rows(rows, width=width) if rows else ["no step has a record yet"]
    return "\n".join(lines) + "\n"


def build_rows(status: WorkflowRunStatus, *, now: datetime | None, width: int) -> list[StepRow]:
    """A row per step, in the order the steps started (the web view's timeline too); a step
    the status names as being called (`currentStep`) is Running even before its first record."""
    definition = pinned_steps(status)
    waits = describe_waits(status.waiting_for)
    return [
        build_step_row(
            record,
            started=status.started_at,
            now=now,
            definition=definition.get(record.name, {}),
            waiting=waits.get(record.name, []),
            width=width,
        )
        for record in order_by_start(with_running(status))
    ]


def with_running(status: WorkflowRunStatus) -> list[StepRecord]:
    """The step records, with those being called (`currentStep`: the start of a run writes it
    before any record, and a checkpoint lags behind the steps it starts) shown Running."""
    running = [name for name in (status.current_step or "").split(",") if name and name[0] != "+"]
    if status.phase.is_finished or not running:
        return list(status.steps)
    records = [
        record.model_copy(update={"phase": StepPhase.RUNNING})
        if record.name in running and record.phase is StepPhase.PENDING
        else record
        for record in status.steps
    ]
    known = {record.name for record in records}
    records += [
        StepRecord(name=name, phase=StepPhase.RUNNING) for name in running if name not in known
    ]
    return records


def parse_status(run: Mapping[str, Any]) -> WorkflowRunStatus:
    """The run's status through the API model; RefusedError when it cannot be read."""
    try:
        return WorkflowRunStatus.model_validate(run.get("status") or {})
    except ValidationError as exc:
        name = (run.get("metadata") or {}).get("name")
        raise RefusedError(f"WorkflowRun {name!r}: its status cannot be read ({exc})") from exc


def pinned_steps(status: WorkflowRunStatus) -> dict[str, Mapping[str, Any]]:
    """Step name → the step as the definition the run pinned has it (raw JSON); empty when the
    run recorded none."""
    spec = status.workflow_spec
    steps = spec.get("steps") if isinstance(spec, dict) else None
    if not isinstance(steps, list):
        return {}
    return {str(s.get("name")): s for s in steps if isinstance(s, dict)}


def order_by_start(records: Sequence[StepRecord]) -> list[StepRecord]:
    """The records in the order the steps started; those not started last, in plan order."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(records, key=lambda record: record.started_at or far)


def render_header(
    run: Mapping[str, Any], status: WorkflowRunStatus, *, now: datetime | None, width: int
) -> list[str]:
    lines = []
    for label, value in header_fields(run, status, now=now, width=width):
        wrapped = wrap_lines(value, width - LABEL_WIDTH, MESSAGE_LINES)
        lines.append(f"{label + ':':<{LABEL_WIDTH}}{wrapped[0]}")
        lines += [" " * LABEL_WIDTH + more for more in wrapped[1:]]
    return lines


def header_fields(
    run: Mapping[str, Any], status: WorkflowRunStatus, *, now: datetime | None, width: int
) -> list[tuple[str, str]]:
    """The run's facts above its steps, as (label, value): the web view shows them too."""
    meta, spec = run.get("metadata") or {}, run.get("spec") or {}
    fields = [
        ("Run", f"{meta.get('name')} (namespace {meta.get('namespace')})"),
        ("Workflow", str(spec.get("workflowRef"))),
        ("Phase", describe_phase(status)),
    ]
    condition = next((c for c in status.conditions if c.type == CONDITION), None)
    if condition is not None and condition.message:
        fields.append(("Message", condition.message))
    if spec.get("cancel") and not status.phase.is_finished:
        fields.append(("Cancel", "requested: no new step starts; calls in flight end"))
    fields += describe_times(status, now=now)
    if status.rerun is not None:
        reused = ", ".join(status.rerun.reused_steps) or "none"
        fields.append(("Rerun of", f"{status.rerun.of} (steps reused: {reused})"))
    if status.compensation is not None:
        fields.append(("Undoing", describe_undoing(status.compensation)))
    if status.phase is RunPhase.SUCCEEDED:
        output = describe_output(status.output, status.output_info)
        fields.append(("Output", cut(output, width - LABEL_WIDTH)))
    return fields


def describe_phase(status: WorkflowRunStatus) -> str:
    condition = next((c for c in status.conditions if c.type == CONDITION), None)
    reason = condition.reason if condition is not None else None
    done = sum(r.phase in {StepPhase.SUCCEEDED, StepPhase.SKIPPED} for r in status.steps)
    progress = f", {done}/{len(status.steps)} steps done" if status.steps else ""
    said = f" ({reason})" if reason and reason != status.phase.value else ""
    return f"{status.phase.value}{said}{progress}"


def describe_times(status: WorkflowRunStatus, *, now: datetime | None) -> list[tuple[str, str]]:
    if status.started_at is None:
        return [("Started", "not yet")]
    fields = [("Started", format_time(status.started_at))]
    if status.phase.is_finished:
        took = status.duration_seconds
        if took is None:
            took = seconds_between(status.started_at, status.finished_at)
        fields.append(("Duration", format_duration(took)))
    elif now is not None:
        fields.append(
            ("Duration", f"{format_duration(seconds_between(status.started_at, now))} so far")
        )
    if status.suspended_seconds:
        fields.append(("Suspended", f"{format_duration(status.suspended_seconds)} in all"))
    return fields


def describe_undoing(undo: CompensationSummary) -> str:
    failed = f", {undo.failed} failed" if undo.failed else ""
    return (
        f"{undo.phase.value}: {undo.succeeded} of {undo.steps} steps undone{failed} "
        f"(because {undo.cause})"
    )


def build_step_row(
    record: StepRecord,
    *,
    started: datetime | None,
    now: datetime | None,
    definition: Mapping[str, Any],
    waiting: Sequence[str] = (),
    width: int = WIDTH,
) -> StepRow:
    """The cells and detail lines of one step."""
    began = record.started_at
    offset = seconds_between(started, began) if began and started else None
    took = record.duration_seconds
    if took is None and record.phase in {StepPhase.RUNNING, StepPhase.WAITING}:
        took = seconds_between(began, now)
    result, details = describe_result(record, definition, width=width)
    details += waiting
    cells = (
        record.name,
        record.phase.value,
        format_offset(offset) if began else NONE,
        format_duration(took),
        str(record.attempts) if record.attempts or record.phase is StepPhase.FAILED else NONE,
        result,
    )
    details += describe_items(record.items)
    if record.reused_from:
        details.append(f"reused from {record.reused_from}: not called again")
    if record.compensation is not None:
        details.append(describe_compensation(record.compensation))
    return StepRow(cells, details)


def describe_result(
    record: StepRecord, definition: Mapping[str, Any], *, width: int = WIDTH
) -> tuple[str, list[str]]:
    """The RESULT cell and the lines under it, by the step's phase."""
    phase, error, approval = record.phase, record.error, record.approval
    if approval is not None:
        said = f": {approval.reason}" if approval.reason else ""
        verb = "approved" if approval.decision == "Approve" else "rejected"
        return f"{verb} by {approval.user}{said}", []
    if error is not None:
        status = f" (HTTP {error.http_status})" if error.http_status else ""
        details = wrap_lines(error.message, width - len(INDENT), MESSAGE_LINES)
        if error.body:
            details.append(f"body: {error.body}")
        return f"{error.reason}{status}", details
    if phase is StepPhase.SUCCEEDED:
        return describe_output(record.output, record.output_info), []
    if phase is StepPhase.SKIPPED:
        when = definition.get("when")
        return ("skipped: its `when` was false", [f"when: {when}"]) if when else ("skipped", [])
    if phase is StepPhase.RUNNING:
        return f"running (attempt {max(record.attempts, 1)})", []
    return NO_RESULT.get(phase, "not started"), []


def describe_output(output: Any, info: Any) -> str:
    """An output as compact JSON on one line (cut later, to the column)."""
    if info is not None and info.truncated:
        return f"({info.size_bytes} bytes, not recorded) {info.preview or ''}".rstrip()
    return json.dumps(output, separators=(",", ":"), ensure_ascii=False)


def describe_items(items: ItemsSummary | None) -> list[str]:
    """A forEach step's elements: how many did what, then the first failures."""
    if items is None:
        return []
    parts = [f"{items.succeeded} of {items.total} succeeded"]
    if items.failed:
        parts.append(f"{items.failed} failed")
    if items.running:
        parts.append(f"{items.running} running")
    if items.max_attempts > 1:
        parts.append(f"at most {items.max_attempts} attempts each")
    lines = ["elements: " + ", ".join(parts)]
    for error in items.errors:
        status = f" (HTTP {error.http_status})" if error.http_status else ""
        lines.append(f"element {error.index}: {error.reason}{status}: {error.message}")
    return lines


def describe_compensation(undo: CompensationRecord) -> str:
    """`compensation #1 (order-cancellation): Succeeded after 45ms, 1 attempt`, or why not."""
    order = f" #{undo.order}" if undo.order else ""
    text = f"compensation{order} ({undo.step_ref}): {undo.phase.value}"
    if undo.reason:
        text += f" ({undo.reason})"
    took = seconds_between(undo.started_at, undo.finished_at)
    if took is not None:
        text += f" after {format_duration(took)}"
    if undo.attempts:
        text += f", {undo.attempts} attempt{'s' if undo.attempts > 1 else ''}"
    if undo.error is not None:
        text += f"; {undo.error.reason}: {undo.error.message}"
    return text


def describe_waits(waits: Sequence[WaitRecord]) -> dict[str, list[str]]:
    """Step name → what its wait asks and who may decide, until when."""
    return {
        wait.step: [
            f"asks: {wait.message or wait.step}",
            f"since {format_time(wait.since)}, until {format_time(wait.deadline)}",
            f"who may decide: {wait.approvers or 'a user with verb approve on the Workflow'}",
        ]
        for wait in waits
    }


def render_rows(rows: Sequence[StepRow], *, width: int) -> list[str]:
    """The rows under HEADERS, columns aligned, RESULT cut to what the width leaves."""
    fixed = [max(len(HEADERS[i]), *(len(r.cells[i]) for r in rows)) for i in range(5)]
    result_width = max(width - sum(fixed) - len(GAP) * 5, MIN_RESULT)

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(fixed[i]) for i, cell in enumerate(cells[:5])]
        return GAP.join([*padded, cut(cells[5], result_width)]).rstrip()

    lines = [line(HEADERS)]
    for row in rows:
        lines.append(line(row.cells))
        lines += [INDENT + cut(detail, width - len(INDENT)) for detail in row.details]
    return lines


def cut(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_time(moment: datetime) -> str:
    """`2026-12-07 06:00:00Z`: UTC to the second, as the API server keeps times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def wrap_lines(text: str, width: int, most: int) -> list[str]:
    """`text` wrapped to `width`, at most `most` lines (the last one cut)."""
    lines = textwrap.wrap(text, width) or [text]
    if len(lines) > most:
        lines = [*lines[: most - 1], cut(lines[most - 1] + " " + lines[most], width)]
    return lines
