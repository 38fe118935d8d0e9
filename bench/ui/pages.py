"""The web view's speed goals (issue 20, docs/ui.md) on a real operator process and a real
control plane: how fast the runs page and the run page answer with 1,000 runs in the operator's
run index, what the operator spends serving them, and how much memory the view adds.

Not a test: it prints measurements, recorded with the machine's conditions in RESULTS.md.

    latency  one operator with STEPLINE_UI=true (invoke authentication on, the default) and a
             viewer signed in with a ServiceAccount token (get/list on the namespace's Workflows
             and WorkflowRuns): `--requests` rounds, each timing once, in a rotating order and
             over kept-alive connections, the runs page (page 1, a filtered page, the last
             page), two run pages (a finished 3-step run, a running one), and side by side the
             baselines: GET /healthz on the same port, the API server's LIST of the 1,000 runs
             (what `kubectl get wfrun` fetches) and its GET of each shown run (what the run page
             itself reads). Then the operator's CPU seconds per page (/proc/<pid>/stat), each
             page asked `--requests` times in a row; and `kubectl get wfrun` as a process.
    memory   the same estate under a fresh operator with STEPLINE_UI=false, then one with
             STEPLINE_UI=true, `--rounds` times: VmRSS after warm-up, and after `--viewers`
             viewers have each loaded the runs page and a run page `--loads` times while
             keeping one long-poll update request open (the UI-off operator is read at the same
             moments, without viewers).

The estate, in a namespace `bench-ui-<hex>` deleted at the end: url ServiceSteps at a local echo
service (`../overhead/echo.py`), one that answers 404 (its runs fail) and one at a slow service
(`../runs/slowstep.py`, its run stays Running); 1,000 WorkflowRuns of four Workflows that keep
1,000 runs each (retention). Run against a local control plane with the CRDs applied:

    .venv/bin/python bench/ui/pages.py --kubeconfig .stepline/test/kubeconfig \\
        --out /tmp/bench-ui.json

`--profile FILE` runs the latency phase's operator under cProfile (written when it stops).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "overhead"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runs"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "steps"))  # its bench.py first
import bench as steps  # bench/steps/bench.py: API client, process CPU, waits, the machine
from echo import EchoServices
from slowstep import SlowStep

HERE = Path(__file__).resolve().parent

GROUP, VERSION = "stepline.io", "v1alpha1"
API = f"/apis/{GROUP}/{VERSION}"
KEPT = 1000  # runs each Workflow keeps (retention's largest): the 1,000 stay in the index
SLOW_SECONDS = 3000  # the slow step's answer: its run is Running for the whole benchmark
# The runs: (workflow, steps called in a chain, runs). 500 + 300 + 199 + the slow one = 1,000.
MIX = (("chain", ("echo", "echo", "echo"), 500), ("single", ("echo",), 300),
       ("failing", ("echo", "missing"), 199), ("slow", ("slow",), 1))  # fmt: skip
FINISHED = {"Succeeded", "Failed", "Cancelled"}
# Shorter than the default 15 s: each operator of the memory phase takes the namespace's Lease
# within seconds of the previous one's stop (tests/integration/operatorprocess.py does the same).
LEASE_TIMINGS = {
    "STEPLINE_LEASE_DURATION_SECONDS": "6",
    "STEPLINE_LEASE_RENEW_DEADLINE_SECONDS": "4",
    "STEPLINE_LEASE_RETRY_PERIOD_SECONDS": "1",
}
MIB = 1024


# The operator process


def start_operator(
    namespace: str, kubeconfig: str, log_path: Path, *, ui: bool, profile: Path | None = None
) -> steps.Operator:
    """`stepline run` watching one namespace (bench/steps/bench.py's), with the web view on or
    off; returned once ready (its caches warm)."""
    env = {"STEPLINE_UI": "true" if ui else "false", **LEASE_TIMINGS}
    operator = steps.Operator(namespace, kubeconfig, log_path, profile=profile, extra_env=env)
    operator.start()
    ready = f"http://127.0.0.1:{operator.metrics_port}/readyz"
    steps._wait(lambda: steps._answers(ready), 120, "operator ready (caches warm)")
    return operator


# Clients: a browser of the operator's port, and the API server at the HTTP level


class Browser:
    """One viewer's kept-alive connection to the operator's HTTP port, with its cookie."""

    def __init__(self, port: int, cookie: str = "") -> None:
        self.port, self.cookie = port, cookie
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):  # a connection the server closed while idle: once more
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                if method == "POST" and path == "/ui/login":
                    self._take_cookie(response.getheader("Set-Cookie") or "")
                return response.status, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, expect: int = 200) -> bytes:
        status, data = self.request("GET", path)
        if status != expect:
            raise RuntimeError(f"GET {path}: {status} {data[:300]!r}")
        return data

    def sign_in(self, token: str) -> None:
        form = urllib.parse.urlencode({"token": token, "next": "/ui/"}).encode()
        status, data = self.request("POST", "/ui/login", form)
        if status != 303 or not self.cookie:
            raise RuntimeError(f"sign-in: {status} {data[:300]!r}")

    def _take_cookie(self, header: str) -> None:
        pair = header.split(";", 1)[0]
        if pair.startswith("stepline-token=") and len(pair) > len("stepline-token="):
            self.cookie = pair

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class KubeHttp:
    """The API server over one kept-alive TLS pool with the kubeconfig's credentials: a LIST or
    GET timed as its HTTP exchange (body read, not decoded), as the view's own pages are."""

    def __init__(self) -> None:
        configuration = client.Configuration.get_default_copy()
        self.base = configuration.host
        self._pool = urllib3.PoolManager(
            maxsize=4,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
            ca_certs=configuration.ssl_ca_cert,
            cert_reqs="CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE",
        )
        token = (configuration.api_key or {}).get("authorization")
        self._headers = {"Authorization": token} if token else {}

    def get(self, path: str) -> bytes:
        response = self._pool.request("GET", self.base + path, headers=self._headers)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.data[:300]!r}")
        return bytes(response.data)

    def items(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self.get(f"{API}/namespaces/{namespace}/{plural}")
        )["items"]
        return found


