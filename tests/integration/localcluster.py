"""The local control plane as the integration tests see it: a kubeconfig and kubectl.

`LocalCluster.start()` runs hack/cluster-up.sh (a dedicated cluster named `stepline-test`, state
under .stepline/test) and `stop()` runs hack/cluster-down.sh for it. `LocalCluster.attach()` uses a
cluster somebody else started: its kubeconfig is given in STEPLINE_TEST_KUBECONFIG, and it is left
running afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
T = TypeVar("T")
TEST_CLUSTER_ENV = {
    "STEPLINE_CLUSTER": "stepline-test",
    "STEPLINE_STATE": str(REPO / ".stepline" / "test"),
}


def pinned_versions() -> dict[str, str]:
    """The component versions pinned in hack/versions.env (KUBE_VERSION, ETCD_VERSION, …)."""
    pairs = (
        line.split("=", 1)
        for line in (HACK / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


class ClusterError(RuntimeError):
    """The local control plane could not be started or reached."""


def _tool_path(component: str, binary: str) -> Path:
    """The cached binary `binary` of `component`, built by hack/build-binaries.sh if missing."""
    out = subprocess.run(
        [str(HACK / "build-binaries.sh"), component],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ClusterError(f"hack/build-binaries.sh {component} failed:\n{out.stderr[-4000:]}")
    _, _, directory = out.stdout.strip().partition("=")
    return Path(directory) / binary


@dataclass
class LocalCluster:
    kubeconfig: Path
    owned: bool
    kubectl_path: Path = field(default_factory=lambda: _tool_path("kubernetes", "kubectl"))
    helm_path: Path = field(default_factory=lambda: _tool_path("helm", "helm"))

    @classmethod
    def start(cls) -> LocalCluster:
        out = subprocess.run(
            [str(HACK / "cluster-up.sh")],
            env={**os.environ, **TEST_CLUSTER_ENV},
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise ClusterError(f"hack/cluster-up.sh failed:\n{out.stderr[-4000:]}")
        last = out.stdout.strip().splitlines()[-1]
        if not last.startswith("export KUBECONFIG="):
            raise ClusterError(f"hack/cluster-up.sh printed no kubeconfig: {out.stdout!r}")
        return cls(kubeconfig=Path(last.removeprefix("export KUBECONFIG=")), owned=True)

    @classmethod
    def attach(cls, kubeconfig: str) -> LocalCluster:
        path = Path(kubeconfig)
        if not path.is_file():
            raise ClusterError(f"STEPLINE_TEST_KUBECONFIG={kubeconfig}: no such file")
        return cls(kubeconfig=path, owned=False)

    def stop(self) -> None:
        if self.owned:
            subprocess.run(
                [str(HACK / "cluster-down.sh")],
                env={**os.environ, **TEST_CLUSTER_ENV},
                capture_output=True,
                check=True,
            )

    @property
    def script_env(self) -> dict[str, str]:
        """The environment for hack/ scripts about this cluster: its state folder (where the
        kubeconfig is) and its name (the one cluster kwokctl keeps there)."""
        state = self.kubeconfig.parent
        clusters = sorted(path.name for path in (state / "kwok" / "clusters").iterdir())
        if len(clusters) != 1:
            raise ClusterError(f"expected one cluster under {state}/kwok/clusters, not {clusters}")
        return {**os.environ, "STEPLINE_STATE": str(state), "STEPLINE_CLUSTER": clusters[0]}

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: the metadata of every write (hack/cluster-up.sh)."""
        env = self.script_env
        cluster = Path(env["STEPLINE_STATE"], "kwok", "clusters", env["STEPLINE_CLUSTER"])
        return cluster / "logs" / "audit.log"

    def kill_component(self, component: str) -> None:
        """SIGKILLs one process of the control plane (kube-apiserver, etcd, …), as a crash
        would; `restore()` brings it back."""
        env = self.script_env
        pids = Path(env["STEPLINE_STATE"], "kwok", "clusters", env["STEPLINE_CLUSTER"], "pids")
        os.kill(int((pids / f"{component}.pid").read_text().strip()), signal.SIGKILL)

    def restore(self) -> None:
        """Brings every dead component back and waits until the cluster is ready, as a user
        would: hack/cluster-up.sh, once."""
        out = subprocess.run(
            [str(HACK / "cluster-up.sh")],
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode != 0:
            raise ClusterError(f"hack/cluster-up.sh could not restore the cluster:\n{out.stderr}")

    @property
    def env(self) -> dict[str, str]:
        """The environment for a process that talks to this cluster (the operator, say)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster; with check, a failure raises with its stderr."""
        out = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(self.helm_path), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and out.returncode != 0:
            raise ClusterError(f"helm {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def apply(self, manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]], **kw: Any) -> Any:
        """kubectl apply of one object or a list (as JSON); returns the CompletedProcess."""
        docs = [manifest] if isinstance(manifest, Mapping) else list(manifest)
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        return self.kubectl("apply", "-f", "-", stdin=body, **kw)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
