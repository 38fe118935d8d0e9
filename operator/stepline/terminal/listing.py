"""`stepline runs`: the WorkflowRuns of a namespace (or of all) as a table, newest last, and
with `watch` the rows that change as they change, as `kubectl get -w` prints them.

A watched row is printed again when its workflow, phase or step count changes, or when the run
is deleted (with phase `Deleted`); not for every status write (a run's estimated completion
moves without anything a person reads changing). The watch goes on until the caller cancels it
(Ctrl-C: `cli.py` ends with 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO

from stepline.kube import KubeApi
from stepline.terminal.following import list_runs, watch_runs
from stepline.terminal.tables import (
    HEADERS,
    RunRow,
    build_run_row,
    column_widths,
    matches,
    render_line,
    render_table,
    select_runs,
)

# The narrowest columns of a watched table, whose later rows may be wider than its first ones.
WATCH_WIDTHS = dict(zip(HEADERS, (16, 28, 16, 12, 5, 5, 8), strict=True))


async def show_runs(
    kube: KubeApi,
    namespace: str | None,
    *,
    workflow: str | None,
    phase: str | None,
    watch: bool,
    out: TextIO,
    err: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Prints the table (and with `watch` the changes) to `out`, or to `err` that there is no
    run (as kubectl does: a script reading `out` gets nothing); the exit code, 0."""
    listed, version = await list_runs(kube, namespace)
    runs = select_runs(listed, workflow=workflow, phase=phase)
    moment = now()
    rows = [build_run_row(run, now=moment) for run in runs]
    every = namespace is None
    if not rows and not watch:
        where = "any namespace" if every else f"namespace {namespace}"
        print(f"No WorkflowRuns found in {where}.", file=err)
        return 0
    if not watch:
        print("\n".join(render_table(rows, all_namespaces=every)), file=out)
        return 0
    headers = HEADERS if every else HEADERS[1:]
    widths = column_widths(rows, all_namespaces=every)
    widths = [max(width, WATCH_WIDTHS[h]) for width, h in zip(widths, headers, strict=True)]
    print(render_line(headers, widths), file=out)
    for row in rows:
        print(render_line(row.cells(all_namespaces=every), widths), file=out, flush=True)
    await follow_rows(
        kube, namespace, version=version, rows=rows, widths=widths,
        selection=(workflow, phase), out=out, now=now,
    )  # fmt: skip
    return 0


async def follow_rows(
    kube: KubeApi,
    namespace: str | None,
    *,
    version: str,
    rows: list[RunRow],
    widths: list[int],
    selection: tuple[str | None, str | None],
    out: TextIO,
    now: Callable[[], datetime],
) -> None:
    """Prints a row for each change a person would see, for ever."""
    every = namespace is None
    shown = {(row.namespace, row.name): row.state for row in rows}
    workflow, phase = selection
    async for kind, body in watch_runs(kube, namespace, resource_version=version):
        row = build_run_row(body, now=now())
        key = (row.namespace, row.name)
        if kind == "DELETED":
            if shown.pop(key, None) is None:
                continue
            row = replace(row, phase="Deleted")
        elif not matches(body, workflow=workflow, phase=phase) or shown.get(key) == row.state:
            continue
        else:
            shown[key] = row.state
        print(render_line(row.cells(all_namespaces=every), widths), file=out, flush=True)
