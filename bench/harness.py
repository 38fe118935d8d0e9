"""A namespace of echo ServiceSteps and Workflows on a local control plane, and an operator process
whose endpoint overrides point the steps at local echo services: what `overhead/compare.py
--kubeconfig` (invoke) and `runs/bench.py` measure against.

Objects are applied with kubectl (`.stepline/bin/kubectl`, or `$KUBECTL`); the operator is
started as `python -c "...main()" run -n NS`, so that nobody's `pkill -f "stepline run"` ends it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = os.environ.get("KUBECTL", str(ROOT / ".stepline" / "bin" / "kubectl"))
COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def apply(kubeconfig: str, namespace: str, items: Sequence[dict[str, Any]]) -> None:
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", stdin=document)


def service_step(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {"name": f"echo-{index}"},
        "spec": {"image": "example.invalid/echo:1", "path": "/"},
    }


def workflow(
    steps: int, concurrency: int = 1000, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Workflow `echo-<steps>` chaining `echo-0..`; `extra` adds to its spec."""
    chain = [{"name": f"s{index}", "stepRef": f"echo-{index}"} for index in range(steps)]
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"echo-{steps}"},
        "spec": {"steps": chain, "concurrency": concurrency, **(extra or {})},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    until = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > until:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (http:// built here)
            return True
    except OSError:
        return False


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def process_cpu(pid: int | str) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component_pids(kubeconfig: str) -> dict[str, int]:
    """The control-plane processes of this cluster (their command lines name its folder)."""
    marker = str(Path(kubeconfig).resolve().parent)
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            name = Path(argv[0].decode()).name.removesuffix("-controller")
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if name in COMPONENTS and marker in b" ".join(argv).decode():
            found[name] = int(proc.name)
    return found


_PROFILED = """
import cProfile, sys
from stepline.cli import main
profiler = cProfile.Profile()
profiler.enable()
try:
    code = main()
finally:
    profiler.disable()
    profiler.dump_stats({path})
sys.exit(code)
"""


@contextmanager
def echo_namespace(
    kubeconfig: str,
    steps: int,
    chains: Sequence[int],
    *,
    keep: bool = False,
    workflow_spec: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    try:
        workflows = [workflow(n, extra=workflow_spec) for n in chains]
        apply(kubeconfig, namespace, [service_step(i) for i in range(steps)] + workflows)
        yield namespace
    finally:
        if not keep:
            kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false")


@dataclass(frozen=True)
class OperatorPorts:
    """The loopback ports of one operator process."""

    http: int
    metrics: int
    liveness: int


def launch_operator(
    kubeconfig: str,
    namespace: str,
    overrides: Mapping[str, str],
    log_path: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    profile: str = "",
    source: Path | None = None,
    code: str = "",
) -> tuple[subprocess.Popen[bytes], OperatorPorts]:
    """Starts an operator watching `namespace`, each step named in `overrides` sent to its URL,
    and returns at once; the caller stops it (`alive()` says when it answers). `extra_env` adds
    or replaces STEPLINE_ settings; `profile` and `source` as in `operator()`; `code`: Python
    that runs `stepline.cli.main()` some other way (under a memory tracer, say)."""
    ports = OperatorPorts(http=free_port(), metrics=free_port(), liveness=free_port())
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "STEPLINE_HTTP_HOST": "127.0.0.1",
        "STEPLINE_HTTP_PORT": str(ports.http),
        "STEPLINE_METRICS_PORT": str(ports.metrics),
        "STEPLINE_LIVENESS_PORT": str(ports.liveness),
        "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(dict(overrides)),
        # No token asked: the A/B compares the engine's and the server's cost across commits,
        # before and after invoke authentication alike; overhead/gateway.py --auth measures it.
        "STEPLINE_INVOKE_AUTH": "false",
        **(extra_env or {}),
    }
    if source is not None:  # before site-packages, where the editable install points
        env["PYTHONPATH"] = str(Path(source).resolve() / "operator")
    code = code or "import sys; from stepline.cli import main; sys.exit(main())"
    if profile:  # written when the operator stops (SIGTERM)
        code = _PROFILED.format(path=json.dumps(profile))
    argv = [sys.executable, "-c", code, "run", "-n", namespace]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, ports


def alive(ports: OperatorPorts) -> bool:
    """Whether the operator on `ports` answers its liveness probe."""
    return _answers(f"http://127.0.0.1:{ports.liveness}/healthz")


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def operator(
    kubeconfig: str,
    namespace: str,
    urls: Sequence[str],
    log_path: Path,
    *,
    profile: str = "",
    source: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The operator, watching `namespace`, with step `echo-i` overridden to `urls[i]`; yields the
    process and its HTTP base URL once every Workflow there is Ready. `source`: a checkout whose
    `operator/stepline` to run instead of the installed one (an A/B against another commit)."""
    overrides = {f"echo-{i}": url for i, url in enumerate(urls)}
    process, ports = launch_operator(
        kubeconfig, namespace, overrides, log_path, profile=profile, source=source
    )
    try:
        wait_for(lambda: alive(ports), 60, "operator alive")
        kubectl(
            kubeconfig, "-n", namespace, "wait", "--for=condition=Ready", "--timeout=180s",
            "workflows", "--all",
        )  # fmt: skip
        yield process, f"http://127.0.0.1:{ports.http}"
    finally:
        stop(process)


_REQUEST_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def count_requests(metrics: str) -> Counter[str]:
    """apiserver_request_total in an API server's /metrics text, by verb, resource and
    subresource (watches and requests for no resource left out)."""
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        found = _REQUEST_LINE.match(line)
        if found is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
        if labels.get("verb") in {"WATCH", "CONNECT"} or not labels.get("resource"):
            continue
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        counts[f"{labels['verb']} {labels['resource']}{sub}"] += int(float(found["value"]))
    return counts
