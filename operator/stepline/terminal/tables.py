"""WorkflowRuns as a table like kubectl's: `stepline runs`. Pure: run bodies in, lines out; the
clock only as the `now` the caller passes (for ages and the time of runs still going).

Columns: NAMESPACE (with `-A`), NAME, WORKFLOW, PHASE, STEPS (done/all, done being Succeeded or
Skipped), AGE (since the run was created, as kubectl's) and DURATION (from its start to its end,
or until now while it runs). Rows are sorted oldest first, so the newest run is the last line,
next to the prompt. Runs are read as raw bodies, not through the API model: a table of hundreds
of runs must not fail, nor take long, for one odd status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepline.api.base import parse_timestamp
from stepline.terminal.durations import NONE, format_age, format_duration, seconds_between

HEADERS = ("NAMESPACE", "NAME", "WORKFLOW", "PHASE", "STEPS", "AGE", "DURATION")
GAP = "   "  # kubectl's
SETTLED = ("Succeeded", "Skipped")


@dataclass(frozen=True)
class RunRow:
    """The cells of one run, and what the table is sorted by."""

    namespace: str
    name: str
    workflow: str
    phase: str
    steps: str
    age: str
    duration: str
    created: str  # the creationTimestamp as the API server wrote it: sorts as time does

    def cells(self, *, all_namespaces: bool) -> tuple[str, ...]:
        cells = (self.name, self.workflow, self.phase, self.steps, self.age, self.duration)
        return (self.namespace, *cells) if all_namespaces else cells

    @property
    def state(self) -> tuple[str, str, str]:
        """What a watch prints a row again for: not its age or the time going by."""
        return self.workflow, self.phase, self.steps


def build_run_row(run: Mapping[str, Any], *, now: datetime) -> RunRow:
    meta: Mapping[str, Any] = run.get("metadata") or {}
    spec: Mapping[str, Any] = run.get("spec") or {}
    status: Mapping[str, Any] = run.get("status") or {}
    created = str(meta.get("creationTimestamp") or "")
    return RunRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        workflow=str(spec.get("workflowRef") or NONE),
        phase=str(status.get("phase") or "Pending"),
        steps=count_steps(status),
        age=format_age(seconds_between(parse_timestamp(created), now)),
        duration=run_duration(status, now=now),
        created=created,
    )


def count_steps(status: Mapping[str, Any]) -> str:
    """`done/all`: the status's `progress`, else counted from its step records."""
    progress = status.get("progress")
    if isinstance(progress, str) and progress:
        return progress
    records = [r for r in status.get("steps") or [] if isinstance(r, Mapping)]
    if not records:
        return NONE
    return f"{sum(r.get('phase') in SETTLED for r in records)}/{len(records)}"


def run_duration(status: Mapping[str, Any], *, now: datetime) -> str:
    """From start to end; until `now` while it goes on; `-` before it starts."""
    recorded = status.get("durationSeconds")
    if isinstance(recorded, int | float):
        return format_duration(float(recorded))
    started = parse_timestamp(status.get("startedAt"))
    ended = parse_timestamp(status.get("finishedAt"))
    return format_duration(seconds_between(started, ended or now))


def select_runs(
    runs: Iterable[Mapping[str, Any]], *, workflow: str | None = None, phase: str | None = None
) -> list[Mapping[str, Any]]:
    """The runs of `workflow` in `phase` (any case), if given; oldest first."""
    chosen = [run for run in runs if matches(run, workflow=workflow, phase=phase)]
    return sorted(chosen, key=sort_key)


def matches(run: Mapping[str, Any], *, workflow: str | None, phase: str | None) -> bool:
    if workflow is not None and (run.get("spec") or {}).get("workflowRef") != workflow:
        return False
    if phase is None:
        return True
    return str((run.get("status") or {}).get("phase") or "Pending").lower() == phase.lower()


def sort_key(run: Mapping[str, Any]) -> tuple[str, str]:
    meta = run.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def column_widths(rows: Sequence[RunRow], *, all_namespaces: bool) -> list[int]:
    """Each column as wide as its widest cell or header."""
    headers = HEADERS if all_namespaces else HEADERS[1:]
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row.cells(all_namespaces=all_namespaces)):
            widths[index] = max(widths[index], len(cell))
    return widths


def render_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return GAP.join(padded).rstrip()


def render_table(rows: Sequence[RunRow], *, all_namespaces: bool) -> list[str]:
    """The header and a line per row; what to print when there is no run is the caller's."""
    widths = column_widths(rows, all_namespaces=all_namespaces)
    headers = HEADERS if all_namespaces else HEADERS[1:]
    lines = [render_line(headers, widths)]
    lines += [render_line(row.cells(all_namespaces=all_namespaces), widths) for row in rows]
    return lines
