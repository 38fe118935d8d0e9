"""Stopping the programs the integration tests start (the operator, Prometheus, Jaeger)."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """SIGTERM, as Kubernetes stops a pod; SIGKILL if it has not exited within `timeout`. Nothing
    for a process that has not started or has ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