# The estate


def service_step(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceStep",
            "metadata": {"name": name}, "spec": {"url": url, **spec}}  # fmt: skip


def workflow(name: str, refs: tuple[str, ...]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": name},
        "spec": {
            "steps": [{"name": f"s{k}", "stepRef": ref} for k, ref in enumerate(refs)],
            "concurrency": 1000, "retention": {"successfulRuns": KEPT, "failedRuns": KEPT},
        },
    }  # fmt: skip


def run_names() -> list[tuple[str, str]]:
    return [(f"{flow}-{i:04d}", flow) for flow, _, count in MIX for i in range(count)]


def create(api: steps.Api, namespace: str, plural: str, bodies: list[dict[str, Any]]) -> None:
    steps.submit_in_parallel([
        lambda body=body: api.custom.create_namespaced_custom_object(  # type: ignore[misc]
            GROUP, VERSION, namespace, plural, body
        )
        for body in bodies
    ])  # fmt: skip


def viewer_token(api: steps.Api, namespace: str) -> str:
    """A ServiceAccount allowed to get and list the namespace's Workflows, ServiceSteps and
    WorkflowRuns (and nothing else: each action button is refused by RBAC, as a viewer's is),
    and a token of it from the TokenRequest API."""
    rbac = client.RbacAuthorizationV1Api(api.core.api_client)
    api.core.create_namespaced_service_account(namespace, {"metadata": {"name": "viewer"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "web-viewer"},
        "rules": [{"apiGroups": [GROUP], "verbs": ["get", "list", "watch"],
                   "resources": ["workflows", "workflowruns", "servicesteps"]}],
    })  # fmt: skip
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "viewer-views"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
    })  # fmt: skip
    request = {"spec": {"expirationSeconds": 8 * 3600}}
    answer = api.core.create_namespaced_service_account_token("viewer", namespace, request)
    return str(answer.status.token)


