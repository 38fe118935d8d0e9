"""`stepline cancel RUN`: sets the run's `spec.cancel: true` (a merge patch), as `kubectl patch`
would. The operator then starts no new step, lets the calls in flight end, undoes what has a
compensation, and ends the run Cancelled (docs/operator.md).

A run that has finished is refused (`RefusedError`, naming its phase): a cancel would change
nothing, and the API server keeps `cancel` once set. Asking again for a run whose cancel is
already requested is not an error.
"""

from __future__ import annotations

from stepline.api import API_VERSION
from stepline.kube import KubeApi
from stepline.terminal.describing import read
from stepline.terminal.errors import RefusedError

FINISHED = ("Succeeded", "Failed", "Cancelled")


async def cancel_run(kube: KubeApi, namespace: str, name: str) -> str:
    """Requests the cancel; what to print."""
    run = await read(kube, "WorkflowRun", namespace, name)
    phase = (run.get("status") or {}).get("phase") or "Pending"
    if phase in FINISHED:
        raise RefusedError(f"WorkflowRun {name!r} is already {phase}: there is nothing to cancel")
    await kube.merge_patch(API_VERSION, "WorkflowRun", namespace, name, {"spec": {"cancel": True}})
    return f"workflowrun.stepline.io/{name} cancel requested"
