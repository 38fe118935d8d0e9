"""Scaling on the operator's load, on real pods: a Prometheus in the cluster that scrapes the
operator, and the chart's prometheus-adapter serving what it scraped to the HPAs.

Prometheus is Debian's binary in an image made here (`hack/build-images.sh prometheus`), run
with the restricted profile (non-root, read-only root filesystem, its data on an emptyDir),
scraping the operator's Service on its metrics port every SCRAPE_SECONDS with `honor_labels`
(the operator's series carry the step's `namespace`). A static target: no service discovery,
so no RBAC.
"""

from __future__ import annotations

import subprocess
from typing import Any

from tests.e2e.realpods import SYSTEM, Manifest, wait_pods_ready
from tests.integration.localcluster import LocalCluster, wait_until

MONITORING = "monitoring"
PROMETHEUS = "prometheus"
PROMETHEUS_URL = f"http://{PROMETHEUS}.{MONITORING}.svc:9090"
SCRAPE_SECONDS = 2
RELIST_INTERVAL = "5s"  # the adapter's relist: a new step's series is served within this


def prometheus_image() -> str:
    """The tag hack/build-images.sh gives the Prometheus image: Debian's package version."""
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "prometheus"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
    return "stepline/prometheus:" + "".join(c if c in allowed else "_" for c in version)


def prometheus_manifests(release: str) -> list[Manifest]:
    """A one-replica Prometheus scraping every operator pod of `release` (in SYSTEM) on its
    metrics port (no token asked), each pod a target as a ServiceMonitor makes them: each replica
    exports the load it sees (invoke is served by every replica), and the adapter sums them.
    Scraping the chart's Service would read one replica only (a kept-alive connection goes to one
    pod). Debian's Prometheus has no Kubernetes discovery, so the pods are found through a
    headless Service's DNS records."""
    pods = f"{release}-{PROMETHEUS}-targets"
    config = f"""
global: {{scrape_interval: {SCRAPE_SECONDS}s, scrape_timeout: {SCRAPE_SECONDS}s}}
scrape_configs:
  - job_name: stepline
    honor_labels: true
    dns_sd_configs: [{{names: [{pods}.{SYSTEM}.svc.cluster.local], type: A, port: 8082,
                       refresh_interval: {SCRAPE_SECONDS}s}}]
"""
    labels = {"app.kubernetes.io/name": PROMETHEUS}
    targets = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": pods, "namespace": SYSTEM, "labels": labels},
        "spec": {"clusterIP": "None", "ports": [{"name": "metrics", "port": 8082}],
                 "selector": {"app.kubernetes.io/instance": release,
                              "app.kubernetes.io/component": "operator"}},
    }  # fmt: skip
    restricted: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    meta = {"name": PROMETHEUS, "namespace": MONITORING, "labels": labels}
    return [
        targets,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
         "data": {"prometheus.yml": config}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                            "fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": PROMETHEUS,
                            "image": prometheus_image(),
                            "imagePullPolicy": "Never",
                            "args": [
                                "--config.file=/etc/prometheus/prometheus.yml",
                                "--storage.tsdb.path=/data",  # /prometheus is the binary
                                "--storage.tsdb.retention.time=1h",
                                "--web.listen-address=:9090",
                            ],
                            "ports": [{"name": "http", "containerPort": 9090}],
                            "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 9090}},
                            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                          "limits": {"memory": "512Mi"}},
                            "securityContext": restricted,
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/prometheus"},
                                {"name": "data", "mountPath": "/data"},
                            ],
                        }],
                        "volumes": [
                            {"name": "config", "configMap": {"name": PROMETHEUS}},
                            {"name": "data", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 9090}]},
        },
    ]  # fmt: skip


def install_prometheus(cluster: LocalCluster, release: str) -> None:
    """Prometheus in MONITORING (which must exist), scraping the operator of `release`; waits
    until it is Ready."""
    cluster.apply(prometheus_manifests(release))
    wait_pods_ready(cluster, MONITORING, f"app.kubernetes.io/name={PROMETHEUS}", count=1)


def adapter_values() -> list[str]:
    """`helm --set` arguments that turn on the chart's adapter against that Prometheus."""
    return [
        "--set", "scaling.adapter.enabled=true",
        "--set", f"scaling.adapter.prometheusUrl={PROMETHEUS_URL}",
        "--set", f"scaling.adapter.metricsRelistInterval={RELIST_INTERVAL}",
    ]  # fmt: skip


def wait_external_metrics_served(cluster: LocalCluster) -> None:
    """Waits until the aggregation layer serves the adapter's external metrics API."""
    wait_until(
        lambda: cluster.kubectl(
            "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1", check=False
        ).returncode == 0,
        timeout=120, interval=3, what="external.metrics.k8s.io served by the adapter",
    )  # fmt: skip
