"""The runs each WorkflowSchedule started, as its controller needs them: which are active, which
finished how and when. Pure bookkeeping, fed by the watch of labelled runs (`runwatch`); no I/O.

A run belongs to a schedule when it carries the label `stepline.io/schedule` and a controller
ownerReference to the schedule (its uid tells a schedule from an older one of the same name).
The scheduled time is the run's `stepline.io/scheduled-time` annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import GROUP, RunPhase

SCHEDULE_LABEL = f"{GROUP}/schedule"
SCHEDULED_TIME_ANNOTATION = f"{GROUP}/scheduled-time"

ScheduleKey = tuple[str, str]  # (namespace, schedule name)


@dataclass(frozen=True)
class ScheduledRun:
    """What a schedule's controller needs of one of its runs."""

    name: str
    uid: str
    owner_uid: str  # the uid of the schedule that controls it ("" if none)
    phase: RunPhase
    scheduled_time: datetime | None
    finished_at: datetime | None

    @property
    def is_active(self) -> bool:
        return not self.phase.is_finished


class ScheduledRuns:
    """The runs of every schedule, by (namespace, schedule)."""

    def __init__(self) -> None:
        self._by_schedule: dict[ScheduleKey, dict[str, ScheduledRun]] = {}

    def record(self, event_type: str, body: Mapping[str, Any]) -> ScheduleKey | None:
        """One watch event of a labelled run; the schedule whose runs changed in a way its
        controller cares for (a run added, gone, or of another phase), else None."""
        try:
            metadata = body["metadata"]
            key = (str(metadata.get("namespace") or ""), str(metadata["labels"][SCHEDULE_LABEL]))
            name = str(metadata["name"])
            run = None if event_type == "DELETED" else read_scheduled_run(body)
        except (KeyError, TypeError, ValueError):  # not a run of this schema, or not labelled
            return None
        runs = self._by_schedule.setdefault(key, {})
        before = runs.pop(name, None)
        if run is not None:
            runs[name] = run
        elif not runs:
            del self._by_schedule[key]
        if _state(before) == _state(run):
            return None  # a checkpoint of a run under way, or the same body listed again
        return key

    def of(self, namespace: str, schedule: str, *, uid: str) -> list[ScheduledRun]:
        """The runs the schedule of that uid controls, oldest scheduled first."""
        runs = self._by_schedule.get((namespace, schedule), {}).values()
        mine = [run for run in runs if run.owner_uid == uid]
        return sorted(mine, key=lambda run: (run.scheduled_time or _EARLIEST, run.name))


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _state(run: ScheduledRun | None) -> tuple[str, RunPhase] | None:
    return None if run is None else (run.uid, run.phase)


def read_scheduled_run(body: Mapping[str, Any]) -> ScheduledRun:
    """What the index keeps of a run's body; KeyError/TypeError/ValueError if it is not shaped
    like a WorkflowRun."""
    metadata, status = body["metadata"], body.get("status") or {}
    owner: Mapping[str, Any] = next(
        (ref for ref in metadata.get("ownerReferences") or () if ref.get("controller")), {}
    )
    annotation = (metadata.get("annotations") or {}).get(SCHEDULED_TIME_ANNOTATION)
    return ScheduledRun(
        name=str(metadata["name"]),
        uid=str(metadata.get("uid") or ""),
        owner_uid=str(owner.get("uid") or "") if owner.get("kind") == "WorkflowSchedule" else "",
        phase=RunPhase(status.get("phase") or RunPhase.PENDING),
        scheduled_time=_timestamp(annotation),
        finished_at=_timestamp(status.get("finishedAt")),
    )


def _timestamp(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
