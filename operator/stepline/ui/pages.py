"""The web view's pages, rendered from what the caller gathered (`app`): pure, no I/O. Every
value goes through `html` (escaped); the hooks the browser tests use are listed in docs/ui.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepline.api import RunPhase, RunStatistics, StepPhase, Workflow
from stepline.terminal.durations import format_age, format_duration
from stepline.terminal.timelines import build_rows, header_fields, parse_status
from stepline.ui.catalog import RunRow
from stepline.ui.html import Html, facts, join, link, page, table, tag, void
from stepline.ui.queries import PAGE_SIZE, SINCE, RunFilter

WIDE = 400  # characters a timeline cell may hold before it is cut (the terminal's is 100)
INPUT_SHOWN = 4096  # characters of a run's input shown; `kubectl get -o yaml` has it whole
RECENT_RUNS = 10
FINISHED = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED})


@dataclass(frozen=True)
class Action:
    """One button of a run page: enabled, or disabled with the reason."""

    action: str  # cancel, suspend, resume, rerun, approve, reject
    label: str
    reason: str | None = None  # None: enabled
    step: str = ""  # approve and reject: the waiting step


# Links


def workflows_href(namespace: str) -> str:
    return f"/ui/namespaces/{namespace}/workflows"


def workflow_href(namespace: str, name: str) -> str:
    return f"/ui/namespaces/{namespace}/workflows/{name}"


def runs_href(namespace: str, query: str = "") -> str:
    return f"/ui/namespaces/{namespace}/runs" + (f"?{query}" if query else "")


def run_href(namespace: str, name: str) -> str:
    return f"/ui/namespaces/{namespace}/runs/{name}"


def phase_badge(phase: str) -> Html:
    return tag("span", {"class": f"phase phase-{phase.lower()}"}, phase)


def moment(value: datetime | None, now: datetime) -> Html:
    if value is None:
        return Html("-")
    age = format_age((now - value).total_seconds())
    return tag("time", {"datetime": value.isoformat(), "title": value.isoformat()}, f"{age} ago")


# Pages


def home_page(namespaces: Sequence[tuple[str, int]], *, user: str | None) -> bytes:
    rows = (
        tag(
            "tr",
            {"data-namespace": namespace},
            tag("th", {"scope": "row"}, link(workflows_href(namespace), namespace)),
            tag("td", None, str(count)),
            tag("td", None, link(runs_href(namespace), "runs")),
        )
        for namespace, count in namespaces
    )
    body = table(
        "namespaces",
        "Namespaces with workflows you may list",
        ("Namespace", "Workflows", "Runs"),
        rows,
        empty="No namespace holds a workflow you may list.",
    )
    return page("Namespaces", body, user=user)


def workflows_page(
    namespace: str,
    workflows: Sequence[tuple[Workflow, RunStatistics | None]],
    *,
    user: str | None,
    notice: str | None,
) -> bytes:
    """Each workflow with its run statistics (`runs`: as the run watch has them now)."""
    rows = (_workflow_row(namespace, workflow, runs) for workflow, runs in workflows)
    body = join(
        (
            tag("p", None, link(runs_href(namespace), f"All runs in {namespace}")),
            table(
                "workflows",
                f"Workflows in namespace {namespace}",
                (
                    "Workflow",
                    "Ready",
                    "Steps ready",
                    "Runs",
                    "Success rate",
                    "p50",
                    "p90",
                    "p99",
                    "Predicted",
                    "Last run",
                ),
                rows,
                empty=f"No workflow in namespace {namespace}.",
            ),
        )
    )
    crumbs = [(namespace, workflows_href(namespace))]
    return page(f"Workflows in {namespace}", body, user=user, crumbs=crumbs, notice=notice)


def _workflow_row(namespace: str, workflow: Workflow, runs: RunStatistics | None) -> Html:
    name = workflow.metadata.name or ""
    status = workflow.status
    ready = next((c for c in status.conditions if c.type == "Ready"), None) if status else None
    ready_text = "Unknown" if ready is None else str(ready.status)
    ready_cell = tag(
        "td",
        {"class": "ready", "title": ready.message if ready is not None else None},
        tag("span", {"class": f"ready-{ready_text.lower()}"}, ready_text),
        f" ({ready.reason})" if ready is not None and ready_text != "True" else "",
    )
    latency = runs.latency_seconds if runs else None
    rate = runs.success_rate if runs else None
    last = runs.last_run_name if runs else None
    cells = [
        ready_cell,
        tag("td", None, status.steps_ready if status and status.steps_ready else "-"),
        tag("td", None, f"{runs.total} ({runs.active} active)" if runs else "0"),
        tag("td", {"class": "success-rate"}, "-" if rate is None else f"{rate:.0%}"),
        *(
            tag("td", None, format_duration(getattr(latency, q) if latency else None))
            for q in ("p50", "p90", "p99")
        ),
        tag("td", None, format_duration(runs.predicted_duration_seconds if runs else None)),
        tag("td", None, link(run_href(namespace, last), last) if last else "-"),
    ]
    head = tag("th", {"scope": "row"}, link(workflow_href(namespace, name), name))
    return tag("tr", {"data-workflow": name}, head, *cells)


def workflow_page(
    namespace: str,
    workflow: Workflow,
    *,
    graph: Html,
    steps: Iterable[tuple[str, str, str, str, str, str]],
    recent: Sequence[RunRow],
    now: datetime,
    user: str | None,
) -> bytes:
    name = workflow.metadata.name or ""
    step_rows = (
        tag(
            "tr",
            {"data-step": step},
            tag("th", {"scope": "row"}, step),
            *(tag("td", None, cell) for cell in cells),
        )
        for step, *cells in steps
    )
    body = join(
        (
            tag(
                "figure",
                {"id": "graph"},
                graph,
                tag("figcaption", None, "Steps, and what each waits for"),
            ),
            table(
                "steps",
                "Steps",
                ("Step", "ServiceStep", "Replicas ready", "Waits for", "Condition", "Undone by"),
                step_rows,
                empty="The workflow has no step.",
            ),
            tag("h2", None, "Latest runs"),
            _runs_table(namespace, recent, now=now, empty="No run of this workflow yet."),
            tag("p", None, link(runs_href(namespace, f"workflow={name}"), "All its runs")),
        )
    )
    crumbs = [(namespace, workflows_href(namespace)), (name, workflow_href(namespace, name))]
    return page(f"Workflow {name}", body, user=user, crumbs=crumbs)


def runs_page(
    namespace: str,
    rows: Sequence[RunRow],
    *,
    chosen: RunFilter,
    total: int,
    workflows: Sequence[str],
    now: datetime,
    user: str | None,
    notice: str | None,
) -> bytes:
    pages = max(1, -(-total // PAGE_SIZE))
    body = join(
        (
            _filters(chosen, workflows),
            tag("p", {"id": "runs-count"}, f"{total} runs; page {chosen.page} of {pages}"),
            _runs_table(namespace, rows, now=now, empty="No run matches these filters."),
            _paging(namespace, chosen, pages),
        )
    )
    crumbs = [(namespace, workflows_href(namespace)), ("runs", runs_href(namespace))]
    return page(f"Runs in {namespace}", body, user=user, crumbs=crumbs, notice=notice)


def _filters(chosen: RunFilter, workflows: Sequence[str]) -> Html:
    def select(name: str, label: str, options: Iterable[tuple[str, str]], value: str) -> Html:
        choices = (
            tag("option", {"value": key, "selected": key == value}, shown) for key, shown in options
        )
        return tag(
            "div",
            {"class": "field"},
            tag("label", {"for": name}, label),
            tag("select", {"id": name, "name": name}, *choices),
        )

    phases = [("", "any"), *((phase.value, phase.value) for phase in RunPhase)]
    names = [("", "any"), *((name, name) for name in workflows)]
    if chosen.workflow and chosen.workflow not in workflows:
        names.append((chosen.workflow, chosen.workflow))
    ages = [("", "any time"), *((key, f"the last {key}") for key in SINCE)]
    return tag(
        "form",
        {"id": "run-filters", "method": "get", "class": "filters"},
        select("workflow", "Workflow", names, chosen.workflow),
        select("phase", "Phase", phases, chosen.phase.value if chosen.phase else ""),
        select("since", "Created", ages, chosen.since),
        tag("button", {"type": "submit"}, "Filter"),
    )


def _paging(namespace: str, chosen: RunFilter, pages: int) -> Html:
    links = []
    if chosen.page > 1:
        href = runs_href(namespace, chosen.query(page=chosen.page - 1))
        links.append(link(href, "Previous page", rel="prev"))
    if chosen.page < pages:
        href = runs_href(namespace, chosen.query(page=chosen.page + 1))
        links.append(link(href, "Next page", rel="next"))
    return tag("nav", {"aria-label": "Pages", "class": "paging"}, join(links, " "))


def _runs_table(namespace: str, rows: Sequence[RunRow], *, now: datetime, empty: str) -> Html:
    body = (
        tag(
            "tr",
            {"data-run": row.name},
            tag("th", {"scope": "row"}, link(run_href(namespace, row.name), row.name)),
            tag("td", None, link(workflow_href(namespace, row.workflow), row.workflow)),
            tag("td", {"class": "phase"}, phase_badge(row.phase.value)),
            tag("td", None, moment(row.created, now)),
            tag("td", None, format_duration(row.duration_seconds)),
        )
        for row in rows
    )
    headers = ("Run", "Workflow", "Phase", "Created", "Duration")
    return table("runs", "Runs, newest first", headers, body, empty=empty)


def run_page(
    namespace: str,
    run: Mapping[str, Any],
    *,
    actions: Sequence[Action],
    now: datetime,
    user: str | None,
    notice: str | None,
) -> bytes:
    meta, spec = run.get("metadata") or {}, run.get("spec") or {}
    name, workflow = str(meta.get("name", "")), str(spec.get("workflowRef", ""))
    updates = f"{run_href(namespace, name)}/updates"
    finished = _phase(run) in FINISHED
    body = join(
        (
            tag(
                "p",
                {"class": "live"},
                "Updates: ",
                tag("span", {"id": "live", "role": "status"}, "finished" if finished else "live"),
            ),
            tag(
                "div",
                {"id": "run-live", "data-updates": updates, "data-version": _version(run)},
                run_fragment(namespace, run, actions=actions, now=now),
            ),
            tag("h2", None, "Input"),
            tag("pre", {"id": "run-input"}, _json_shown(spec.get("input"))),
        )
    )
    crumbs = [
        (namespace, workflows_href(namespace)),
        (workflow, workflow_href(namespace, workflow)),
        ("runs", runs_href(namespace, f"workflow={workflow}")),
        (name, run_href(namespace, name)),
    ]
    return page(f"Run {name}", body, user=user, crumbs=crumbs, notice=notice)


def run_fragment(
    namespace: str, run: Mapping[str, Any], *, actions: Sequence[Action], now: datetime
) -> Html:
    """What a run page replaces as the run goes on: its facts, its timeline, its actions."""
    status = parse_status(run)
    pairs = header_fields(run, status, now=now, width=WIDE)
    shown = status.phase.value
    badge = tag("span", {"class": f"phase phase-{shown.lower()}", "id": "run-phase"}, shown)
    fact_list = facts(
        (
            (label, join((badge, value.removeprefix(shown))) if label == "Phase" else value)
            for label, value in pairs
            if label != "Run"
        ),
        element_id="run-facts",
    )
    rows = []
    for row in build_rows(status, now=now, width=WIDE):
        step, phase, start, took, attempts, result = row.cells
        details = tag("ul", {"class": "details"}, *(tag("li", None, d) for d in row.details))
        rows.append(
            tag(
                "tr",
                {"data-step": step, "class": f"step-{phase.lower()}"},
                tag("th", {"scope": "row"}, step),
                tag("td", {"class": "phase"}, phase_badge(phase)),
                tag("td", {"class": "start"}, start),
                tag("td", {"class": "duration"}, took),
                tag("td", {"class": "attempts"}, attempts),
                tag(
                    "td",
                    {"class": "result"},
                    tag("code", None, result),
                    details if row.details else "",
                ),
            )
        )
    timeline = table(
        "timeline",
        "Steps in the order they started",
        ("Step", "Phase", "Start", "Duration", "Attempts", "Output or error"),
        rows,
        empty="No step has started yet.",
    )
    return join((fact_list, timeline, _actions(namespace, run, actions)))


def _actions(namespace: str, run: Mapping[str, Any], actions: Sequence[Action]) -> Html:
    name = str((run.get("metadata") or {}).get("name", ""))
    buttons = []
    for action in actions:
        why = f"why-{action.action}"
        button = tag(
            "button",
            {
                "type": "submit",
                "name": "action",
                "value": action.action,
                "disabled": action.reason is not None,
                "aria-describedby": why if action.reason is not None else None,
            },
            action.label,
        )
        fields = [button]
        if action.step:
            fields.append(void("input", {"type": "hidden", "name": "step", "value": action.step}))
        if action.reason is not None:
            fields.append(tag("span", {"id": why, "class": "why"}, action.reason))
        buttons.append(
            tag(
                "form",
                {
                    "method": "post",
                    "action": f"{run_href(namespace, name)}/actions",
                    "class": "action",
                },
                *fields,
            )
        )
    return tag(
        "section", {"id": "actions", "aria-labelledby": "actions-title"},
        tag("h2", {"id": "actions-title"}, "Actions"), *buttons,
    )  # fmt: skip


def updates_answer(
    namespace: str,
    run: Mapping[str, Any] | None,
    version: str,
    *,
    actions: Sequence[Action],
    now: datetime,
) -> bytes:
    """A run page's update: JSON with the new version, whether it is still live, and the
    replacement of its `#run-live` (none when the run was deleted)."""
    if run is None:
        return json.dumps({"version": version, "live": "deleted", "html": ""}).encode()
    live = "finished" if _phase(run) in FINISHED else "live"
    fragment = run_fragment(namespace, run, actions=actions, now=now)
    return json.dumps({"version": _version(run), "live": live, "html": fragment}).encode()


def login_page(next_path: str, *, problem: str | None = None) -> bytes:
    body = tag(
        "form",
        {"id": "login", "method": "post", "action": "/ui/login"},
        tag(
            "p",
            None,
            "Paste a Kubernetes bearer token: a ServiceAccount's (",
            tag("code", None, "kubectl create token NAME"),
            ") or your own. You see and do what RBAC lets its user see and do.",
        ),
        tag("label", {"for": "token"}, "Bearer token"),
        tag(
            "textarea",
            {
                "id": "token",
                "name": "token",
                "rows": 6,
                "required": True,
                "autocomplete": "off",
                "spellcheck": "false",
            },
        ),
        void("input", {"type": "hidden", "name": "next", "value": next_path}),
        tag("button", {"type": "submit"}, "Sign in"),
    )
    return page("Sign in", body, user=None, problem=problem)


def problem_page(title: str, message: str, *, user: str | None, back: str | None = None) -> bytes:
    body = tag("p", None, link(back, "Back")) if back else Html("")
    return page(title, body, user=user, problem=message)


def _phase(run: Mapping[str, Any]) -> RunPhase:
    try:
        return RunPhase((run.get("status") or {}).get("phase") or RunPhase.PENDING)
    except ValueError:
        return RunPhase.PENDING


def _version(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("resourceVersion") or "")


def _json_shown(value: Any) -> str:
    if value is None:
        return "(none)"
    shown = json.dumps(value, indent=2, ensure_ascii=False)
    if len(shown) <= INPUT_SHOWN:
        return shown
    return shown[:INPUT_SHOWN] + f"\n… ({len(shown)} characters in all; kubectl has it whole)"


def has_approval_steps(run: Mapping[str, Any]) -> bool:
    """Whether the definition the run pinned has a step a person decides."""
    spec = (run.get("status") or {}).get("workflowSpec") or {}
    steps = spec.get("steps") if isinstance(spec, Mapping) else None
    return any(isinstance(s, Mapping) and "approval" in s for s in steps or ())


def waiting_steps(run: Mapping[str, Any]) -> list[str]:
    """The steps of the run waiting for a person's approval."""
    steps = (run.get("status") or {}).get("steps") or ()
    return [str(s.get("name")) for s in steps if s.get("phase") == StepPhase.WAITING.value]
