"""`stepline start WORKFLOW`: a new WorkflowRun of a Workflow, and with `--wait` its end.

It refuses, creating nothing, a Workflow that is not there (`RefusedError`) and a name that is
taken; the input was checked before (`inputs.parse_run_input`). The run is created with
`generateName: <workflow>-` unless named, and its name printed as kubectl prints what it
creates. With `wait`, it then follows the run (a watch of that one run) until it is Succeeded,
Failed or Cancelled, prints its step timeline, and ends 0 only if it succeeded; past `timeout`
seconds it stops following (the run goes on) and ends 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from stepline.api import API_VERSION
from stepline.errors import KubeConflictError
from stepline.kube import KubeApi
from stepline.terminal.errors import REFUSED, RefusedError
from stepline.terminal.following import watch_runs
from stepline.terminal.timelines import render_timeline, terminal_width

FINISHED = ("Succeeded", "Failed", "Cancelled")
# The longest generateName prefix: the API server appends 5 characters to it, within 63.
MAX_PREFIX = 58


def build_run_manifest(
    namespace: str, workflow: str, run_input: Mapping[str, Any], *, name: str | None = None
) -> dict[str, Any]:
    """The new WorkflowRun: named `name`, else `<workflow>-` and five random characters."""
    meta: dict[str, Any] = {"namespace": namespace}
    if name is not None:
        meta["name"] = name
    else:
        meta["generateName"] = f"{workflow[: MAX_PREFIX - 1]}-"
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": meta,
        "spec": {"workflowRef": workflow, "input": dict(run_input)},
    }


async def create_run(
    kube: KubeApi,
    namespace: str,
    workflow: str,
    run_input: Mapping[str, Any],
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """Creates the run once its Workflow is found; the created object."""
    if await kube.get(API_VERSION, "Workflow", namespace, workflow) is None:
        raise RefusedError(f"Workflow {workflow!r} not found in namespace {namespace!r}")
    try:
        return await kube.create(build_run_manifest(namespace, workflow, run_input, name=name))
    except KubeConflictError as exc:
        raise RefusedError(
            f"WorkflowRun {name!r} exists already in namespace {namespace!r}; give another --name"
        ) from exc


async def wait_for_end(
    kube: KubeApi, namespace: str, run: Mapping[str, Any], *, timeout: float | None
) -> dict[str, Any]:
    """The run once it has finished (as watched from `run`, the object as created);
    `TimeoutError` after `timeout` seconds, `RefusedError` if it is deleted meanwhile."""
    meta = run.get("metadata") or {}
    name = str(meta.get("name"))
    if phase_of(run) in FINISHED:
        return dict(run)
    async with asyncio.timeout(timeout):
        async for kind, body in watch_runs(
            kube,
            namespace,
            resource_version=str(meta.get("resourceVersion") or ""),
            field_selector=f"metadata.name={name}",
        ):
            if kind == "DELETED":
                raise RefusedError(f"WorkflowRun {name!r} was deleted before it finished")
            if phase_of(body) in FINISHED:
                return body
    raise RefusedError(f"WorkflowRun {name!r}: the watch ended before the run did")


async def start(
    kube: KubeApi,
    namespace: str,
    *,
    workflow: str,
    run_input: Mapping[str, Any],
    name: str | None,
    wait: bool,
    timeout: float | None,
    out: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """The command: creates, prints, and with `wait` follows; the exit code."""
    created = await create_run(kube, namespace, workflow, run_input, name=name)
    run_name = str((created.get("metadata") or {}).get("name"))
    print(f"workflowrun.stepline.io/{run_name} created", file=out, flush=True)
    if not wait:
        return 0
    try:
        finished = await wait_for_end(kube, namespace, created, timeout=timeout)
    except TimeoutError:
        raise RefusedError(
            f"WorkflowRun {run_name!r} has not finished after {timeout:g} s; it goes on: "
            f"stepline describe {run_name} -n {namespace}"
        ) from None
    print(file=out)
    print(render_timeline(finished, now=now(), width=terminal_width()), end="", file=out)
    return 0 if phase_of(finished) == "Succeeded" else REFUSED


def phase_of(run: Mapping[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or "Pending")
