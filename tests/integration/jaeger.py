"""A real Jaeger for tests: `JaegerServer` runs Jaeger v2 (`cmd/jaeger`) on loopback.

`start()` takes the binary hack/build-binaries.sh built (component `jaeger`, found through
`build-binaries.sh --cached`, which builds nothing: a missing binary fails the test, saying to run
`hack/build-binaries.sh jaeger`; nothing is skipped). It writes a collector configuration that
puts every listener on its own free 127.0.0.1 port (OTLP over HTTP and gRPC, the query service's
HTTP and gRPC, the health check), keeps traces in memory, and waits until the health check says
every component has started. A port taken by someone else between choosing and binding makes
Jaeger exit; `start()` then tries again on other ports.

Spans go in through `otlp_http_endpoint` (or `otlp_grpc_endpoint`). The pipeline has no batching,
so a span is stored before the receiver answers its sender; `wait_for_trace` still polls, for
senders that batch. `services`, `traces` and `trace` read the query service's JSON API (the one
Jaeger's UI reads, under /api/) and return its `data`: traces in Jaeger's JSON model (`traceID`,
`spans` with `spanID`, `operationName`, `references`, `tags`; `processes` with `serviceName`),
which the functions below the class pick apart. An id Jaeger holds no span of raises
`TraceNotFoundError`. Jaeger's own telemetry (metrics, self-tracing) is off: nothing listens on a
fixed port, and Jaeger's queries do not show up as traces in the backend under test.
`stop()` sends SIGTERM, then kills.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.integration.localcluster import HACK
from tests.integration.processes import terminate

STARTUP_TIMEOUT = 30.0
# A port chosen free can be taken before Jaeger binds it; three draws make that vanishingly rare.
START_ATTEMPTS = 3
STORAGE = "memstore"
# The in-memory store drops the oldest traces past this; far more than a test run sends.
MAX_TRACES = 100_000


class JaegerError(RuntimeError):
    """Jaeger did not start, or its query service refused a request or did not answer."""


class TraceNotFoundError(JaegerError):
    """The query service holds no span of this trace id (HTTP 404 from /api/traces/{id})."""


@dataclass(frozen=True)
class JaegerPorts:
    otlp_http: int
    otlp_grpc: int
    query_http: int
    query_grpc: int
    health: int

    @classmethod
    def free(cls) -> JaegerPorts:
        """Five distinct ports that were free a moment ago (all held open while choosing)."""
        with ExitStack() as stack:
            probes = [stack.enter_context(socket.socket()) for _ in range(5)]
            for probe in probes:
                probe.bind(("127.0.0.1", 0))
            return cls(*(probe.getsockname()[1] for probe in probes))


def find_binary() -> Path:
    """The jaeger binary hack/build-binaries.sh built; fails (building nothing) if there is none."""
    out = subprocess.run(
        [str(HACK / "build-binaries.sh"), "--cached", "jaeger"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise JaegerError(f"no jaeger binary: {out.stderr.strip()}")
    _, _, directory = out.stdout.strip().partition("=")
    return Path(directory) / "jaeger"


def build_config(ports: JaegerPorts) -> dict[str, Any]:
    """Jaeger's all-in-one configuration, reduced to OTLP in and the query service out."""
    loopback = "127.0.0.1:{}".format
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            # No batch processor: the receiver answers after the span is stored.
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
            },
            # The defaults would serve metrics on :8888 (one Jaeger per machine).
            "telemetry": {"metrics": {"level": "none"}, "traces": {"level": "none"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {STORAGE: {"memory": {"max_traces": MAX_TRACES}}}},
            "jaeger_query": {
                "storage": {"traces": STORAGE},
                # On by default in v2: it would export Jaeger's own spans to localhost:4318.
                "enable_tracing": False,
                "http": {"endpoint": loopback(ports.query_http)},
                "grpc": {"endpoint": loopback(ports.query_grpc)},
            },
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": loopback(ports.health)}},
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "http": {"endpoint": loopback(ports.otlp_http)},
                    "grpc": {"endpoint": loopback(ports.otlp_grpc)},
                }
            }
        },
        "exporters": {"jaeger_storage_exporter": {"trace_storage": STORAGE}},
    }