@dataclass
class Estate:
    namespace: str
    token: str
    finished_run: str  # of the 3-step chain
    running_run: str


def build_estate(
    api: steps.Api, kube: KubeHttp, namespace: str, args: argparse.Namespace, *,
    echo: EchoServices, slow: SlowStep,
) -> Estate:  # fmt: skip
    """The steps, Workflows and 1,000 runs, run to their end (but the slow one) by an operator
    that is stopped afterwards."""
    url = echo.urls[0]
    create(api, namespace, "servicesteps", [
        service_step("echo", url), service_step("missing", url + "missing"),
        service_step("slow", slow.url, timeoutSeconds=3600),
    ])  # fmt: skip
    create(api, namespace, "workflows", [workflow(name, refs) for name, refs, _ in MIX])
    token = viewer_token(api, namespace)
    operator = start_operator(namespace, args.kubeconfig, args.logs / "operator-estate.log",
                              ui=False)  # fmt: skip
    try:
        steps._wait(lambda: ready(kube, namespace, "workflows") >= len(MIX), 120,
                    "every Workflow Ready")  # fmt: skip
        names = run_names()
        started = time.monotonic()
        create(api, namespace, "workflowruns", [
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowRun",
             "metadata": {"name": name}, "spec": {"workflowRef": flow, "input": {"n": name}}}
            for name, flow in names
        ])  # fmt: skip
        created = time.monotonic() - started
        steps._wait(lambda: settled(kube, namespace) >= len(names), args.timeout,
                    "all runs finished but the slow one")  # fmt: skip
        phases: dict[str, int] = {}
        for item in kube.items(namespace, "workflowruns"):
            phase = (item.get("status") or {}).get("phase", "New")
            phases[phase] = phases.get(phase, 0) + 1
        print(f"estate: {len(names)} runs created in {created:.1f} s, settled after "
              f"{time.monotonic() - started:.1f} s: {phases}")  # fmt: skip
    finally:
        operator.stop()
    return Estate(namespace, token, finished_run="chain-0000", running_run="slow-0000")


def ready(kube: KubeHttp, namespace: str, plural: str) -> int:
    return sum(
        any(c.get("type") == "Ready" and c.get("status") == "True"
            for c in (item.get("status") or {}).get("conditions") or ())
        for item in kube.items(namespace, plural)
    )  # fmt: skip


def settled(kube: KubeHttp, namespace: str) -> int:
    """Runs finished, and the slow one once Running."""
    count = 0
    for item in kube.items(namespace, "workflowruns"):
        phase = (item.get("status") or {}).get("phase")
        count += phase in FINISHED or (item["metadata"]["name"].startswith("slow") and
                                       phase == "Running")  # fmt: skip
    return count


# Statistics


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return ordered[max(int(q * len(ordered) + 0.999999), 1) - 1] * 1000

    mean = sum(ordered) / len(ordered)
    return {"n": len(ordered), "p50_ms": rank(0.5), "p95_ms": rank(0.95),
            "max_ms": ordered[-1] * 1000, "mean_ms": mean * 1000}  # fmt: skip


# The latency phase


