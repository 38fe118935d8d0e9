"""How fast the operator deploys ServiceSteps, and how much memory it holds for many of them.

Not a test: it prints measurements, recorded with the machine's conditions in RESULTS.md.

    deploy   apply N ServiceSteps at once to a namespace watched by a fresh operator process;
             time until all 3N owned objects (Deployment, Service, HPA) exist and until all N
             steps are Ready (kwok runs the pods)
    rss      the same with many steps (default 1,000, minReplicas 1): the operator's VmRSS from
             /proc/<pid>/status once every step is Ready; with --restart, then also the VmRSS of
             a second operator started on those steps, once it has reconciled them all
    floor    no operator: the same Deployments, Services and HPAs applied directly, timed until
             every Deployment has a ready replica; what the control plane alone needs

Run against a local control plane (hack/cluster-up.sh) with the CRDs applied:

    .venv/bin/python bench/steps/bench.py --kubeconfig .stepline/ctl/kubeconfig deploy floor rss

`--profile FILE` runs the operator under cProfile (written when it stops). Namespaces are
deleted at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from stepline.api import ServiceStep
from stepline.resources import build_autoscaler, build_deployment, build_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness
from observing import NamespaceWatch, Progress

GROUP, VERSION, PLURAL = "stepline.io", "v1alpha1", "servicesteps"
IMAGE = "registry.example/bench:1"
POLL_SECONDS = 0.2
# Writers in parallel: enough to put every object in within a fraction of a second.
CREATORS = 16


@dataclass
class Api:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    scaling: client.AutoscalingV2Api
    custom: client.CustomObjectsApi
    networking: client.NetworkingV1Api

    @classmethod
    def connect(cls, kubeconfig: str) -> Api:
        config.load_kube_config(config_file=kubeconfig)
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = CREATORS * 2
        api = client.ApiClient(configuration)
        return cls(
            client.CoreV1Api(api),
            client.AppsV1Api(api),
            client.AutoscalingV2Api(api),
            client.CustomObjectsApi(api),
            client.NetworkingV1Api(api),
        )


@dataclass
class Operator:
    """`stepline run` as a process, watching one namespace."""

    namespace: str
    kubeconfig: str
    log_path: Path
    profile: Path | None = None
    inspect: Path | None = None
    tracemalloc: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    rss_peak_kib: int = 0
    sockets_peak: int = 0
    metrics_port: int = 0
    http_port: int = 0  # invoke's (and the web view's, with STEPLINE_UI=true)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the operator is not started")
        return self.process.pid

    def start(self) -> Operator:
        liveness, http, metrics = _free_port(), _free_port(), _free_port()
        self.metrics_port, self.http_port = metrics, http
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "STEPLINE_HTTP_HOST": "127.0.0.1",
            "STEPLINE_LIVENESS_PORT": str(liveness),
            "STEPLINE_HTTP_PORT": str(http),
            "STEPLINE_METRICS_PORT": str(metrics),
            **self.extra_env,
        }
        profiling = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        # Not `-m stepline`: on a shared machine a `pkill -f "stepline run"` meant for somebody
        # else's operator must not end the measured one. A script, as cProfile takes no `-c`.
        stepline = [str(Path(__file__).with_name("operator_main.py"))]
        if self.inspect:
            stepline = [str(Path(__file__).with_name("inspected_operator.py")), str(self.inspect)]
            stepline += ["--tracemalloc"] if self.tracemalloc else []
        argv = [sys.executable, *profiling, *stepline, "run", "-n", self.namespace]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait(lambda: _answers(f"http://127.0.0.1:{liveness}/healthz"), 60, "operator alive")
        return self

    def status(self, field_name: str) -> int:
        """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def sample(self) -> None:
        self.rss_peak_kib = max(self.rss_peak_kib, self.status("VmRSS"))
        self.sockets_peak = max(self.sockets_peak, self.sockets())

    def settle(self, seconds: float) -> tuple[int, int]:
        """Samples for `seconds`; then VmRSS and VmHWM in KiB."""
        settle_until = time.monotonic() + seconds
        while time.monotonic() < settle_until:
            self.sample()
            time.sleep(1)
        return self.status("VmRSS"), self.status("VmHWM")

    def sockets(self) -> int:
        """Open sockets: connections to the API server, mostly (TLS, some 100 KiB each)."""
        count = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:
                continue
        return count

    def cpu_seconds(self) -> float:
        return _process_cpu(self.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.inspect:
                self.inspect.unlink(missing_ok=True)
                self.process.send_signal(signal.SIGUSR1)
                _wait(self.inspect.exists, 300, "the operator's memory report")
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_lines(self) -> int:
        return len(self.log_path.read_bytes().splitlines())

    def reconciled(self) -> float:
        """ServiceStep reconciles done (stepline_reconciliations_total, all outcomes)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("stepline_reconciliations_total{") and 'kind="ServiceStep"' in line
        )


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    submitted: float | None = None
    children: float | None = None
    ready: float | None = None
    polls: list[Progress] = field(default_factory=list)

    def note(self, progress: list[Progress], count: int) -> None:
        """The moments all children existed and all steps were Ready, from the watch's counts."""
        self.polls = progress
        for seen in progress:
            if self.children is None and seen.children >= 3 * count:
                self.children = self.started + seen.elapsed
            if self.ready is None and seen.ready_steps >= count:
                self.ready = self.started + seen.elapsed

    def since(self, moment: float | None) -> str:
        return "-" if moment is None else f"{moment - self.started:.2f}s"


COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def _process_cpu(pid: int | str) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds used during a phase: by each control-plane component of this cluster (their
    command lines name the kubeconfig's folder), by the operator, and by the whole machine."""

    marker: str
    start: dict[str, float] = field(default_factory=dict)
    machine_start: float = 0.0
    wall_start: float = 0.0

    def components(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                name = Path(argv[0].decode()).name.removesuffix("-controller")
                if name in COMPONENTS and self.marker in b" ".join(argv).decode():
                    used[name] = used.get(name, 0.0) + _process_cpu(proc.name)
            except (OSError, IndexError, UnicodeDecodeError):
                continue
        return used

    @staticmethod
    def machine() -> float:
        """Busy CPU seconds of the whole machine (all cores): /proc/stat minus idle and iowait."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")

    def begin(self) -> None:
        self.start, self.machine_start = self.components(), self.machine()
        self.wall_start = time.monotonic()

    def report(self, operator_cpu: float) -> str:
        now = self.components()
        wall = time.monotonic() - self.wall_start
        parts = [f"{name} {now[name] - self.start.get(name, 0.0):.1f}s" for name in sorted(now)]
        busy = self.machine() - self.machine_start
        return (
            f"{', '.join(parts)}, operator {operator_cpu:.1f}s; machine busy {busy:.1f}s "
            f"of {wall * (os.cpu_count() or 1):.1f}s ({wall:.1f}s x {os.cpu_count()} cores)"
        )


def apiserver_requests(api: Api) -> Counter[str]:
    """The API server's request counters (apiserver_request_total), by verb, resource and
    subresource: who writes what, in total (the operator's and the controllers' alike)."""
    client_ = api.core.api_client
    request = client_.param_serialize(
        method="GET",
        resource_path="/metrics",
        header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"],
    )
    return harness.count_requests(client_.call_api(*request).read().decode())


def describe_requests(before: Counter[str], after: Counter[str], top: int = 24) -> str:
    delta = after - before
    rows = [f"{count:6d} {what}" for what, count in delta.most_common(top)]
    return f"{sum(delta.values())} requests, most frequent:\n      " + "\n      ".join(rows)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


def _wait(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(POLL_SECONDS)


def step_manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceStep",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": IMAGE, "scaling": {"minReplicas": 1, "maxReplicas": 3}},
    }


def step_names(count: int) -> list[str]:
    return [f"step-{index:04d}" for index in range(count)]


def create_namespace(api: Api, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api.core.create_namespace({"metadata": {"name": name}})
    return name


def submit_in_parallel(calls: list[Callable[[], Any]]) -> None:
    with ThreadPoolExecutor(CREATORS) as pool:
        for result in [pool.submit(call) for call in calls]:
            result.result()


def create_steps(api: Api, namespace: str, names: list[str]) -> None:
    submit_in_parallel(
        [
            lambda n=name: api.custom.create_namespaced_custom_object(  # type: ignore[misc]
                GROUP, VERSION, namespace, PLURAL, step_manifest(n, namespace)
            )
            for name in names
        ]
    )


def raw_items(lister: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """A list call's items as plain JSON: the client's models cost the bench more CPU than the
    operator spends, on a machine whose CPU is the thing measured."""
    response = lister(*args, _preload_content=False, resource_version="0", **kwargs)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def follow(
    watch: NamespaceWatch, count: int, *, timeline: Timeline, operator: Operator, timeout: float
) -> None:
    """Waits until every step is Ready and all children exist, sampling the operator's memory;
    the moments come from the watch events (`observing.py`), not from polls."""
    deadline = time.monotonic() + timeout
    while True:
        operator.sample()
        try:
            watch.wait_for(
                lambda p: p.ready_steps >= count and p.children >= 3 * count,
                timeout=POLL_SECONDS, what="all steps Ready",
            )  # fmt: skip
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {count} steps Ready within {timeout}s") from None
    timeline.note(list(watch.timeline), count)


def print_progress(timeline: Timeline, every: float) -> None:
    """A few rows of the timeline: children, Ready steps, Deployments with a ready replica."""
    next_row = 0.0
    for progress in timeline.polls:
        if progress.elapsed >= next_row or progress is timeline.polls[-1]:
            print(
                f"    t={progress.elapsed:6.2f}s children={progress.children:5d} "
                f"ready={progress.ready_steps:5d} available={progress.available_deployments:5d}"
            )
            next_row = progress.elapsed + every


# The local cluster's Service range is kwokctl's 10.0.0.0/24: some 250 ClusterIPs for the whole
# cluster. More steps need a further range (networking.k8s.io/v1 ServiceCIDR), removed after.
BENCH_SERVICE_CIDR = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "ServiceCIDR",
    "metadata": {"name": "stepline-bench"},
    "spec": {"cidrs": ["10.128.0.0/16"]},
}
SERVICES_WITHOUT_EXTRA_RANGE = 200


@contextmanager
def service_ips_for(api: Api, count: int) -> Iterator[None]:
    if count <= SERVICES_WITHOUT_EXTRA_RANGE:
        yield
        return
    name = BENCH_SERVICE_CIDR["metadata"]["name"]
    # The previous run's range may still be terminating (its finalizer waits for the Services):
    # a terminating range allocates nothing, so wait for it to go and create it anew.
    _wait(lambda: not _terminating_cidr(api, name), 600, f"ServiceCIDR {name} deleted")
    try:
        api.networking.create_service_cidr(BENCH_SERVICE_CIDR)
    except client.ApiException as exc:
        if exc.status != 409:  # left by an interrupted run: use it
            raise
    try:
        yield
    finally:
        # Its finalizer waits until the namespace's Services are gone; no need to wait here.
        api.networking.delete_service_cidr(name)


def _terminating_cidr(api: Api, name: str) -> bool:
    try:
        cidr = api.networking.read_service_cidr(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return cidr.metadata.deletion_timestamp is not None


@contextmanager
def namespace_for(api: Api, prefix: str, *, keep: bool) -> Iterator[str]:
    namespace = create_namespace(api, prefix)
    try:
        yield namespace
    finally:
        if not keep:
            # Waited for: the next phase must not share the machine with this clean-up.
            api.core.delete_namespace(namespace)
            _wait(lambda: _namespace_gone(api, namespace), 600, f"namespace {namespace} deleted")


def _namespace_gone(api: Api, namespace: str) -> bool:
    try:
        api.core.read_namespace(namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def check_pod_capacity(api: Api, count: int) -> None:
    """Each kwok node takes 110 pods: 1,000 steps need 10 nodes (STEPLINE_NODES=10 for
    hack/cluster-up.sh, or `kwokctl scale node --replicas 10`)."""
    nodes = raw_items(api.core.list_node)
    capacity = sum(int(n["status"].get("allocatable", {}).get("pods", 0)) for n in nodes)
    if capacity < count:
        raise SystemExit(f"{len(nodes)} nodes take {capacity} pods; {count} steps need more")


def deploy(api: Api, args: argparse.Namespace, count: int, *, label: str) -> None:
    check_pod_capacity(api, count)
    with (
        service_ips_for(api, count),
        namespace_for(api, f"bench-{label}", keep=args.keep) as namespace,
    ):
        log = Path(args.out) / f"operator-{label}.log"
        operator = Operator(
            namespace, args.kubeconfig, log, profile=args.profile,
            inspect=args.inspect, tracemalloc=args.tracemalloc,
            extra_env=dict(pair.split("=", 1) for pair in args.operator_env),
        ).start()  # fmt: skip
        try:
            time.sleep(2)  # let the watches settle so that start-up is not measured
            idle_rss = operator.status("VmRSS")
            cpu_before = operator.cpu_seconds()
            meter = CpuMeter(str(Path(args.kubeconfig).resolve().parent))
            meter.begin()
            requests_before = apiserver_requests(api)
            watch = NamespaceWatch(api.custom.api_client, namespace).start()
            try:
                timeline = Timeline(started=watch.started)
                create_steps(api, namespace, step_names(count))
                timeline.submitted = time.monotonic()
                follow(watch, count, timeline=timeline, operator=operator, timeout=args.timeout)
            finally:
                watch.stop()
            cpu_report = meter.report(operator.cpu_seconds() - cpu_before)
            requests_report = describe_requests(requests_before, apiserver_requests(api))
            rss, hwm = operator.settle(args.settle)
            sockets = operator.sockets()
            cpu = operator.cpu_seconds() - cpu_before
        finally:
            operator.stop()
        print(f"{label}: {count} ServiceSteps in namespace {namespace}")
        print(f"  submitted (all {count} created)  {timeline.since(timeline.submitted)}")
        print(f"  all {3 * count} children exist      {timeline.since(timeline.children)}")
        print(f"  all {count} steps Ready          {timeline.since(timeline.ready)}")
        print(f"  operator CPU time            {cpu:.1f}s (until all Ready and the settling)")
        print(f"  CPU until all Ready: {cpu_report}")
        print(f"  API requests until all Ready: {requests_report}")
        print(f"  operator RSS idle            {idle_rss / 1024:.1f} MiB")
        print(f"  operator RSS after {args.settle:.0f}s       {rss / 1024:.1f} MiB")
        print(f"  operator RSS peak (VmHWM)    {hwm / 1024:.1f} MiB")
        print(f"  operator sockets peak, end   {operator.sockets_peak}, {sockets}")
        print(f"  operator log lines           {operator.log_lines()}")
        print_progress(timeline, every=max(1.0, (timeline.polls[-1].elapsed) / 12))
        if args.restart:
            restart(args, namespace, count, label=label)


def restart(args: argparse.Namespace, namespace: str, count: int, *, label: str) -> None:
    """A second operator started on the `count` existing steps: its RSS once it reconciled
    them all (it lists each kind, and reconciles every step once, at start-up)."""
    log = Path(args.out) / f"operator-{label}-restarted.log"
    started = time.monotonic()
    operator = Operator(namespace, args.kubeconfig, log).start()
    try:
        _wait(lambda: operator.reconciled() >= count, args.timeout, f"{count} reconciles")
        reconciled = time.monotonic() - started
        rss, hwm = operator.settle(args.settle)
        cpu = operator.cpu_seconds()
    finally:
        operator.stop()
    print(f"{label}, restarted: a new operator on the {count} steps")
    print(f"  all {count} reconciled          {reconciled:.2f}s after its start")
    print(f"  operator CPU time            {cpu:.1f}s (start-up, reconciles and the settling)")
    print(f"  operator RSS after {args.settle:.0f}s       {rss / 1024:.1f} MiB")
    print(f"  operator RSS peak (VmHWM)    {hwm / 1024:.1f} MiB")


def floor(api: Api, args: argparse.Namespace) -> None:
    """The control plane alone: the objects the operator would apply, applied directly."""
    with namespace_for(api, "bench-floor", keep=args.keep) as namespace:
        manifests = []
        for name in step_names(args.steps):
            body = step_manifest(name, namespace) | {"metadata": {
                "name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1,
            }}  # fmt: skip
            step = ServiceStep.from_body(body)
            for build in (build_deployment, build_service, build_autoscaler):
                manifest = build(step)
                del manifest["metadata"]["ownerReferences"]  # the owner does not exist
                manifests.append(manifest)
        kinds = {
            "Deployment": api.apps.create_namespaced_deployment,
            "Service": api.core.create_namespaced_service,
            "HorizontalPodAutoscaler": api.scaling.create_namespaced_horizontal_pod_autoscaler,
        }
        meter = CpuMeter(str(Path(args.kubeconfig).resolve().parent))
        meter.begin()
        requests_before = apiserver_requests(api)
        watch = NamespaceWatch(api.custom.api_client, namespace, ("deployments",)).start()
        try:
            started = time.monotonic()
            submit_in_parallel(
                [lambda m=m: kinds[m["kind"]](namespace, m) for m in manifests]  # type: ignore[misc]
            )
            submitted = time.monotonic() - started
            watch.wait_for(
                lambda p: p.available_deployments >= args.steps, args.timeout,
                "all Deployments available",
            )  # fmt: skip
        finally:
            watch.stop()
        cpu_report = meter.report(0.0)
        requests_report = describe_requests(requests_before, apiserver_requests(api))
        print(f"floor: {args.steps} Deployments + Services + HPAs, no operator")
        print(f"  submitted ({len(manifests)} objects)      {submitted:.2f}s")
        print(f"  every Deployment available   {time.monotonic() - started:.2f}s")
        print(f"  CPU: {cpu_report}")
        print(f"  API requests: {requests_report}")


def describe_machine() -> None:
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", nargs="+", choices=["deploy", "rss", "floor"])
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""))
    parser.add_argument("--steps", type=int, default=100, help="steps of deploy and floor")
    parser.add_argument("--rss-steps", type=int, default=1000, help="steps of rss")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per phase")
    parser.add_argument("--settle", type=float, default=5, help="seconds watched after Ready")
    parser.add_argument("--profile", type=Path, help="run the operator under cProfile")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="deploy and rss: then start a second operator on the steps and report its RSS",
    )
    parser.add_argument(
        "--inspect", type=Path, help="before stopping, the operator reports its memory here"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --inspect: trace allocations too"
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the operator (a setting such as STEPLINE_WORKER_LIMIT=16, or "
        "PYTHONMALLOC=malloc), repeatable",
    )
    parser.add_argument("--out", default=".", help="folder of the operator logs")
    parser.add_argument("--keep", action="store_true", help="keep the namespaces")
    args = parser.parse_args()
    if not args.kubeconfig:
        parser.error("--kubeconfig or KUBECONFIG is needed")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    api = Api.connect(args.kubeconfig)
    describe_machine()
    for phase in args.phases:
        if phase == "deploy":
            deploy(api, args, args.steps, label="deploy")
        elif phase == "rss":
            deploy(api, args, args.rss_steps, label="rss")
        else:
            floor(api, args)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
