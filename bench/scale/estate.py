"""Stepline at ten times the first wave's scale (issue 19): one operator, one namespace holding
1,000 ServiceSteps (half `image`, half `url`) and 1,000 one-step Workflows, then runs on top.

Not a test: it prints measurements, recorded with the machine's conditions in RESULTS.md. The
phases run in this order on one estate, each named on the command line or skipped:

    estate   create the 1,000 steps and 1,000 Workflows at once under a fresh operator: time
             until all are Ready; the operator's RSS, CPU and API requests until then
    rest     a minute at rest: the operator's requests per second (its own counter,
             stepline_api_requests_total) and the API server's (every client)
    burst    1,000 WorkflowRuns at once, one per Workflow: time until all finished, requests
    flood    10,000 WorkflowRuns at once, ten per Workflow: all finish (none lost), the peak
             RSS, and the RSS with 10,000 finished runs retained (each Workflow keeps its 10
             latest succeeded runs by default)
    limits   50 runs at once of a 50-step Workflow (the API's largest) with a 64 KiB input
             that each step echoes: time, the largest run status, the RSS peak
    restart  100 runs of a slow step in flight; the operator stopped (SIGTERM) and a new one
             started: time until it has reconciled every ServiceStep and Workflow and re-sent
             the 100 calls (their runs resumed), its requests meanwhile, its RSS after
    floor    the operator stopped: the API server's requests per second at rest without it

Image steps' calls go to a local echo service (STEPLINE_ENDPOINT_OVERRIDES), url steps name it
directly: the runs really call a step. Run against a local control plane without client rate
limits and with nodes for 500 pods, CRDs applied:

    STEPLINE_QPS_LIMITS=off STEPLINE_NODES=8 STEPLINE_CLUSTER=noqps \\
        STEPLINE_STATE=$PWD/.stepline/noqps hack/cluster-up.sh
    .stepline/noqps/bin/kubectl --kubeconfig .stepline/noqps/kubeconfig apply --server-side -f crds/
    .venv/bin/python bench/scale/estate.py --kubeconfig .stepline/noqps/kubeconfig --out /tmp/scale

`--inspect FILE`: the operator writes a memory report (objects by type, allocator arenas) to
FILE before it stops (bench/steps/inspected_operator.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "overhead"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runs"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "steps"))
import bench as steps  # bench/steps/bench.py: operator process, API client, CPU meter
from echo import EchoServices
from probes import Phases
from slowstep import SlowStep

from stepline.api.workflows import MAX_STEPS

GROUP, VERSION = "stepline.io", "v1alpha1"
SLOW_WORKFLOW = "slow"
WIDEST_WORKFLOW = "widest"
MIB = 1024


def step_manifest(index: int, url: str) -> dict[str, Any]:
    """Even indexes are `image` steps (a Deployment, Service and HPA each; minReplicas 1), odd
    ones `url` steps reached at the echo service."""
    spec: dict[str, Any] = (
        {"image": steps.IMAGE, "scaling": {"minReplicas": 1, "maxReplicas": 3}}
        if index % 2 == 0
        else {"url": f"{url}"}
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceStep",
        "metadata": {"name": step_name(index)},
        "spec": spec,
    }


def step_name(index: int) -> str:
    return f"step-{index:04d}"


def workflow_manifest(name: str, step: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "only", "stepRef": step}]},
    }


def workflow_name(index: int) -> str:
    return f"flow-{index:04d}"


def run_manifest(name: str, workflow: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": workflow, "input": {"n": name}},
    }


def create_all(api: steps.Api, namespace: str, plural: str, bodies: list[dict[str, Any]]) -> None:
    steps.submit_in_parallel(
        [
            lambda body=body: api.custom.create_namespaced_custom_object(  # type: ignore[misc]
                GROUP, VERSION, namespace, plural, body
            )
            for body in bodies
        ]
    )


def ready_count(api: steps.Api, namespace: str, plural: str) -> int:
    """Objects of `plural` whose Ready condition is True (one list from the watch cache)."""
    items = steps.raw_items(
        api.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural
    )
    return sum(
        any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions(item))
        for item in items
    )


def conditions(item: dict[str, Any]) -> list[dict[str, Any]]:
    return list((item.get("status") or {}).get("conditions") or [])


_REQUESTS = re.compile(r"^stepline_api_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_RECONCILES = re.compile(
    r'^stepline_reconciliations_total\{kind="(?P<kind>\w+)",outcome="success"\} (?P<value>\S+)$'
)


class Scrape:
    """The operator's /metrics, read once: its own API requests and reconciles."""

    def __init__(self, operator: steps.Operator) -> None:
        url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            self.text = response.read().decode()

    def requests(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for line in self.text.splitlines():
            found = _REQUESTS.match(line)
            if found:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
                counts[f"{labels['verb']} {labels['resource']}"] += int(float(found["value"]))
        return counts

    def reconciled(self, kind: str) -> int:
        return sum(
            int(float(found["value"]))
            for line in self.text.splitlines()
            if (found := _RECONCILES.match(line)) and found["kind"] == kind
        )


def describe(delta: Counter[str], seconds: float, top: int = 12) -> str:
    rows = [f"{count:7d} {what}" for what, count in delta.most_common(top)]
    total = sum(delta.values())
    head = f"{total} requests in {seconds:.1f} s = {total / seconds:.2f}/s"
    return head + ("\n      " + "\n      ".join(rows) if rows else "")


class Estate:
    """The namespace, its echo service and its operator; what every phase measures."""

    def __init__(self, api: steps.Api, args: argparse.Namespace, namespace: str) -> None:
        self.api, self.args, self.namespace = api, args, namespace
        self.count = args.steps
        self.echo = EchoServices(1)
        self.slow = SlowStep(args.slow_seconds)
        self.operator = self.new_operator("first")
        self.runs_started = 0

    def new_operator(self, label: str) -> steps.Operator:
        overrides = {step_name(i): self.echo.urls[0] for i in range(0, self.count, 2)}
        environment = {
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides),
            **dict(pair.split("=", 1) for pair in self.args.operator_env),
        }
        return steps.Operator(
            self.namespace, self.args.kubeconfig, Path(self.args.out) / f"operator-{label}.log",
            inspect=self.args.inspect, tracemalloc=self.args.tracemalloc, extra_env=environment,
            profile=self.args.profile,
        ).start()  # fmt: skip

    def rss(self) -> float:
        return self.operator.status("VmRSS") / MIB

    def close(self) -> None:
        self.operator.stop()
        self.echo.close()
        self.slow.close()

    # The phases

    def estate(self) -> None:
        time.sleep(3)  # the watches settle: start-up is not measured
        idle = self.operator.status("VmRSS")
        cpu, scrape = self.operator.cpu_seconds(), Scrape(self.operator)
        server_before = steps.apiserver_requests(self.api)
        started = time.monotonic()
        url = self.echo.urls[0]
        create_all(self.api, self.namespace, "servicesteps", [
            step_manifest(i, url) for i in range(self.count)
        ])  # fmt: skip
        create_all(self.api, self.namespace, "workflows", [
            workflow_manifest(workflow_name(i), step_name(i)) for i in range(self.count)
        ])  # fmt: skip
        created = time.monotonic() - started
        moments = self.wait_all_ready(started)
        seconds = time.monotonic() - started
        server = steps.apiserver_requests(self.api) - server_before
        own = Scrape(self.operator).requests() - scrape.requests()
        rss, hwm = self.operator.settle(self.args.settle)
        print(
            f"estate: {self.count} ServiceSteps (half image, half url) and {self.count} Workflows"
        )
        print(f"  created in {created:.1f} s; all steps Ready {moments['servicesteps']:.1f} s, "
              f"all Workflows Ready {moments['workflows']:.1f} s")  # fmt: skip
        print(f"  operator CPU {self.operator.cpu_seconds() - cpu:.1f} s")
        print(f"  RSS idle {idle / MIB:.1f} MiB; after all Ready and {self.args.settle:.0f} s: "
              f"{rss / MIB:.1f} MiB ({rss * 1.024 / 1000:.1f} MB), "
              f"peak {hwm / MIB:.1f} MiB")  # fmt: skip
        print(f"  operator's requests until Ready: {describe(own, seconds)}")
        print(f"  API server's requests (every client): {sum(server.values())}")

    def wait_all_ready(self, started: float) -> dict[str, float]:
        moments: dict[str, float] = {}
        deadline = started + self.args.timeout
        while len(moments) < 2:
            for plural in ("servicesteps", "workflows"):
                if (
                    plural not in moments
                    and ready_count(self.api, self.namespace, plural) >= self.count
                ):
                    moments[plural] = time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all Ready within {self.args.timeout} s: {moments}")
            self.operator.sample()
            time.sleep(1)
        return moments

    def rest(self, seconds: float) -> None:
        # An image step's status reports its autoscaler's metrics missing once the HPA has said
        # so for a while (a one-off write and Event per step, some 60 s after it appeared):
        # let those pass, so that only what repeats is counted.
        time.sleep(self.args.rest_delay)
        scrape, server_before = Scrape(self.operator), steps.apiserver_requests(self.api)
        cpu = self.operator.cpu_seconds()
        time.sleep(seconds)
        own = Scrape(self.operator).requests() - scrape.requests()
        server = steps.apiserver_requests(self.api) - server_before
        print(f"rest: {seconds:.0f} s with the estate, nothing changing (from "
              f"{self.args.rest_delay:.0f} s after the last phase)")  # fmt: skip
        print(f"  operator's requests: {describe(own, seconds)}")
        print(f"  API server's requests (every client): {describe(server, seconds, top=6)}")
        print(f"  operator CPU {self.operator.cpu_seconds() - cpu:.2f} s; RSS {self.rss():.1f} MiB")

    def runs(self, label: str, per_workflow: int) -> None:
        """`per_workflow` runs of every Workflow at once; waits until all have finished."""
        names = [
            (f"r{self.runs_started + k * self.count + i:06d}", workflow_name(i))
            for k in range(per_workflow)
            for i in range(self.count)
        ]
        self.runs_started += len(names)
        phases = Phases(self.api.custom, self.namespace)
        time.sleep(2)  # the watch has listed
        scrape, server_before = Scrape(self.operator), steps.apiserver_requests(self.api)
        cpu, started = self.operator.cpu_seconds(), time.monotonic()
        self.operator.rss_peak_kib = 0
        create_all(self.api, self.namespace, "workflowruns", [run_manifest(*n) for n in names])
        created = time.monotonic() - started
        wanted = {name for name, _ in names}

        def finished() -> Counter[str]:
            seen = dict(phases.phase)
            return Counter(seen.get(name, "New") for name in wanted)

        deadline = started + self.args.timeout
        while (counts := finished())["Succeeded"] + counts["Failed"] < len(wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{label}: not all finished within {self.args.timeout} s: {counts}"
                )
            self.operator.sample()
            time.sleep(1)
        seconds = time.monotonic() - started
        phases.stop()
        own = Scrape(self.operator).requests() - scrape.requests()
        server = steps.apiserver_requests(self.api) - server_before
        peak = self.operator.rss_peak_kib
        rss, _ = self.operator.settle(self.args.settle)
        retained = len(steps.raw_items(
            self.api.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
            "workflowruns",
        ))  # fmt: skip
        print(f"{label}: {len(names)} WorkflowRuns at once ({per_workflow} per Workflow)")
        print(f"  created in {created:.1f} s; all finished after {seconds:.1f} s "
              f"({len(names) / seconds:.1f} runs/s): {dict(counts)}")  # fmt: skip
        print(f"  operator CPU {self.operator.cpu_seconds() - cpu:.1f} s")
        print(f"  RSS peak (sampled each second) {peak / MIB:.1f} MiB; {self.args.settle:.0f} s "
              f"after: {rss / MIB:.1f} MiB; {retained} runs retained")  # fmt: skip
        print(f"  operator's requests: {describe(own, seconds)}")
        print(f"  API server's requests (every client): {sum(server.values())} "
              f"= {sum(server.values()) / seconds:.1f}/s")  # fmt: skip

    def restart(self) -> None:
        """100 runs in flight on the slow step; a new operator takes them over."""
        create_all(self.api, self.namespace, "servicesteps", [{
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceStep",
            "metadata": {"name": SLOW_WORKFLOW}, "spec": {"url": self.slow.url},
        }])  # fmt: skip
        create_all(self.api, self.namespace, "workflows", [
            workflow_manifest(SLOW_WORKFLOW, SLOW_WORKFLOW) | {"spec": {
                "steps": [{"name": "only", "stepRef": SLOW_WORKFLOW}], "concurrency": 100,
            }}
        ])  # fmt: skip
        steps._wait(
            lambda: ready_count(self.api, self.namespace, "workflows") >= self.count + 1,
            120, "the slow Workflow Ready",
        )  # fmt: skip
        runs = [run_manifest(f"slow-{i:03d}", SLOW_WORKFLOW) for i in range(100)]
        create_all(self.api, self.namespace, "workflowruns", runs)
        steps._wait(lambda: len(self.slow.arrivals()) >= 100, 120, "100 slow calls arrived")
        self.operator.stop()
        stopped = time.monotonic()
        server_before = steps.apiserver_requests(self.api)
        self.operator = self.new_operator("restarted")
        started = time.monotonic()
        moments: dict[str, float] = {}
        wanted = {"ServiceStep": self.count + 1, "Workflow": self.count + 1}
        while len(moments) < 3:
            scrape = Scrape(self.operator)
            for kind, count in wanted.items():
                if kind not in moments and scrape.reconciled(kind) >= count:
                    moments[kind] = time.monotonic() - started
            resent = sum(len(times) >= 2 for times in self.slow.arrivals().values())
            if "runs" not in moments and resent >= 100:
                moments["runs"] = time.monotonic() - started
            if time.monotonic() - started > self.args.timeout:
                raise TimeoutError(f"restart: not done within {self.args.timeout} s: {moments}")
            self.operator.sample()
            time.sleep(0.25)
        seconds = time.monotonic() - started
        own = Scrape(self.operator).requests()
        server = steps.apiserver_requests(self.api) - server_before
        rss, hwm = self.operator.settle(self.args.settle)
        print("restart: a new operator (SIGTERM to the old one) on the estate, 100 runs in flight")
        print(f"  old one stopped {started - stopped:.1f} s before the new one answered")
        print(f"  all {wanted['ServiceStep']} ServiceSteps reconciled "
              f"{moments['ServiceStep']:.1f} s, all {wanted['Workflow']} Workflows "
              f"{moments['Workflow']:.1f} s, the 100 runs' "
              f"calls re-sent {moments['runs']:.1f} s after it answered")  # fmt: skip
        print(f"  operator CPU {self.operator.cpu_seconds():.1f} s (start-up included)")
        print(
            f"  RSS {self.args.settle:.0f} s after: {rss / MIB:.1f} MiB, peak {hwm / MIB:.1f} MiB"
        )
        print(f"  operator's requests since its start: {describe(own, seconds)}")
        print(f"  API server's requests (every client): {sum(server.values())}")

    def limits(self, count: int) -> None:
        """`count` runs at once of the largest Workflow the API admits (50 url steps in a
        chain), each with an input near the 64 KiB cap that every step echoes: the outputs are
        recorded as previews (over 16 KiB), the run's status is as large as it gets."""
        chain = [{"name": f"s{k:02d}", "stepRef": step_name(2 * k + 1)} for k in range(MAX_STEPS)]
        create_all(self.api, self.namespace, "workflows", [{
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow",
            "metadata": {"name": WIDEST_WORKFLOW},
            "spec": {"steps": chain, "concurrency": count},
        }])  # fmt: skip
        steps._wait(
            lambda: ready_count(self.api, self.namespace, "workflows") >= self.count + 1,
            120, "the largest Workflow Ready",
        )  # fmt: skip
        # 64 properties of 1,000 characters: 64,5xx bytes of compact JSON, under the cap.
        payload = {f"k{k:02d}": "x" * 1000 for k in range(63)}
        runs = [
            {**run_manifest(f"wide-{i:03d}", WIDEST_WORKFLOW), "spec": {
                "workflowRef": WIDEST_WORKFLOW, "input": payload,
            }}
            for i in range(count)
        ]  # fmt: skip
        before, cpu = self.rss(), self.operator.cpu_seconds()
        self.operator.rss_peak_kib = 0
        started = time.monotonic()
        create_all(self.api, self.namespace, "workflowruns", runs)

        def finished() -> list[dict[str, Any]]:
            items = steps.raw_items(
                self.api.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                "workflowruns",
            )  # fmt: skip
            return [
                item for item in items
                if item["metadata"]["name"].startswith("wide-")
                and (item.get("status") or {}).get("phase") in {"Succeeded", "Failed"}
            ]  # fmt: skip

        while len(done := finished()) < count:
            if time.monotonic() - started > self.args.timeout:
                raise TimeoutError(f"limits: {len(done)} of {count} finished")
            self.operator.sample()
            time.sleep(1)
        seconds = time.monotonic() - started
        phases = Counter(item["status"]["phase"] for item in done)
        largest = max(len(json.dumps(item["status"])) for item in done)
        size = len(json.dumps(payload, separators=(",", ":")))
        print(f"limits: {count} runs at once of a {MAX_STEPS}-step Workflow, input "
              f"{size} bytes echoed by every step")  # fmt: skip
        print(f"  all finished after {seconds:.1f} s: {dict(phases)}; operator CPU "
              f"{self.operator.cpu_seconds() - cpu:.1f} s")  # fmt: skip
        print(f"  largest run status {largest / 1024:.1f} KiB of JSON")
        print(f"  RSS before {before:.1f} MiB, peak {self.operator.rss_peak_kib / MIB:.1f} MiB, "
              f"after {self.rss():.1f} MiB")  # fmt: skip

    def floor(self, seconds: float) -> None:
        self.operator.stop()
        time.sleep(5)
        server_before = steps.apiserver_requests(self.api)
        time.sleep(seconds)
        server = steps.apiserver_requests(self.api) - server_before
        print(f"floor: {seconds:.0f} s at rest without the operator")
        print(f"  API server's requests (every client): {describe(server, seconds, top=6)}")