def page_paths(estate: Estate) -> dict[str, str]:
    ns = estate.namespace
    last = -(-len(run_names()) // 50)
    return {
        "runs page 1": f"/ui/namespaces/{ns}/runs",
        "runs filtered": f"/ui/namespaces/{ns}/runs?workflow=chain&phase=Succeeded&page=2",
        "runs last page": f"/ui/namespaces/{ns}/runs?page={last}",
        "run finished": f"/ui/namespaces/{ns}/runs/{estate.finished_run}",
        "run running": f"/ui/namespaces/{ns}/runs/{estate.running_run}",
    }


def latency(estate: Estate, args: argparse.Namespace, kube: KubeHttp) -> dict[str, Any]:
    operator = start_operator(estate.namespace, args.kubeconfig,
                              args.logs / "operator-latency.log", ui=True,
                              profile=args.profile)  # fmt: skip
    try:
        return measure_latency(operator, estate, args, kube)
    finally:
        operator.stop()


def measure_latency(operator: steps.Operator, estate: Estate, args: argparse.Namespace,
                    kube: KubeHttp) -> dict[str, Any]:  # fmt: skip
    browser = Browser(operator.http_port)
    browser.sign_in(estate.token)
    paths = page_paths(estate)
    # Ready (caches warm) comes before the run watch has listed every run: wait for the index.
    wanted, started = f"{len(run_names())} runs;", time.monotonic()
    while not (shown := runs_count(browser, paths["runs page 1"])).startswith(wanted):
        if time.monotonic() - started > args.timeout:
            raise RuntimeError(f"the runs page says {shown!r}, not {wanted!r}")
        time.sleep(0.5)
    indexed = time.monotonic() - started
    print(f"latency: the runs page shows {shown!r} {indexed:.1f} s after the operator is ready")
    ns = estate.namespace
    targets: dict[str, Callable[[], object]] = {
        name: (lambda path=path: browser.get(path)) for name, path in paths.items()
    }
    targets["operator /healthz"] = lambda: browser.get("/healthz")
    targets["API LIST 1,000 runs"] = lambda: kube.get(f"{API}/namespaces/{ns}/workflowruns")
    for label, run in (("finished", estate.finished_run), ("running", estate.running_run)):
        targets[f"API GET run {label}"] = lambda run=run: kube.get(
            f"{API}/namespaces/{ns}/workflowruns/{run}"
        )
    sizes = {name: len(call()) for name, call in targets.items()}  # type: ignore[arg-type]
    time.sleep(args.settle)
    times: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    cpu, wall = operator.cpu_seconds(), time.monotonic()
    for round_ in range(args.requests):
        shift = round_ % len(order)  # each target in each position as often
        for name in order[shift:] + order[:shift]:
            started = time.perf_counter()
            targets[name]()
            times[name].append(time.perf_counter() - started)
    interleaved_cpu = operator.cpu_seconds() - cpu
    interleaved_wall = time.monotonic() - wall
    result: dict[str, Any] = {
        "latency": {name: summary(seen) | {"bytes": sizes[name]} for name, seen in times.items()},
        "interleaved": {"operator_cpu_s": interleaved_cpu, "wall_s": interleaved_wall},
        "index_filled_after_ready_s": indexed,
    }
    result["cpu_per_request"] = cpu_per_request(operator, browser, paths, args)
    result["kubectl_get_wfrun"] = time_kubectl(args.kubeconfig, ns, args.kubectl_runs)
    result["operator_rss_mib"] = operator.status("VmRSS") / MIB
    return result


def runs_count(browser: Browser, path: str) -> str:
    """What the runs page says of its count (`#runs-count`)."""
    found = re.search(r'id="runs-count"[^>]*>([^<]*)<', browser.get(path).decode())
    return found[1] if found else "(no #runs-count)"


def cpu_per_request(operator: steps.Operator, browser: Browser, paths: dict[str, str],
                    args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """The operator's CPU per page, each asked `--requests` times in a row (one at a time), and
    its CPU at rest over as long, which is in each figure too."""
    answers: dict[str, Any] = {}
    for name, path in {"operator /healthz": "/healthz", **paths}.items():
        cpu, wall = operator.cpu_seconds(), time.monotonic()
        for _ in range(args.requests):
            browser.get(path)
        used, seconds = operator.cpu_seconds() - cpu, time.monotonic() - wall
        answers[name] = {"cpu_ms_per_request": used / args.requests * 1000,
                         "wall_ms_per_request": seconds / args.requests * 1000}  # fmt: skip
    cpu, wall = operator.cpu_seconds(), time.monotonic()
    time.sleep(10)
    rest = (operator.cpu_seconds() - cpu) / (time.monotonic() - wall)
    answers["at rest"] = {"cpu_ms_per_second": rest * 1000}
    return answers


def time_kubectl(kubeconfig: str, namespace: str, count: int) -> dict[str, float]:
    """`kubectl get wfrun` as a process: start-up, two LISTs of 500 (its chunks), the table."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(
            [steps.harness.KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "get", "wfrun"],
            check=True, capture_output=True,
        )  # fmt: skip
        seconds.append(time.perf_counter() - started)
    return summary(seconds)


# The memory phase


def memory(estate: Estate, args: argparse.Namespace, kube: KubeHttp) -> list[dict[str, Any]]:
    measured = []
    for round_ in range(args.rounds):
        for ui in (False, True):
            label = f"round{round_ + 1}-ui-{'on' if ui else 'off'}"
            operator = start_operator(estate.namespace, args.kubeconfig,
                                      args.logs / f"operator-{label}.log", ui=ui)  # fmt: skip
            try:
                entry = measure_memory(operator, estate, args, kube, ui=ui) | {"round": round_}
            finally:
                operator.stop()
            print(f"  {label}: RSS warm {entry['rss_warm_mib']:.1f} MiB, after viewers "
                  f"{entry['rss_after_mib']:.1f} MiB, 10 s later {entry['rss_later_mib']:.1f} "
                  f"MiB, peak {entry['hwm_mib']:.1f} MiB; {entry['page_loads']} page loads, "
                  f"{entry['long_polls_open']} polls open, CPU {entry['cpu_s']:.2f} s")  # fmt: skip
            for page, row in entry["concurrent_latency"].items():
                print(f"    {page} with {args.viewers} viewers at once: p50 {row['p50_ms']:.1f} "
                      f"p95 {row['p95_ms']:.1f} max {row['max_ms']:.1f} ms")  # fmt: skip
            measured.append(entry)
    return measured


def measure_memory(operator: steps.Operator, estate: Estate, args: argparse.Namespace,
                   kube: KubeHttp, *, ui: bool) -> dict[str, Any]:  # fmt: skip
    time.sleep(args.warmup)  # a retention cycle (30 s) included: its statistics are computed
    warm = operator.status("VmRSS")
    started, cpu = time.monotonic(), operator.cpu_seconds()
    viewers: list[Viewer] = []
    if ui:
        runs = [estate.running_run, *(f"chain-{k:04d}" for k in range(args.viewers - 1))]
        viewers = [
            Viewer(operator.http_port, estate, run, kube, pages=args.viewer_pages)
            for run in runs[: args.viewers]
        ]
        with ThreadPoolExecutor(len(viewers)) as pool:
            for done in [pool.submit(viewer.load, args.loads) for viewer in viewers]:
                done.result()
    loaded = time.monotonic() - started
    time.sleep(max(0.0, args.viewing - loaded))  # both operators read at the same moment
    after = operator.status("VmRSS")
    open_polls = sum(viewer.polling for viewer in viewers)
    time.sleep(10)
    later = operator.status("VmRSS")
    for viewer in viewers:
        viewer.stop()
    return {
        "ui": ui,
        "rss_warm_mib": warm / MIB, "rss_after_mib": after / MIB, "rss_later_mib": later / MIB,
        "hwm_mib": operator.status("VmHWM") / MIB, "loads_seconds": loaded,
        "cpu_s": operator.cpu_seconds() - cpu, "long_polls_open": open_polls,
        "page_loads": sum(viewer.loads for viewer in viewers),
        "updates_answered": sum(viewer.updates for viewer in viewers),
        "concurrent_latency": {
            page: summary([t for viewer in viewers for t in viewer.seconds[page]])
            for page in ("runs page", "run page") if viewers and viewers[0].seconds[page]
        },
    }  # fmt: skip


class Viewer:
    """A browser tab: signs in, loads the runs page and its run's page, keeps one long-poll
    update request open on that run (in a thread of its own), and reloads both pages."""

    def __init__(
        self, port: int, estate: Estate, run: str, kube: KubeHttp, *, pages: str = "both"
    ) -> None:
        self.browser = Browser(port)
        self.browser.sign_in(estate.token)
        ns = estate.namespace
        self.runs_path = f"/ui/namespaces/{ns}/runs"
        self.run_path = f"/ui/namespaces/{ns}/runs/{run}"
        body = json.loads(kube.get(f"{API}/namespaces/{ns}/workflowruns/{run}"))
        self.version = str(body["metadata"]["resourceVersion"])
        both = (("runs page", self.runs_path), ("run page", self.run_path))
        self.pages = {"both": both, "runs": both[:1], "run": both[1:]}[pages]
        self.loads = self.updates = 0
        self.seconds: dict[str, list[float]] = {"runs page": [], "run page": []}
        self.polling = False
        self._stopping = threading.Event()
        self._poller = Browser(port, self.browser.cookie)
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def load(self, times: int) -> None:
        for k in range(times):
            for page, path in self.pages:
                started = time.perf_counter()
                self.browser.get(path)
                self.seconds[page].append(time.perf_counter() - started)
            self.loads += len(self.pages)
            if k == 0:
                self._thread.start()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            path = f"{self.run_path}/updates?version={self.version}"
            self.polling = True
            try:
                status, data = self._poller.request("GET", path)
            except (http.client.HTTPException, OSError):
                return
            finally:
                self.polling = False
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {data[:300]!r}")
            self.version = json.loads(data).get("version") or self.version
            self.updates += 1

    def stop(self) -> None:
        self._stopping.set()
        self._poller.close()
        self.browser.close()


# Reporting


def print_latency(result: dict[str, Any]) -> None:
    rows = result["latency"]
    healthz = rows["operator /healthz"]["p50_ms"]
    listing = rows["API LIST 1,000 runs"]["p50_ms"]
    print(f"\n{'target':24} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8} "
          f"{'/healthz':>9} {'/LIST':>7}")  # fmt: skip
    for name, row in rows.items():
        print(f"{name:24} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['max_ms']:8.2f} "
              f"{row['bytes']:8d} {row['p50_ms'] / healthz:8.1f}x "
              f"{row['p50_ms'] / listing:6.2f}x")  # fmt: skip
    kubectl = result["kubectl_get_wfrun"]
    print(f"{'kubectl get wfrun':24} {kubectl['p50_ms']:8.2f} {kubectl['p95_ms']:8.2f} "
          f"{kubectl['max_ms']:8.2f}   (a process, {kubectl['n']:.0f} times)")  # fmt: skip
    print("\noperator CPU per request (each asked in a row, at rest included):")
    for name, row in result["cpu_per_request"].items():
        if "cpu_ms_per_request" in row:
            print(f"  {name:24} {row['cpu_ms_per_request']:7.2f} ms CPU, "
                  f"{row['wall_ms_per_request']:7.2f} ms wall")  # fmt: skip
    print(f"  at rest: {result['cpu_per_request']['at rest']['cpu_ms_per_second']:.1f} ms CPU/s")


def print_memory(entries: list[dict[str, Any]]) -> dict[str, float]:
    off = [e for e in entries if not e["ui"]]
    on = [e for e in entries if e["ui"]]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return sum(row[key] for row in rows) / len(rows)

    verdict = {
        "off_after_mib": mean(off, "rss_after_mib"), "on_after_mib": mean(on, "rss_after_mib"),
        "on_grew_mib": mean(on, "rss_after_mib") - mean(on, "rss_warm_mib"),
        "off_grew_mib": mean(off, "rss_after_mib") - mean(off, "rss_warm_mib"),
    }  # fmt: skip
    verdict["added_mib"] = verdict["on_after_mib"] - verdict["off_after_mib"]
    verdict["ratio"] = verdict["on_after_mib"] / verdict["off_after_mib"]
    print(f"\nmemory (means of {len(on)} rounds): UI off {verdict['off_after_mib']:.1f} MiB, "
          f"UI on with viewers {verdict['on_after_mib']:.1f} MiB: "
          f"+{verdict['added_mib']:.1f} MiB ({verdict['ratio']:.3f}x); "
          f"growth from warm: on {verdict['on_grew_mib']:+.1f}, "
          f"off {verdict['off_grew_mib']:+.1f} MiB")  # fmt: skip
    return verdict


@contextmanager
def bench_namespace(api: steps.Api, kube: KubeHttp, *, keep: bool) -> Iterator[str]:
    namespace = f"bench-ui-{uuid.uuid4().hex[:6]}"
    api.core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield namespace
    finally:
        if not keep:
            delete_namespace(api, kube, namespace)


def delete_namespace(api: steps.Api, kube: KubeHttp, namespace: str) -> None:
    """Deleted and waited for; kopf's finalizers on objects whose operator is gone removed."""
    api.core.delete_namespace(namespace)
    try:
        steps._wait(lambda: steps._namespace_gone(api, namespace), 60, "namespace deleted")
        return
    except TimeoutError:
        pass
    for plural in ("workflowruns", "workflows", "servicesteps"):
        for item in kube.items(namespace, plural):
            if item["metadata"].get("finalizers"):
                api.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )  # fmt: skip
    steps._wait(lambda: steps._namespace_gone(api, namespace), 300, "namespace deleted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", nargs="*", help="latency, memory (default: both)")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the results, as JSON")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/bench-ui-logs"))  # noqa: S108
    parser.add_argument("--requests", type=int, default=200, help="requests of each target")
    parser.add_argument("--kubectl-runs", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--loads", type=int, default=20, help="loads of both pages per viewer")
    parser.add_argument("--viewer-pages", choices=["both", "runs", "run"], default="both",
                        help="what each viewer reloads (a diagnosis: one page alone)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="UI off/on pairs of operators")
    parser.add_argument("--settle", type=float, default=5, help="seconds before timing")
    parser.add_argument("--warmup", type=float, default=40, help="seconds before the warm RSS")
    parser.add_argument("--viewing", type=float, default=30, help="seconds until RSS after")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", type=Path, help="cProfile of the latency phase's operator")
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    args = parser.parse_args()
    args.phases = args.phases or ["latency", "memory"]
    if not set(args.phases) <= {"latency", "memory"}:
        parser.error(f"phases are latency and memory, not {args.phases}")
    args.logs.mkdir(parents=True, exist_ok=True)
    api = steps.Api.connect(args.kubeconfig)
    kube = KubeHttp()
    steps.describe_machine()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, check=False,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"code {commit}")
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "cores": os.cpu_count(), "load_before": os.getloadavg(),
                               "commit": commit}  # fmt: skip
    with (
        EchoServices(1) as echo,
        SlowStep(SLOW_SECONDS) as slow,
        bench_namespace(api, kube, keep=args.keep) as namespace,
    ):
        estate = build_estate(api, kube, namespace, args, echo=echo, slow=slow)
        if "latency" in args.phases:
            results |= latency(estate, args, kube)
            print_latency(results)
            print(f"  (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
        if "memory" in args.phases:
            print("\nmemory:")
            results["memory"] = memory(estate, args, kube)
            results["memory_verdict"] = print_memory(results["memory"])
            print(f"  (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    results["load_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
