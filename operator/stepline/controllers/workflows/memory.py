"""What the Workflow controller remembers, in this process: the compiled expressions and plan of
each Workflow generation (the runs of a generation share them), and which generations' status
it refreshed."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from stepline.api import Workflow
from stepline.engine import Plan, build_plan
from stepline.engine.expressions import CompiledExpressions, compile_workflow_expressions

# Compiled expressions of this many Workflow generations are kept; one entry is a few KiB.
EXPRESSION_CACHE_SIZE = 4096


@dataclass
class WorkflowMemory:
    # (namespace, name) → (uid, generation) of the Workflow whose status was last refreshed
    # for a change of its own.
    refreshed: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    _plans: OrderedDict[tuple[str, int], Plan] = field(default_factory=OrderedDict)
    _expressions: OrderedDict[tuple[str, int], CompiledExpressions] = field(
        default_factory=OrderedDict
    )

    def expressions_of(self, workflow: Workflow) -> CompiledExpressions:
        """The workflow's compiled expressions, compiled once per generation."""
        key = (workflow.metadata.uid or "", workflow.metadata.generation or 0)
        compiled = self._expressions.get(key)
        if compiled is None:
            compiled = compile_workflow_expressions(workflow.spec)
            self._expressions[key] = compiled
            if len(self._expressions) > EXPRESSION_CACHE_SIZE:
                self._expressions.popitem(last=False)
        return compiled

    def plan_of(self, workflow: Workflow) -> Plan:
        """The workflow's plan, built once per generation (raises PlanError)."""
        key = (workflow.metadata.uid or "", workflow.metadata.generation or 0)
        plan = self._plans.get(key)
        if plan is None:
            plan = build_plan(workflow, expressions=self.expressions_of(workflow))
            self._plans[key] = plan
            if len(self._plans) > EXPRESSION_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan
