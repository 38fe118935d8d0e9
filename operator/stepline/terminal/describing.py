"""`stepline describe RUN` and `stepline graph WORKFLOW`: read the object, render it
(`timelines`, `graphs`). A run or workflow that is not there is a `RefusedError` naming it and
the namespace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stepline.api import API_VERSION
from stepline.kube import KubeApi
from stepline.terminal.errors import RefusedError
from stepline.terminal.graphs import GraphFormat, render_graph
from stepline.terminal.timelines import render_timeline, terminal_width


async def describe_run(kube: KubeApi, namespace: str, name: str, *, now: datetime) -> str:
    """The run's step timeline."""
    run = await read(kube, "WorkflowRun", namespace, name)
    return render_timeline(run, now=now, width=terminal_width())


async def draw_workflow(kube: KubeApi, namespace: str, name: str, *, fmt: GraphFormat) -> str:
    """The workflow's steps and dependencies, drawn in `fmt`."""
    return render_graph(await read(kube, "Workflow", namespace, name), fmt=fmt)


async def read(kube: KubeApi, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found = await kube.get(API_VERSION, kind, namespace, name)
    if found is None:
        raise RefusedError(f"{kind} {name!r} not found in namespace {namespace!r}")
    return found
