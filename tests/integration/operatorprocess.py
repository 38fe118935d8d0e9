"""The operator as the integration tests run it: `stepline run` as a real process.

`OperatorProcess.start()` launches it against the test cluster, watching the given namespaces,
and waits until kopf's liveness endpoint answers; `stop()` sends SIGTERM, `kill()` SIGKILL (a
crash). Its output goes to a log file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.localcluster import LocalCluster
from tests.integration.processes import terminate

STARTUP_TIMEOUT = 30.0
# A shorter lease than the default 15 s: an operator started after one was killed in the same
# namespace (the Lease's, by default) writes within seconds, not a quarter of a minute. The
# timings keep the defaults' proportions: duration > renew deadline > 1.2 x retry period.
LEASE_TIMINGS = {
    "STEPLINE_LEASE_DURATION_SECONDS": "6",
    "STEPLINE_LEASE_RENEW_DEADLINE_SECONDS": "4",
    "STEPLINE_LEASE_RETRY_PERIOD_SECONDS": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class OperatorProcess:
    cluster: LocalCluster
    namespaces: tuple[str, ...]
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    liveness_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where the operator's invoke port listens (a bearer token allowed to invoke needed,
        unless extra_env has STEPLINE_INVOKE_AUTH=false)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """Where the operator's metrics port (/metrics, no token) listens."""
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> OperatorProcess:
        env = {
            **self.cluster.env,
            "STEPLINE_HTTP_HOST": "127.0.0.1",
            "STEPLINE_LIVENESS_PORT": str(self.liveness_port),
            "STEPLINE_HTTP_PORT": str(self.http_port),
            "STEPLINE_METRICS_PORT": str(self.metrics_port),
            **LEASE_TIMINGS,
            **self.extra_env,
        }
        args = [sys.executable, "-m", "stepline", "run"]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_alive()
        return self

    def _wait_until_alive(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the operator exited at start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(
            f"the operator was not alive within {STARTUP_TIMEOUT}s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; waits for a clean exit."""
        terminate(self.process, timeout=20)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
