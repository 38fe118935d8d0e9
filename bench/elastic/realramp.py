"""The load traces of bench/elastic/ramp.py on real pods: reactive in-flight scaling against
reactive and predictive calls-per-second scaling, one mode after the other in one run on kind.

    E2E_KEEP_CLUSTER=1 hack/e2e.sh --co -q      # a kind cluster with Stepline's images loaded
    .venv/bin/python -m bench.elastic.realramp \\
        --kubeconfig ~/.cache/stepline/kind/stepline-e2e.kubeconfig [--traces ramp] [--out F]

Everything is real: the chart installed with its prometheus-adapter, a Prometheus in the cluster
scraping the operator every 2 s (tests/e2e/metricsstack.py), the HPA controller at kind's
default 15 s sync, the pods' start-up, and the step's capacity — the finance user-validation
image told to wait 0.5 s per call and take one call at a time (`--wait-ms-per-call 500
--concurrency 1`: 2 calls/s per replica; calls beyond queue in the pod). Calls are invokes sent
to the operator's Service through a NodePort (no port-forward in the way), on the trace's
schedule whatever earlier calls did. The traces are ramp.py's with the rates scaled to what one
2-core machine runs beside its cluster: base RATE_BASE, peaks scaled by RATE_SCALE.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.elastic.ramp import TRACES, Outcome, Trace, drive
from tests.e2e import metricsstack
from tests.e2e.realpods import (
    CHART,
    SYSTEM,
    restricted_namespace,
    step_selector,
    wait_pods_ready,
    wait_step_ready,
)
from tests.e2e.scaling import BODY
from tests.integration.localcluster import LocalCluster, wait_until

RELEASE = "stepline"
STEP, WORKFLOW = "capacity", "ramp"
WAIT_MS, CONCURRENCY = 500, 1
REPLICA_RATE = CONCURRENCY * 1000 / WAIT_MS  # 2 calls/s
RATE_BASE, RATE_SCALE = 1.0, 12 / 28  # ramp.py's 2 → 28 calls/s becomes 1 → 12
MAX_REPLICAS = 10
MODES: dict[str, dict[str, Any]] = {
    "inflight": {"metrics": [{"type": "InFlight", "target": CONCURRENCY}]},
    "rate75": {"metrics": [{"type": "CallsPerSecond", "target": 0.75 * REPLICA_RATE}]},
    "rate75-predictive": {
        "metrics": [{"type": "CallsPerSecond", "target": 0.75 * REPLICA_RATE}],
        "predictive": True,
    },
}


def scaled(trace: Trace) -> Trace:
    return dataclasses.replace(trace, base=RATE_BASE, peak=round(trace.peak * RATE_SCALE, 1))


def manifests(namespace: str, mode: str) -> list[dict[str, Any]]:
    step = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {"name": STEP, "namespace": namespace},
        "spec": {
            "image": "stepline/finance-user-validation:0.1.0",
            "args": [
                "--port",
                "8080",
                "--wait-ms-per-call",
                str(WAIT_MS),
                "--concurrency",
                str(CONCURRENCY),
            ],
            "port": 8080,
            "path": "/validate",
            "resources": {
                "requests": {"cpu": "20m", "memory": "48Mi"},
                "limits": {"cpu": "250m", "memory": "128Mi"},
            },
            "probes": {"readiness": {"path": "/healthz"}},
            "timeoutSeconds": 60,
            "scaling": {"minReplicas": 1, "maxReplicas": MAX_REPLICAS, **MODES[mode]},
        },
    }
    workflow = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": WORKFLOW, "namespace": namespace},
        "spec": {"steps": [{"name": "work", "stepRef": STEP}], "concurrency": 1000},
    }
    return [step, workflow]


def install(cluster: LocalCluster) -> tuple[str, str]:
    """The chart (NodePort, adapter on, invoke without tokens: scaling is measured here, not
    who may invoke) and Prometheus; returns the operator's invoke and metrics base URLs."""
    for namespace in (SYSTEM, metricsstack.MONITORING):
        restricted_namespace(cluster, namespace)
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART), "--namespace", SYSTEM,
        "--set", "service.type=NodePort", "--set", "operator.invokeAuth.enabled=false",
        *metricsstack.adapter_values(),
        "--wait", "--timeout", "240s",
    )  # fmt: skip
    metricsstack.install_prometheus(cluster, RELEASE)
    metricsstack.wait_external_metrics_served(cluster)
    node = cluster.get_json("nodes")["items"][0]
    (address,) = (a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    service = cluster.get_json("service", RELEASE, "-n", SYSTEM)
    ports = {p["name"]: p["nodePort"] for p in service["spec"]["ports"]}
    return f"http://{address}:{ports['http']}", f"http://{address}:{ports['metrics']}"


def watch(cluster: LocalCluster, namespace: str, outcome: Outcome, stop: threading.Event) -> None:
    start = last = time.monotonic()
    while not stop.is_set():
        found = cluster.get_json("deployment", STEP, "-n", namespace)
        replicas = int(found["spec"].get("replicas") or 0)
        available = int(found.get("status", {}).get("availableReplicas") or 0)
        now = time.monotonic()
        outcome.record(now - start, now - last, replicas=replicas, available=available)
        last = now
        stop.wait(1.0)


def lead_of(metrics_url: str, namespace: str) -> float | None:
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    found = re.search(
        rf'^stepline_step_scaling_lead_seconds\{{[^}}]*namespace="{namespace}"[^}}]*\}} (\S+)$',
        text, re.M,
    )  # fmt: skip
    return round(float(found.group(1)), 1) if found else None


def run_mode(cluster: LocalCluster, urls: tuple[str, str], mode: str, trace: Trace) -> Outcome:
    base_url, metrics_url = urls
    namespace = f"real-{trace.name}-{mode}"
    restricted_namespace(cluster, namespace)
    outcome = Outcome(mode, trace, REPLICA_RATE)
    try:
        cluster.apply(manifests(namespace, mode))
        wait_step_ready(cluster, STEP, namespace)
        wait_pods_ready(cluster, namespace, step_selector(STEP), count=1)
        wait_until(  # the HPA reads its External metric before the trace starts
            lambda: (cluster.get_json("hpa", STEP, "-n", namespace).get("status") or {}).get(
                "currentMetrics"
            ),
            timeout=180, interval=3, what=f"{namespace}'s HPA reading the operator's figure",
        )  # fmt: skip
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch, args=(cluster, namespace, outcome, stop), daemon=True
        )
        watcher.start()
        url = f"{base_url}/v1/namespaces/{namespace}/workflows/{WORKFLOW}:invoke"
        asyncio.run(drive(url, outcome, BODY))
        stop.set()
        watcher.join()
        outcome.lead_seconds = lead_of(metrics_url, namespace)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, help="a kind cluster with the images")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--traces", default="ramp", help=f"of {', '.join(TRACES)}")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (with timelines)")
    args = parser.parse_args(argv)
    cluster = LocalCluster.attach(args.kubeconfig)
    urls = install(cluster)
    results: list[dict[str, Any]] = []
    for name in args.traces.split(","):
        for mode in args.modes.split(","):
            outcome = run_mode(cluster, urls, mode, scaled(TRACES[name]))
            print(json.dumps(outcome.summary()), flush=True)
            results.append({**outcome.summary(), "timeline": outcome.timeline})
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
