"""What `waiting.py` reads of an operator process and of the control plane: RSS from /proc, the
runs' phases from a watch, the run status writes from the API server's audit log, the operator's
metrics, and the memory dumps an operator can be started to write (`DUMPING`). No Kubernetes
object is written here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import harness
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

GROUP, VERSION, PLURAL = "stepline.io", "v1alpha1", "workflowruns"
MIB = 1024 * 1024

# `--memory-dumps DIR`: on SIGUSR1 the operator writes to DIR/dump-<pid>-<n>.txt its RSS, the
# unreachable objects a full garbage collection finds and its RSS after it and after glibc's
# malloc_trim(0); with `--tracemalloc`, it runs under tracemalloc (one frame per allocation)
# and the dump says what Python holds now, at its peak since the last dump and after the
# collection, and the lines that hold most. A diagnosis, not the measurement: the collection and
# the trim change what follows, and tracing costs memory and CPU of its own.
DUMPING = """
import ctypes, gc, os, signal, sys, tracemalloc
TRACE = {trace}
if TRACE:
    tracemalloc.start(1)
dumps = 0
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def dump(*_):
    global dumps
    dumps += 1
    now, peak = tracemalloc.get_traced_memory()
    before = rss()
    found = gc.collect()
    collected, _ = tracemalloc.get_traced_memory()
    after_gc = rss()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    lines = [f"RSS {{before:.1f}} MiB; after gc.collect() ({{found}} unreachable objects) "
             f"{{after_gc:.1f}} MiB; after malloc_trim(0) {{rss():.1f}} MiB"]
    if TRACE:
        lines[0] += (f"; Python heap {{now / 2**20:.1f}} MiB, peak {{peak / 2**20:.1f}} MiB, "
                     f"after gc.collect() {{collected / 2**20:.1f}} MiB")
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        for group in ("filename", "lineno"):
            for stat in snapshot.statistics(group)[:40]:
                lines.append(f"{{stat.size / 2**20:8.2f}} MiB {{stat.count:8d}} {{stat.traceback}}")
        tracemalloc.reset_peak()
    path = f"{folder}/dump-{{os.getpid()}}-{{dumps}}.txt"
    with open(path + ".part", "w") as out:
        out.write("\\n".join(lines) + "\\n")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, dump)
from stepline.cli import main
sys.exit(main())
"""


def audit_log_path(kubeconfig: str) -> Path:
    """The audit log of the one cluster under the kubeconfig's state folder."""
    clusters = list((Path(kubeconfig).resolve().parent / "kwok" / "clusters").iterdir())
    if len(clusters) != 1:
        raise RuntimeError(f"expected one cluster beside {kubeconfig}, found {clusters}")
    return clusters[0] / "logs" / "audit.log"


def memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM", "RssAnon", "RssFile"}:
            found[key] = int(value.split()[0]) * 1024
    return found


def describe_memory(values: dict[str, int]) -> str:
    return ", ".join(f"{key} {value / MIB:.1f} MiB" for key, value in values.items())


class Phases:
    """A watch on the namespace's WorkflowRuns: each run's phase, as last seen."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        self.phase: dict[str, str] = {}
        self._watch = watch.Watch()
        thread = threading.Thread(target=self._follow, args=(custom, namespace), daemon=True)
        thread.start()

    def _follow(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        stream = self._watch.stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
        )
        try:
            for event in stream:
                body = event["object"]
                phase = (body.get("status") or {}).get("phase") or "New"
                self.phase[body["metadata"]["name"]] = phase
        except ProtocolError:  # the connection closed by stop()
            return

    def count(self) -> Counter[str]:
        return Counter(dict(self.phase).values())

    def stop(self) -> None:
        self._watch.stop()


class AuditLog:
    """The API server's audit log, read on from where it was last read: the run status
    PATCHes in one namespace (`ResponseComplete` entries)."""

    def __init__(self, path: Path, namespace: str) -> None:
        self._path, self._namespace = path, namespace
        self._offset = path.stat().st_size
        self._rest = b""

    def skip_to_end(self) -> None:
        self._offset, self._rest = self._path.stat().st_size, b""

    def status_writes(self) -> list[tuple[str, float, float, int]]:
        """(run, received, answered, code) of each new status PATCH, Unix times."""
        with self._path.open("rb") as log:
            log.seek(self._offset)
            chunk = self._rest + log.read()
            self._offset = log.tell()
        *lines, self._rest = chunk.split(b"\n")
        found = []
        for line in lines:
            if b'"workflowruns"' not in line or b'"status"' not in line:
                continue
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if (
                entry.get("stage") != "ResponseComplete"
                or ref.get("namespace") != self._namespace
                or ref.get("subresource") != "status"
                or entry.get("verb") != "patch"
            ):
                continue
            received = datetime.fromisoformat(entry["requestReceivedTimestamp"]).timestamp()
            answered = datetime.fromisoformat(entry["stageTimestamp"]).timestamp()
            code = (entry.get("responseStatus") or {}).get("code", 0)
            found.append((ref.get("name", ""), received, answered, code))
        return found


@dataclass
class Operator:
    """One operator process of the benchmark, and when it started (Unix time)."""

    process: subprocess.Popen[bytes]
    ports: harness.OperatorPorts
    started: float
    log: Path

    def scrape(self) -> str:
        """Its /metrics text; empty while it does not answer."""
        url = f"http://127.0.0.1:{self.ports.metrics}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                text: str = answer.read().decode()
        except OSError:
            return ""
        return text


def metric_sum(text: str, name: str) -> float | None:
    """The sum of a metric's samples in a /metrics text; None without any."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    ]
    return sum(values) if values else None


class LeaderWatch:
    """When a new operator's metrics first said it leads (`stepline_leader`), read every
    `POLL_SECONDS` in a thread of its own while the pick-up is timed."""

    POLL_SECONDS = 0.25

    def __init__(self, operator: Operator) -> None:
        self.leading: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, args=(operator,), daemon=True)
        self._thread.start()

    def _follow(self, operator: Operator) -> None:
        while self.leading is None and not self._stop.wait(self.POLL_SECONDS):
            if metric_sum(operator.scrape(), "stepline_leader") == 1:
                self.leading = time.time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
