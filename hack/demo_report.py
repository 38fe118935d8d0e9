"""Prints what the demo did, for people: `run` reads a WorkflowRun (JSON) on stdin, `invoke` an
invoke answer (body, then the HTTP status on the last line), `city` the city example's run and
prints its report."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

LONGEST_OUTPUT = 160  # characters of a step's output shown on its line


def millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def since(start: str | None, moment: str | None) -> str:
    """`moment` after `start` (RFC 3339 times) in seconds, as "+1.234 s"; "-" if one is unknown."""
    if start is None or moment is None:
        return "-"
    delta = datetime.fromisoformat(moment) - datetime.fromisoformat(start)
    return f"+{delta.total_seconds():.3f} s"


def shortened(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= LONGEST_OUTPUT else text[: LONGEST_OUTPUT - 1] + "…"


def report_run() -> None:
    status = json.load(sys.stdin)["status"]
    for step in status["steps"]:
        began = since(status.get("startedAt"), step.get("startedAt"))
        took = millis(step.get("durationSeconds"))
        output = shortened(step.get("output"))
        print(f"   {step['name']:<11} {step['phase']:<10} {began:>9} {took:>9}  {output}")
        undo = step.get("compensation")
        if undo:
            print(f"   {'':<11} undone by {undo['stepRef']}: {undo.get('phase', 'Pending')}")
    if status["phase"] == "Succeeded":
        print(f"   output: {shortened(status.get('output'))}")
        return
    condition = next((c for c in status.get("conditions", []) if c["type"] == "Succeeded"), {})
    print(f"   {status['phase']}: {condition.get('message', '')}")


def report_city() -> None:
    report = json.load(sys.stdin)["status"]["output"]
    print(f"   the report: {report['status']}")
    for district in report["districts"]:
        flags = ", ".join(district["flags"]) or "-"
        print(f"     {district['district']:<11} air {district['airCategory']:<9} flags: {flags}")
    for action in report["actions"]:
        print(f"     → {action}")
    print(f"   {report['summary']}")


def report_invoke() -> None:
    body, code = sys.stdin.read().rsplit("\n", 1)
    answer = json.loads(body)
    if code != "200":
        print(f"   {code} {json.dumps(answer['error'])}")
        return
    steps = ", ".join(
        f"{s['name']} {s['phase']} {millis(s['durationSeconds'])}" for s in answer["steps"]
    )
    took = millis(answer["durationSeconds"])
    print(f"   200 in {took} [{steps}] → {json.dumps(answer['output'])}")


if __name__ == "__main__":
    {"run": report_run, "invoke": report_invoke, "city": report_city}[sys.argv[1]]()
