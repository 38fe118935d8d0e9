"""Durable runs: WorkflowRuns of a 3-step echo workflow created back to back, run by an operator
process with checkpointing as it does it (status after every step), on a local control plane.

    .venv/bin/python bench/runs/bench.py --kubeconfig .stepline/bench/kubeconfig [--runs 300]

The echo services run in a child process (`../overhead/echo.py`), the operator in another, its
steps overridden to them (`../harness.py`). Runs are created by `--creators` threads through the
Kubernetes API; a watch notes when each run reaches a final phase. Reported: runs/s completed
(first create to last Succeeded), creation rate, each run's latency (creation to Succeeded, by
this process's clock) and per-step duration from status; the API server's requests during the
phase (apiserver_request_total) and the CPU seconds of the operator and of each control-plane
process, with a `top` snapshot taken mid-run. Results are recorded in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "overhead"))
import harness
from echo import EchoServices
from measuring import PAYLOAD, quantile

GROUP, VERSION, PLURAL = "stepline.io", "v1alpha1", "workflowruns"
STEPS = 3
FINAL = {"Succeeded", "Failed", "Cancelled"}


def apiserver_requests(kubeconfig: str) -> Counter[str]:
    """apiserver_request_total by verb and resource (watches and metrics left out)."""
    return harness.count_requests(harness.kubectl(kubeconfig, "get", "--raw", "/metrics"))


def run_body(index: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": f"run-{index:05d}"},
        "spec": {"workflowRef": f"echo-{STEPS}", "input": PAYLOAD},
    }


class Finishes:
    """A watch on the namespace's WorkflowRuns: when (by this clock) each reached a final phase."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        self.at: dict[str, float] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._follow, args=(custom, namespace), daemon=True)
        self._thread.start()

    def _follow(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        stream = self._watch.stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
        )
        try:
            for event in stream:
                body = event["object"]
                name = body["metadata"]["name"]
                if body.get("status", {}).get("phase") in FINAL and name not in self.at:
                    self.at[name] = time.monotonic()
                    self.objects[name] = body
        except ProtocolError:  # the connection closed by stop()
            return

    def stop(self) -> None:
        self._watch.stop()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    return {name: harness.process_cpu(pid) for name, pid in pids.items()}


def top_snapshot(pids: dict[str, int]) -> str:
    wanted = ",".join(str(pid) for pid in pids.values())
    done = subprocess.run(
        ["top", "-b", "-n1", "-p", wanted], check=False, capture_output=True, text=True
    )
    return done.stdout


def bench(
    kubeconfig: str,
    runs: int,
    creators: int,
    timeout: float,
    *,
    profile: str,
    checkpoint_interval: float,
    source: Path | None = None,
) -> None:
    config.load_kube_config(config_file=kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = creators * 2
    custom = client.CustomObjectsApi(client.ApiClient(configuration))
    with (
        EchoServices(STEPS) as services,
        harness.echo_namespace(
            kubeconfig,
            STEPS,
            [STEPS],
            workflow_spec={"checkpointIntervalSeconds": checkpoint_interval},
        ) as namespace,
        harness.operator(
            kubeconfig,
            namespace,
            services.urls,
            Path(tempfile.gettempdir()) / "stepline-runs-bench.log",
            profile=profile,
            source=source,
        ) as (process, _),
    ):
        pids = {"operator": process.pid, **harness.component_pids(kubeconfig)}
        finishes = Finishes(custom, namespace)
        requests_before = apiserver_requests(kubeconfig)
        cpu_before = cpu_seconds(pids)
        created: dict[str, float] = {}

        def create(index: int) -> None:
            body = run_body(index)
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            created[body["metadata"]["name"]] = time.monotonic()

        started = time.monotonic()
        with ThreadPoolExecutor(creators) as pool:
            list(pool.map(create, range(runs)))
        all_created = time.monotonic()
        snapshot = top_snapshot(pids)
        harness.wait_for(lambda: len(finishes.at) >= runs, timeout, f"{runs} runs finished")
        finished = max(finishes.at.values())
        cpu_after = cpu_seconds(pids)
        requests_after = apiserver_requests(kubeconfig)
        finishes.stop()
        report(
            runs=runs,
            creators=creators,
            started=started,
            all_created=all_created,
            finished=finished,
            created=created,
            finishes=finishes,
        )
        wall = finished - started
        print(f"\nCPU seconds during the phase ({wall:.1f} s wall, 2 cores = {2 * wall:.1f} s):")
        for name in pids:
            used = cpu_after[name] - cpu_before[name]
            print(f"  {name:24s} {used:6.1f} s  {used / runs * 1000:6.2f} ms/run")
        delta = requests_after - requests_before
        total = sum(delta.values())
        print(f"\nAPI requests during the phase: {total} ({total / runs:.1f}/run)")
        for what, count in delta.most_common(12):
            print(f"  {count:7d} {count / runs:5.2f}/run  {what}")
        print(f"\ntop mid-run (after the last create):\n{snapshot}")


def report(
    *,
    runs: int,
    creators: int,
    started: float,
    all_created: float,
    finished: float,
    created: dict[str, float],
    finishes: Finishes,
) -> None:
    phases = Counter(body["status"]["phase"] for body in finishes.objects.values())
    latencies = sorted(finishes.at[name] - created[name] for name in created)
    steps = sorted(
        step["durationSeconds"]
        for body in finishes.objects.values()
        for step in body["status"].get("steps", [])
        if step.get("durationSeconds") is not None
    )
    attempts = Counter(
        step.get("attempts")
        for body in finishes.objects.values()
        for step in body["status"]["steps"]
    )
    print(f"{runs} runs of {STEPS} steps, {creators} creators; phases {dict(phases)}")
    print(f"created in {all_created - started:.2f} s ({runs / (all_created - started):.0f}/s)")
    print(f"completed in {finished - started:.2f} s: {runs / (finished - started):.1f} runs/s")
    p50, p99 = quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000
    print(f"run latency (created → final phase seen) p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(
        "step duration from status "
        f"p50 {quantile(steps, 0.5) * 1000:.1f} ms, p99 {quantile(steps, 0.99) * 1000:.1f} ms "
        f"({len(steps)} steps; attempts {dict(attempts)})"
    )
    sample = next(iter(finishes.objects.values()))["status"]
    print(f"status of one run: {len(json.dumps(sample))} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--creators", type=int, default=8, help="threads creating runs")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=0,
        help="the Workflow's checkpointIntervalSeconds (0: status after every step)",
    )
    parser.add_argument(
        "--profile", default="", help="run the operator under cProfile, its stats to this file"
    )
    parser.add_argument(
        "--operator-source",
        type=Path,
        default=None,
        help="a checkout whose operator/stepline to run instead of this one (an A/B)",
    )
    args = parser.parse_args()
    print(harness.uptime())
    print(f"workflow checkpointIntervalSeconds: {args.checkpoint_interval}")
    bench(
        args.kubeconfig,
        args.runs,
        args.creators,
        args.timeout,
        profile=args.profile,
        checkpoint_interval=args.checkpoint_interval,
        source=args.operator_source,
    )
    print(harness.uptime())


if __name__ == "__main__":
    main()
