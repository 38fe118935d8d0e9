"""A person's decision on a run's approval step, recorded as an Approval: what `stepline approve`
and `stepline reject` do once their arguments are parsed.

It reads the run (for its Workflow, and to check the step), then creates the Approval with
`generateName: <run>-<step>-`; the API server names it, stamps `decidedBy` and checks the
person's permission (api/admission.py). It refuses, before creating anything, what could never
be honoured: a run that does not exist, a step its Workflow does not have or that is not an
approval step, and a step the run does not wait at now (an Approval made before the wait began
is never honoured). The same readings of the run's status as the operator's
(`api.find_wait`).

Errors (errors.py):

    DecisionError        the run or the step cannot take the decision: nothing was created
    KubeApiError         the API server refused (403: no permission, the policy's message; 422:
                         invalid) or did not answer (`status` 0)
    ConfigurationError   no credentials (no kubeconfig, not in a pod)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stepline.api import API_VERSION, Verdict, build_approval_request, find_step_record, find_wait
from stepline.errors import DecisionError
from stepline.kube import KubeApi


async def record_decision(
    kube: KubeApi,
    namespace: str,
    run: str,
    *,
    step: str,
    verdict: Verdict,
    reason: str | None,
) -> str:
    """Creates the Approval of `verdict` on `step` of `run`; its name."""
    body = await kube.get(API_VERSION, "WorkflowRun", namespace, run)
    if body is None:
        raise DecisionError(f"WorkflowRun {run!r} not found in namespace {namespace!r}")
    workflow = str((body.get("spec") or {}).get("workflowRef") or "")
    status: Mapping[str, Any] = body.get("status") or {}
    steps = await _workflow_steps(kube, namespace, workflow, status)
    if steps is not None:
        check_approval_step(steps, step, workflow=workflow)
    if find_wait(status, step) is None:
        raise DecisionError(describe_not_waiting(run, step, status))
    manifest = build_approval_request(
        namespace, run=run, workflow=workflow, step=step, verdict=verdict, reason=reason
    )
    created = await kube.create(manifest)
    return str((created.get("metadata") or {}).get("name") or "")


async def _workflow_steps(
    kube: KubeApi, namespace: str, workflow: str, status: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]] | None:
    """The steps the run executes: the definition it pinned when it started, else its Workflow's
    now; None when neither is there to read."""
    pinned = status.get("workflowSpec")
    if not isinstance(pinned, Mapping):
        found = await kube.get(API_VERSION, "Workflow", namespace, workflow) if workflow else None
        pinned = (found or {}).get("spec")
    steps = pinned.get("steps") if isinstance(pinned, Mapping) else None
    return [s for s in steps if isinstance(s, Mapping)] if isinstance(steps, list) else None


def check_approval_step(steps: Sequence[Mapping[str, Any]], step: str, *, workflow: str) -> None:
    """DecisionError unless `step` is an approval step among `steps` (a Workflow's)."""
    found = next((s for s in steps if s.get("name") == step), None)
    if found is None:
        names = ", ".join(str(s.get("name")) for s in steps)
        raise DecisionError(f"Workflow {workflow!r} has no step {step!r} (its steps: {names})")
    if "approval" not in found:
        raise DecisionError(
            f"step {step!r} of Workflow {workflow!r} is not an approval step: it calls "
            f"ServiceStep {found.get('stepRef')!r}, and no person decides it"
        )


def describe_not_waiting(run: str, step: str, status: Mapping[str, Any]) -> str:
    """Why a decision on `step` would not be honoured now, as the run's status tells."""
    phase = status.get("phase") or "Pending"
    record = find_step_record(status, step)
    where = f"its step is {record.get('phase')}" if record else "the step has not started"
    return (
        f"WorkflowRun {run!r} is not waiting at step {step!r} (run {phase}, {where}): an "
        "Approval made now would not be honoured; decide once the run shows it waiting "
        "(kubectl get wfrun)"
    )
