"""What the ServiceStep controller remembers between reconciles, in this process: what it applied,
what it is doing, what it is due to do, and what the steps' owned objects report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from stepline.controllers.servicesteps.owned import OwnedStates
from stepline.controllers.servicesteps.scaling import Scalers


class AppliedObject(NamedTuple):
    """An owned object as our last apply left it: its generation and a digest of its spec."""

    generation: int
    spec_digest: str


@dataclass
class ServiceStepMemory:
    # The figures the steps' autoscalers follow (scaling.py).
    scalers: Scalers
    # ServiceStep reconciles under way at most (settings.worker_limit); the others wait.
    reconcile_slots: asyncio.Semaphore
    # What the steps' Deployments and HPAs report (owned.py keeps it current).
    owned: OwnedStates = field(default_factory=OwnedStates)
    # (kind, namespace, name) → what our last server-side apply of that object returned.
    applied_objects: dict[tuple[str, str, str], AppliedObject] = field(default_factory=dict)
    # (kind, namespace, name) → server-side applies of that object under way.
    applies_in_flight: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (kind, namespace, name) → why the last apply of that object's children failed, until one
    # succeeds.
    apply_errors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # (namespace, name) of the external (url) steps, for their periodic health checks.
    external_steps: set[tuple[str, str]] = field(default_factory=set)
    # (namespace, name) → the status refresh of that ServiceStep that is due (reconciler.py).
    status_refreshes: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    # (namespace, name) → the task reconciling that ServiceStep, and, while another reconcile
    # of it is due, the corrections it is due for (none: a change of its spec) (reconciler.py).
    reconciles: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    reconciles_due: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (namespace, name) → (uid, generation) of the ServiceStep last asked to be reconciled.
    reconcile_asked: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def forget_writes(self) -> None:
        """Drops what was applied and asked for, so that a new leader reconciles afresh."""
        self.applied_objects.clear()
        self.apply_errors.clear()
        self.reconcile_asked.clear()
        self.reconciles_due.clear()
        self.external_steps.clear()