PHASES: dict[str, Callable[[Estate, argparse.Namespace], None]] = {
    "estate": lambda estate, _: estate.estate(),
    "rest": lambda estate, args: estate.rest(args.rest_seconds),
    "burst": lambda estate, args: estate.runs("burst", max(1, args.burst // estate.count)),
    "flood": lambda estate, args: estate.runs("flood", max(1, args.flood // estate.count)),
    "limits": lambda estate, args: estate.limits(args.limit_runs),
    "restart": lambda estate, _: estate.restart(),
    "floor": lambda estate, args: estate.floor(args.rest_seconds),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", nargs="*", default=list(PHASES), choices=list(PHASES))
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--steps", type=int, default=1000, help="ServiceSteps, and Workflows")
    parser.add_argument("--burst", type=int, default=1000, help="runs of the burst")
    parser.add_argument("--flood", type=int, default=10000, help="runs of the flood")
    parser.add_argument("--rest-seconds", type=float, default=60)
    parser.add_argument("--rest-delay", type=float, default=90, help="seconds before rest")
    parser.add_argument("--limit-runs", type=int, default=50, help="runs of the limits phase")
    parser.add_argument("--slow-seconds", type=float, default=30, help="the slow step's delay")
    parser.add_argument("--settle", type=float, default=10, help="seconds watched after a phase")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per phase")
    parser.add_argument("--profile", type=Path, help="cProfile of the operator, at its stop")
    parser.add_argument("--inspect", type=Path, help="the operator's memory report, at its stop")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --inspect: allocation sites"
    )
    parser.add_argument("--operator-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", default=".", help="folder of the operator logs")
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    api = steps.Api.connect(args.kubeconfig)
    steps.describe_machine()
    steps.check_pod_capacity(api, args.steps // 2)
    with (
        steps.service_ips_for(api, args.steps // 2),
        steps.namespace_for(api, "scale", keep=args.keep) as namespace,
    ):
        estate = Estate(api, args, namespace)
        try:
            for phase in args.phases:
                PHASES[phase](estate, args)
                print(f"  (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
                sys.stdout.flush()
        finally:
            estate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