@dataclass
class JaegerServer:
    workdir: Path
    ports: JaegerPorts = field(default_factory=JaegerPorts.free)
    process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_http_endpoint(self) -> str:
        """The OTLP/HTTP base URL; exporters post traces to `{this}/v1/traces`."""
        return f"http://127.0.0.1:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        """The query service: its JSON API under /api/, and the UI's page (a placeholder here)."""
        return f"http://127.0.0.1:{self.ports.query_http}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "jaeger.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "jaeger.yaml"

    def start(self) -> JaegerServer:
        binary = find_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            if attempt > 1:
                self.ports = JaegerPorts.free()
            self._launch(binary)
            if self._wait_until_ready():
                return self
            if attempt == START_ATTEMPTS or "address already in use" not in self.log_tail():
                break
        raise JaegerError(f"jaeger exited at start-up:\n{self.log_tail()}")

    def stop(self) -> None:
        terminate(self.process, timeout=15)

    def __enter__(self) -> JaegerServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # The query service's JSON API

    def services(self) -> list[str]:
        """The names of the services Jaeger holds spans of."""
        services: list[str] = self._get("/api/services", {})["data"] or []
        return services

    def traces(self, service: str, *, limit: int = 20, lookback: float = 3600.0) -> list[Any]:
        """The newest traces (at most `limit`) with a span of `service` started in `lookback` s."""
        now_us = int(time.time() * 1_000_000)
        params = {
            "service": service,
            "limit": str(limit),
            "start": str(now_us - int(lookback * 1_000_000)),
            "end": str(now_us),
        }
        traces: list[Any] = self._get("/api/traces", params)["data"] or []
        return traces

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace by its id (hex, as OpenTelemetry prints it); raises TraceNotFoundError."""
        path = f"/api/traces/{urllib.parse.quote(trace_id.lower())}"
        found: dict[str, Any] = self._get(path, {})["data"][0]
        return found

    def wait_for_trace(
        self, trace_id: str, *, spans: int = 1, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Polls until the trace holds at least `spans` spans; fails saying how many came."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            try:
                found = self.trace(trace_id)
            except TraceNotFoundError:
                found = {"spans": []}
            seen = len(found["spans"])
            if seen >= spans:
                return found
            time.sleep(0.2)
        raise AssertionError(
            f"trace {trace_id}: {seen} of {spans} spans within {timeout}s\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no jaeger log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _launch(self, binary: Path) -> None:
        self.config_path.write_text(yaml.safe_dump(build_config(self.ports)))
        with self.log_path.open("ab") as log:
            log.write(f"--- starting on ports {astuple(self.ports)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(binary), f"--config={self.config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self) -> bool:
        """True once every component started; False if Jaeger exited. Raises on a timeout."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            if self._healthy():
                return True
            time.sleep(0.2)
        self.stop()
        raise JaegerError(f"jaeger was not ready in {STARTUP_TIMEOUT}s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        # healthcheckv2 answers 503 while any component is still starting.
        try:
            status = f"http://127.0.0.1:{self.ports.health}/status"
            with urllib.request.urlopen(status, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.ports.query_http}{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip()
            if error.code == 404 and path.startswith("/api/traces/"):
                raise TraceNotFoundError(f"GET {path}: {detail}") from error
            raise JaegerError(f"GET {path} {dict(params)}: HTTP {error.code}: {detail}") from error
        except OSError as error:
            raise JaegerError(f"GET {path}: Jaeger did not answer: {error}") from error


# Reading Jaeger's JSON model of a trace


def span_named(trace: Mapping[str, Any], operation: str) -> dict[str, Any]:
    """The one span of `trace` whose operation is `operation`."""
    found = [span for span in trace["spans"] if span["operationName"] == operation]
    if len(found) != 1:
        names = sorted(span["operationName"] for span in trace["spans"])
        raise AssertionError(f"{len(found)} spans named {operation!r} among {names}")
    span: dict[str, Any] = found[0]
    return span


def parent_span_id(span: Mapping[str, Any]) -> str | None:
    """The span id this span is a CHILD_OF, or None for a root span."""
    parents = [ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    return parents[0] if parents else None


def service_of(trace: Mapping[str, Any], span: Mapping[str, Any]) -> str:
    name: str = trace["processes"][span["processID"]]["serviceName"]
    return name


def tags_of(span: Mapping[str, Any]) -> dict[str, Any]:
    """A span's attributes (Jaeger's `tags`) as a dict of key to value."""
    return {tag["key"]: tag["value"] for tag in span["tags"]}
