"""The external metrics API on the local control plane: a real Prometheus scraping the
operator and a real prometheus-adapter (built from its Go module by hack/build-binaries.sh)
serving `external.metrics.k8s.io` with the chart's own rules file, registered through the API
aggregation layer as the chart registers it.

The adapter listens on an address of the local cluster's range (198.18.0.0/16, routed to this
machine by hack/cluster-up.sh): the aggregation layer routes to a Service's endpoints
(`--enable-aggregator-routing`), and EndpointSlices refuse loopback addresses. So the APIService
points at a Service without selector whose EndpointSlice names that address — what kube-proxy-
less aggregation would do with the adapter's pod. The operator's metrics port is fixed for the
whole module, so that one Prometheus scrapes each test's operator in turn.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.localcluster import REPO, LocalCluster, _tool_path, wait_until
from tests.integration.operatorprocess import free_port
from tests.integration.prometheus import PrometheusServer

RULES = REPO / "charts" / "stepline" / "files" / "prometheus-adapter.yaml"
ADDRESS = "198.18.1.10"  # in the local cluster's range, outside kwok's pod addresses
GROUP_VERSION = "v1beta1.external.metrics.k8s.io"
NAMESPACE = "stepline-metrics-api"


@dataclass
class ExternalMetricsApi:
    cluster: LocalCluster
    workdir: Path
    operator_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    prometheus: PrometheusServer | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "adapter.log"

    def start(self) -> ExternalMetricsApi:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prometheus = PrometheusServer(
            targets=[f"127.0.0.1:{self.operator_port}"],
            workdir=self.workdir / "prometheus",
            rule_files=(),
        ).start()
        self.start_adapter()
        self._register()
        wait_until(self._available, timeout=60, what=f"APIService {GROUP_VERSION} Available")
        return self

    def start_adapter(self) -> None:
        assert self.prometheus is not None
        binary = _tool_path("adapter", "adapter")
        kubeconfig = str(self.cluster.kubeconfig)
        args = [
            str(binary),
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={ADDRESS}",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--prometheus-url={self.prometheus.base_url}",
            "--metrics-relist-interval=2s",
            f"--config={RULES}",
            "--v=2",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def stop_adapter(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self.cluster.kubectl(
            "delete", "apiservice", GROUP_VERSION, "--ignore-not-found", check=False
        )
        self.cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        self.stop_adapter()
        if self.prometheus is not None:
            self.prometheus.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def value(self, namespace: str, step: str, metric: str) -> float | None:
        """The metric as the autoscaler reads it: through the API server and the adapter."""
        path = (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/"
            f"stepline_step_scaling_value?labelSelector=step%3D{step},metric%3D{metric}"
        )
        out = self.cluster.kubectl("get", "--raw", path, check=False)
        if out.returncode != 0:
            return None
        items = json.loads(out.stdout).get("items") or []
        return sum(_quantity(item["value"]) for item in items) if items else None

    def _available(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the adapter exited:\n{self.log_tail()}")
        found = self.cluster.get_json("apiservice", GROUP_VERSION)
        return any(
            c["type"] == "Available" and c["status"] == "True"
            for c in found.get("status", {}).get("conditions") or []
        )

    def _register(self) -> None:
        self.cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        self.cluster.apply(_manifests(self.port))


def _manifests(port: int) -> list[dict[str, Any]]:
    name = "prometheus-adapter"
    reader = "stepline-test-external-metrics-reader"
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-local",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ADDRESS], "conditions": {"ready": True}}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": GROUP_VERSION},
            "spec": {
                "service": {"name": name, "namespace": NAMESPACE, "port": 443},
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
        # As the chart grants: the autoscaler controller may read external metrics.
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reader},
            "rules": [
                {
                    "apiGroups": ["external.metrics.k8s.io"],
                    "resources": ["*"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": reader},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": reader,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "horizontal-pod-autoscaler",
                    "namespace": "kube-system",
                }
            ],
        },
    ]


def _quantity(text: str) -> float:
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    if text.endswith("k"):
        return float(text[:-1]) * 1000
    return float(text)
