"""Whether a Workflow can run: every referenced ServiceStep exists and is Ready, every expression
compiles and `dependsOn` has no cycle. Pure: the caller hands in the steps it knows of (from the
operator's index) and the compiled expressions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from stepline.api import (
    CompensationReadiness,
    ConditionStatus,
    ConditionType,
    ExpressionProblem,
    Reason,
    ServiceStep,
    Workflow,
    WorkflowStatus,
    WorkflowStepStatus,
    describe_cycles,
    find_condition,
    find_dependency_cycles,
    is_step_ready,
    set_condition,
)


def describe_step(name: str, step: ServiceStep | None) -> WorkflowStepStatus:
    """One step's readiness, with the ServiceStep's own reason when it is not ready."""
    if step is None:
        message = "ServiceStep not found"
    elif is_step_ready(step):
        message = None
    else:
        ready = find_condition(step.status.conditions, ConditionType.READY)
        message = ready.message if ready else "ServiceStep has no status yet"
    ref = step.metadata.name if step and step.metadata.name else ""
    return WorkflowStepStatus(name=name, step_ref=ref, ready=message is None, message=message)


def compute_workflow_status(
    workflow: Workflow,
    *,
    steps: Mapping[str, ServiceStep | None],
    expression_problems: tuple[ExpressionProblem, ...] = (),
    now: datetime | None = None,
    approvals_problem: str | None = None,
) -> WorkflowStatus:
    """The Workflow's status; `steps` maps each stepRef to its ServiceStep (None: missing)."""
    records = []
    problems: list[tuple[str, str, str | None]] = []  # (what, ServiceStep, why) of each one
    for entry in workflow.spec.steps:
        if entry.step_ref is None:  # an approval step: a person, no ServiceStep
            records.append(WorkflowStepStatus(name=entry.name, step_ref="", ready=True))
            continue
        record = describe_step(entry.name, steps.get(entry.step_ref))
        record = record.model_copy(update={"step_ref": entry.step_ref})
        if not record.ready:
            problems.append((f"step {entry.name!r}", entry.step_ref, record.message))
        if entry.compensation is not None:
            ref = entry.compensation.step_ref
            undo = describe_step(entry.name, steps.get(ref))
            readiness = CompensationReadiness(step_ref=ref, ready=undo.ready, message=undo.message)
            record = record.model_copy(update={"compensation": readiness})
            if not undo.ready:
                problems.append((f"step {entry.name!r} compensation", ref, undo.message))
        records.append(record)
    missing = sorted({ref for _, ref, why in problems if why == "ServiceStep not found"})
    unready = [(what, ref, why) for what, ref, why in problems if ref not in missing]
    cycles = find_dependency_cycles(workflow.spec)

    if expression_problems:
        status, reason = ConditionStatus.FALSE, Reason.INVALID_EXPRESSION
        message = "; ".join(problem.describe() for problem in expression_problems)
    elif cycles:
        status, reason = ConditionStatus.FALSE, Reason.DEPENDENCY_CYCLE
        message = describe_cycles(cycles)
    elif missing:
        status, reason = ConditionStatus.FALSE, Reason.STEP_NOT_FOUND
        message = f"ServiceStep not found: {', '.join(missing)}"
    elif approvals_problem and any(entry.approval for entry in workflow.spec.steps):
        status, reason = ConditionStatus.FALSE, Reason.APPROVALS_UNAVAILABLE
        message = f"its approval steps cannot be decided: {approvals_problem}"
    elif unready:
        status, reason = ConditionStatus.FALSE, Reason.STEPS_NOT_READY
        message = "; ".join(f"{what} ({ref}): {why}" for what, ref, why in unready)
    else:
        status, reason = ConditionStatus.TRUE, Reason.ALL_STEPS_READY
        message = f"all {len(records)} steps are ready"

    generation = workflow.metadata.generation
    conditions = set_condition(
        workflow.status.conditions,
        condition_type=ConditionType.READY,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )
    return workflow.status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions,
            "steps": records,
            "steps_ready": f"{sum(r.ready for r in records)}/{len(records)}",
            "expression_errors": list(expression_problems),
        }
    )
