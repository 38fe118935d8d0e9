"""The local control plane is a real Kubernetes: controllers, scheduler, kwok nodes, schema
validation, garbage collection, autoscaling and helm all work against it.

Each test fails when the component it exercises is absent (stop kube-controller-manager and the
Deployment, GC and HPA tests time out; stop kwok and no pod runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.localcluster import LocalCluster, pinned_versions, wait_until

TINY_CHART = Path(__file__).parent / "charts" / "tiny"


def deployment(name: str, namespace: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
            },
        },
    }


def test_the_api_server_reports_the_pinned_kubernetes_version(cluster: LocalCluster) -> None:
    pinned = pinned_versions()["KUBE_VERSION"]
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == pinned
    assert f"v{version['major']}.{version['minor']}." in pinned


def test_two_kwok_nodes_are_ready(cluster: LocalCluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert len(ready) >= 2, nodes


def test_a_deployment_becomes_available_with_its_pods_running_on_kwok_nodes(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.apply(deployment("web", namespace))

    def available() -> bool:
        status = cluster.get_json("deployment", "web", "-n", namespace).get("status", {})
        return status.get("availableReplicas") == 2

    wait_until(available, what="deployment web to have 2 available replicas")
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app=web")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]
    node_names = {n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]}
    assert all(p["spec"]["nodeName"] in node_names for p in pods)
    assert all(p["status"].get("podIP") for p in pods)


def test_deleting_an_owner_garbage_collects_what_it_owns(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = cluster.get_json("configmap", "owner", "-n", namespace)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "owned",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
        }
    )
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    def owned_gone() -> bool:
        out = cluster.kubectl("get", "configmap", "owned", "-n", namespace, check=False)
        return "NotFound" in out.stderr

    wait_until(owned_gone, what="the garbage collector to delete configmap 'owned'")


def test_a_crd_is_served_and_its_schema_rejects_a_bad_object(cluster: LocalCluster) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.stepline.io"},
        "spec": {
            "group": "test.stepline.io",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10}
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.apply(crd)
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/gadgets.test.stepline.io", "--timeout=60s"
    )
    gadget = {"apiVersion": "test.stepline.io/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    try:
        good = {**gadget, "metadata": {"name": "good", "namespace": "default"}}
        cluster.apply({**good, "spec": {"size": 3}})
        bad = cluster.apply(
            {**gadget, "metadata": {"name": "bad", "namespace": "default"}, "spec": {"size": 99}},
            check=False,
        )
        assert bad.returncode != 0
        assert "spec.size" in bad.stderr
        assert "should be less than or equal to 10" in bad.stderr
    finally:
        cluster.kubectl("delete", "crd", "gadgets.test.stepline.io", "--wait=false", check=False)


def test_the_controller_manager_writes_the_status_of_an_hpa(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.apply(deployment("scaled", namespace, replicas=1))
    cluster.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "scaled", "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        }
    )

    def hpa_conditions() -> list[dict[str, Any]]:
        hpa = cluster.get_json("hpa", "scaled", "-n", namespace)
        conditions: list[dict[str, Any]] = hpa.get("status", {}).get("conditions", [])
        return conditions

    conditions = wait_until(hpa_conditions, timeout=90, what="the HPA controller to write status")
    assert {c["type"] for c in conditions} >= {"AbleToScale"}


def test_helm_installs_a_chart_into_the_cluster(cluster: LocalCluster, namespace: str) -> None:
    cluster.helm("install", "hello", str(TINY_CHART), "-n", namespace, "--wait", "--timeout=60s")
    data = cluster.get_json("configmap", "hello-tiny", "-n", namespace)["data"]
    assert data["greeting"] == "hello"
    assert data["kubeVersion"] == pinned_versions()["KUBE_VERSION"]
    releases = cluster.helm("list", "-n", namespace, "-o", "json").stdout
    assert '"status":"deployed"' in releases
