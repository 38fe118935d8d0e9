"""A plan: what one Workflow generation asks the executor to do, computed once and reused by
every run of that generation.

Pure: no I/O. The plan lists the steps in plan order — the workflow's list order, moved only where
`dependsOn` names a later step (a stable topological order) — with each step's dependencies, which
the executor follows to run independent steps side by side (up to the workflow's `parallelism`);
steps ready at the same time start in plan order. It holds the workflow's compiled expressions, so
CEL is compiled once per generation; a step with no `input` or `when` expression is marked so, and
the executor then passes data along without touching CEL at all.

Raises `PlanError` for a workflow that cannot run: expressions that do not compile, or steps
that wait on each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepline.api import (
    ApprovalStepSpec,
    Compensation,
    Reason,
    RetryPolicy,
    Workflow,
    WorkflowStep,
    compute_dependencies,
    describe_cycles,
    find_dependency_cycles,
)
from stepline.engine.errors import PlanError
from stepline.engine.expressions import CompiledExpressions, compile_workflow_expressions


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of a plan; `timeout_seconds` and `retry` are the workflow's overrides (None:
    the ServiceStep's own defaults apply)."""

    name: str
    step_ref: str
    depends_on: tuple[str, ...]
    timeout_seconds: float | None
    retry: RetryPolicy | None
    has_input: bool
    has_condition: bool
    # A forEach step: one call per element of its items, at most `element_parallelism` (None:
    # the plan's parallelism) in flight.
    for_each: bool = False
    element_parallelism: int | None = None
    compensation: Compensation | None = None  # how to undo it, if it can be
    approval: ApprovalStepSpec | None = None  # a step a person decides: no ServiceStep


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps of a workflow in execution order, with its expressions and run limit."""

    namespace: str
    workflow: str
    generation: int | None
    steps: tuple[PlannedStep, ...]
    expressions: CompiledExpressions
    concurrency: int
    parallelism: int = 10
    checkpoint_interval: float = 0.0  # the workflow's checkpointIntervalSeconds

    @property
    def key(self) -> str:
        """`namespace/name` of the workflow: the key of its run slots and of its metrics."""
        return f"{self.namespace}/{self.workflow}"

    @property
    def has_output(self) -> bool:
        """Whether the workflow shapes its output with an expression."""
        return self.expressions.output is not None


def build_plan(workflow: Workflow, *, expressions: CompiledExpressions | None = None) -> Plan:
    """The plan of `workflow`; pass `expressions` when they were compiled already."""
    spec = workflow.spec
    compiled = expressions if expressions is not None else compile_workflow_expressions(spec)
    name = workflow.metadata.name or ""
    if compiled.problems:
        described = "; ".join(problem.describe() for problem in compiled.problems)
        raise PlanError(f"workflow {name}: {described}", problems=compiled.problems)
    cycles = find_dependency_cycles(spec)
    if cycles:
        message = f"workflow {name}: {describe_cycles(cycles)}"
        raise PlanError(message, reason=Reason.DEPENDENCY_CYCLE)
    dependencies = compute_dependencies(spec)
    by_name = {step.name: step for step in spec.steps}
    steps = tuple(
        PlannedStep(
            name=step_name,
            step_ref=by_name[step_name].step_ref or "",
            depends_on=dependencies[step_name],
            timeout_seconds=by_name[step_name].timeout_seconds,
            retry=by_name[step_name].retry,
            has_input=step_name in compiled.inputs,
            has_condition=step_name in compiled.conditions,
            for_each=by_name[step_name].for_each is not None,
            element_parallelism=_element_parallelism(by_name[step_name]),
            compensation=by_name[step_name].compensation,
            approval=by_name[step_name].approval,
        )
        for step_name in order_steps(dependencies)
    )
    return Plan(
        namespace=workflow.metadata.namespace or "",
        workflow=name,
        generation=workflow.metadata.generation,
        steps=steps,
        expressions=compiled,
        concurrency=spec.concurrency,
        parallelism=spec.parallelism,
        checkpoint_interval=spec.checkpoint_interval_seconds,
    )


def _element_parallelism(step: WorkflowStep) -> int | None:
    return None if step.for_each is None else step.for_each.parallelism


def order_steps(dependencies: dict[str, tuple[str, ...]]) -> list[str]:
    """Steps in list order, each after the steps it waits for (stable topological order).

    `dependencies` is in list order and acyclic, as `compute_dependencies` gives it.
    """
    done: set[str] = set()
    ordered: list[str] = []
    pending = list(dependencies)
    while pending:
        ready = next(name for name in pending if done.issuperset(dependencies[name]))
        pending.remove(ready)
        done.add(ready)
        ordered.append(ready)
    return ordered
