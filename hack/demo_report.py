"""Prints what the demo did, for people: `run` reads a WorkflowRun (JSON) on stdin, `invoke` an
invoke answer (body, then the HTTP status on the last line)."""

from __future__ import annotations

import json
import sys


def millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def report_run() -> None:
    status = json.load(sys.stdin)["status"]
    for step in status["steps"]:
        output = json.dumps(step.get("output"))
        took = millis(step.get("durationSeconds"))
        print(f"   {step['name']:<11} {step['phase']:<10} {took:>9}  {output}")
    print(f"   output: {json.dumps(status.get('output'))}")


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
    {"run": report_run, "invoke": report_invoke}[sys.argv[1]]()
