"""A failed run submitted again as a rerun: what `stepline rerun` does once its arguments are
parsed.

It reads the run, refuses what the operator would never rerun (a run that does not exist, or
has not ended Failed or Cancelled), and creates a new WorkflowRun with `spec.rerunOf` naming it
and the same `workflowRef` and `input`, named `<run>-r<N>` with the first N not taken (a rerun
of a rerun `<stem>-r<K>` is named `<stem>-r<N>`: one chain, one stem), or as the caller says.
The operator checks the rest (docs/operator.md, "Rerun") and fails the new run, naming the
cause, when it cannot rerun the source.

Errors (errors.py):

    RerunError           the run cannot be rerun, or the name is taken: nothing was created
    KubeApiError         the API server refused (403: no permission; 422: invalid) or did not
                         answer (`status` 0)
    ConfigurationError   no credentials (no kubeconfig, not in a pod)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from stepline.api import API_VERSION
from stepline.errors import KubeConflictError, RerunError
from stepline.kube import KubeApi

RERUNNABLE_PHASES = ("Failed", "Cancelled")
# Names `<stem>-r1` … tried before giving up: a chain is rerun a few times, not hundreds.
MAX_RERUN_NUMBER = 100
MAX_RUN_NAME_LENGTH = 253
_RERUN_NAME = re.compile(r"(?P<stem>.+)-r[0-9]+")


async def create_rerun(kube: KubeApi, namespace: str, run: str, *, name: str | None) -> str:
    """Creates the rerun of `run` (named `name`, else the next free `<stem>-r<N>`); its name."""
    source = await kube.get(API_VERSION, "WorkflowRun", namespace, run)
    if source is None:
        raise RerunError(f"WorkflowRun {run!r} not found in namespace {namespace!r}")
    check_rerunnable(run, source)
    if name is not None:
        try:
            await kube.create(build_rerun_manifest(namespace, source, name=name))
        except KubeConflictError as exc:
            raise RerunError(
                f"WorkflowRun {name!r} exists already in namespace {namespace!r}; give another "
                "--name"
            ) from exc
        return name
    for candidate in rerun_names(run, source):
        try:
            await kube.create(build_rerun_manifest(namespace, source, name=candidate))
        except KubeConflictError:
            continue  # taken: the next number
        return candidate
    raise RerunError(
        f"no free name for a rerun of {run!r} among {MAX_RERUN_NUMBER} tried; give one with --name"
    )


def check_rerunnable(run: str, source: Mapping[str, Any]) -> None:
    """RerunError unless `source` (the run `run`) ended Failed or Cancelled."""
    phase = (source.get("status") or {}).get("phase") or "Pending"
    if phase in RERUNNABLE_PHASES:
        return
    if phase == "Succeeded":
        raise RerunError(
            f"WorkflowRun {run!r} succeeded: there is nothing to rerun; create a new run to run "
            "the workflow again"
        )
    raise RerunError(
        f"WorkflowRun {run!r} is {phase}: only a Failed or Cancelled run is rerun; wait for it "
        "to end, or cancel it (spec.cancel: true)"
    )


def rerun_names(run: str, source: Mapping[str, Any]) -> Iterator[str]:
    """The names a rerun of `run` may take, in order: `<stem>-r1`, `<stem>-r2`, … where the stem
    is `run`, or, for a run that is itself a rerun named `<stem>-r<K>`, that stem."""
    stem = run
    matched = _RERUN_NAME.fullmatch(run)
    if (source.get("spec") or {}).get("rerunOf") and matched:
        stem = matched.group("stem")
    for number in range(1, MAX_RERUN_NUMBER + 1):
        name = f"{stem}-r{number}"
        if len(name) > MAX_RUN_NAME_LENGTH:
            raise RerunError(
                f"a rerun of {run!r} would be named {name[:40]}… ({len(name)} characters, at most "
                f"{MAX_RUN_NAME_LENGTH}); give a name with --name"
            )
        yield name


def build_rerun_manifest(namespace: str, source: Mapping[str, Any], *, name: str) -> dict[str, Any]:
    """The new WorkflowRun: `rerunOf` the source, with its `workflowRef` and `input` as they are."""
    spec = source.get("spec") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "workflowRef": spec.get("workflowRef"),
            "input": spec.get("input", {}),
            "rerunOf": (source.get("metadata") or {}).get("name"),
        },
    }
