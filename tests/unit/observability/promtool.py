"""Runs Prometheus' `promtool` (Debian package `prometheus`, installed by hack/install-apt.sh).

A missing promtool fails the test that needs it, saying how to install it: nothing is skipped.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS...`, its output captured; the caller checks the return code."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool not found on PATH: run hack/install-apt.sh "
            "(installs Debian's prometheus package, which brings prometheus and promtool)"
        )
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120
    )
