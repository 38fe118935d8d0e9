"""What the WorkflowRun controller shares with the rest of the operator, in this process: the
run slots that bound each workflow's concurrent runs (invoke takes them too) and the durations
of each workflow's last successful runs (for a running run's estimated completion)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stepline.controllers.workflowruns.prediction import DurationHistory
from stepline.engine import RunSlots


@dataclass
class RunMemory:
    slots: RunSlots = field(default_factory=RunSlots)
    # (namespace, workflow) → its last successful runs' durations (history.RunIndex fills it).
    histories: dict[tuple[str, str], DurationHistory] = field(default_factory=dict)
