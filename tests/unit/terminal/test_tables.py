"""`stepline runs`' table: a row per run (workflow, phase, steps done of all, kubectl's age, the
duration so far or in all), oldest first so the newest is last, filtered by workflow and phase,
aligned as kubectl aligns; and the durations and ages it prints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.terminal.durations import format_age, format_duration
from stepline.terminal.tables import build_run_row, render_table, select_runs

NOW = datetime(2026, 12, 7, 6, 10, 0, tzinfo=UTC)


def run(name: str, created: str, *, workflow: str = "trade", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": {"workflowRef": workflow, "input": {}},
        "status": status,
    }


RUNS = [
    run("trade-b", "2026-12-07T06:09:30Z", phase="Running", progress="1/3",
        startedAt="2026-12-07T06:09:31Z"),
    run("trade-a", "2026-12-07T06:00:00Z", phase="Succeeded", progress="3/3",
        durationSeconds=1.25),
    run("city-a", "2026-12-07T06:05:00Z", workflow="city", phase="Failed",
        steps=[{"name": "x", "phase": "Succeeded"}, {"name": "y", "phase": "Failed"}]),
    run("trade-c", "2026-12-07T06:09:59Z"),
]  # fmt: skip


def table(runs: list[dict[str, Any]], *, all_namespaces: bool = False, **chosen: Any) -> list[str]:
    rows = [build_run_row(r, now=NOW) for r in select_runs(runs, **chosen)]
    return render_table(rows, all_namespaces=all_namespaces)


def test_runs_are_a_table_oldest_first_with_steps_age_and_duration() -> None:
    assert table(RUNS) == [
        "NAME      WORKFLOW   PHASE       STEPS   AGE   DURATION",
        "trade-a   trade      Succeeded   3/3     10m   1.25s",
        "city-a    city       Failed      1/2     5m    -",
        "trade-b   trade      Running     1/3     30s   29.0s",
        "trade-c   trade      Pending     -       1s    -",
    ]


def test_all_namespaces_adds_the_namespace_column_first() -> None:
    assert table(RUNS[:1], all_namespaces=True) == [
        "NAMESPACE   NAME      WORKFLOW   PHASE     STEPS   AGE   DURATION",
        "shop        trade-b   trade      Running   1/3     30s   29.0s",
    ]


def test_runs_are_chosen_by_workflow_and_by_phase_in_any_case() -> None:
    assert [line.split()[0] for line in table(RUNS, workflow="trade")[1:]] == [
        "trade-a", "trade-b", "trade-c",
    ]  # fmt: skip
    assert [line.split()[0] for line in table(RUNS, phase="pending")[1:]] == ["trade-c"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.0851, "85ms"), (1.254, "1.25s"), (12.54, "12.5s"), (185, "3m05s"),
     (7440, "2h04m"), (273600, "3d4h")],
)  # fmt: skip
def test_a_duration_keeps_the_precision_its_size_needs(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (119, "119s"), (180, "3m"), (7500, "2h5m"), (36000, "10h"), (400000, "4d")],
)
def test_an_age_is_kubectls(seconds: float, text: str) -> None:
    assert format_age(seconds) == text
