"""The Helm chart, rendered locally (`helm lint --strict`, `helm template`; no cluster): each values
combination that matters renders the objects it should, the restricted security context and the
least-privilege RBAC hold in every mode, the values schema rejects wrong values with a message
that names the field, and the chart's copies (CRDs, dashboards, monitoring objects) and the plain
manifests/ equal their sources.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stepline"
Manifest = dict[str, Any]


@cache
def helm_binary() -> Path:
    out = subprocess.run(
        [str(REPO / "hack" / "build-binaries.sh"), "helm"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().partition("=")[2]) / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, check=check, timeout=60
    )


def render(*sets: str, namespace: str = "stepline-system") -> list[Manifest]:
    args = [arg for item in sets for arg in ("--set", item)]
    out = helm("template", "stepline", str(CHART), "--namespace", namespace, *args)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def of_kind(docs: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Sequence[Manifest], kind: str) -> Manifest:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def granted(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_chart_passes_helm_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART), check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_defaults_render_one_replica_rolled_without_a_gap_with_the_restricted_context() -> None:
    deployment = one(render(), "Deployment")
    spec = deployment["spec"]
    # Two pods may overlap: only the Lease's holder writes, and the new pod is up first.
    assert (spec["replicas"], spec["strategy"]["type"]) == (1, "RollingUpdate")
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    # Ready once its watch caches are warm, leader or standby (wiring.replica_readiness).
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080, "metrics": 8082, "liveness": 8081}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["STEPLINE_NAMESPACES"] == ""
    assert (env["STEPLINE_HTTP_PORT"], env["STEPLINE_METRICS_PORT"]) == ("8080", "8082")
    assert env["STEPLINE_INVOKE_AUTH"] == "true"
    assert "STEPLINE_PEERING" not in env
    assert env["STEPLINE_LEASE_NAME"] == "stepline"
    fields = {item["name"]: item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              for item in container["env"]}  # fmt: skip
    assert fields["STEPLINE_LEASE_NAMESPACE"] == "metadata.namespace"
    assert fields["STEPLINE_POD_ID"] == "metadata.name"


def test_the_service_carries_the_labels_and_metrics_port_the_service_monitor_selects() -> None:
    docs = render("monitoring.serviceMonitor.enabled=true")
    service, monitor = one(docs, "Service"), one(docs, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "metrics": (8082, "metrics")}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    assert monitor["metadata"]["namespace"] == "stepline-system"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["stepline-system"]}


def test_cluster_wide_mode_grants_a_cluster_role_and_nothing_it_does_not_use() -> None:
    docs = render()
    assert [role["metadata"]["name"] for role in of_kind(docs, "Role")] == [
        "stepline-leader-election"
    ]
    rules = granted(named(docs, "ClusterRole", "stepline"))
    assert ("", "secrets", "get") not in rules
    assert not any(resource in {"pods", "configmaps", "secrets"} for _, resource, _ in rules)
    # update only on finalizers: what blockOwnerDeletion on an owned object needs of its owner
    assert not any(verb in {"*", "update", "deletecollection"} for _, resource, verb in rules
                   if resource not in {"servicesteps/finalizers",
                                       "workflowschedules/finalizers"})  # fmt: skip
    assert {
        ("stepline.io", "servicesteps", "watch"),
        ("stepline.io", "workflowruns/status", "patch"),
        ("stepline.io", "workflowruns", "create"),
        ("stepline.io", "workflowschedules", "watch"),
        ("stepline.io", "workflowschedules/status", "patch"),
        ("stepline.io", "workflowschedules/finalizers", "update"),
        ("apps", "deployments", "create"),
        ("autoscaling", "horizontalpodautoscalers", "delete"),
        ("", "events", "create"),
        ("", "namespaces", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    } <= rules
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stepline", "namespace": "stepline-system"}
    ]


def test_namespaced_mode_grants_roles_only_in_the_watched_namespaces() -> None:
    docs = render("watchNamespaces={shop,factory}")
    roles = [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == "stepline"]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["factory", "shop"]
    bindings = [b for b in of_kind(docs, "RoleBinding") if b["metadata"]["name"] == "stepline"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["factory", "shop"]
    cluster_rules = granted(named(docs, "ClusterRole", "stepline"))
    assert {group for group, _, _ in cluster_rules} == {
        "apiextensions.k8s.io", "", "authentication.k8s.io", "authorization.k8s.io",
        "admissionregistration.k8s.io",  # the Approval policies, read by name
    }  # fmt: skip
    assert {resource for _, resource, _ in cluster_rules} == {
        "customresourcedefinitions", "namespaces", "tokenreviews", "subjectaccessreviews",
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
    }  # fmt: skip
    assert all(("apps", "deployments", "patch") in granted(role) for role in roles)
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STEPLINE_NAMESPACES", "value": "shop,factory"} in env


@pytest.mark.parametrize("mode", [(), ("watchNamespaces={shop}",)], ids=["cluster-wide", "shop"])
def test_ha_runs_several_replicas_electing_a_leader_on_a_lease_of_their_own(
    mode: tuple[str, ...],
) -> None:
    docs = render("ha.enabled=true", "ha.replicas=3", "podDisruptionBudget.enabled=true", *mode)
    deployment = one(docs, "Deployment")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (
        3, "RollingUpdate",
    )  # fmt: skip
    assert not any("kopf.dev" in str(doc) or "Peering" in doc["kind"] for doc in docs)
    election = named(docs, "Role", "stepline-leader-election")
    assert election["metadata"]["namespace"] == "stepline-system"
    assert election["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["stepline"], "verbs": ["get", "update"]},
    ]  # fmt: skip
    binding = named(docs, "RoleBinding", "stepline-leader-election")
    assert binding["subjects"][0]["name"] == "stepline"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_optional_objects_are_off_by_default() -> None:
    kinds = {doc["kind"] for doc in render()}
    assert kinds == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
        "NetworkPolicy",  # on by default
        "Role", "RoleBinding",  # the leader election's
        # approvals, on by default: their admission policies and bindings
        "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    }  # fmt: skip


def test_the_prometheus_rule_keeps_prometheus_templates_and_gets_the_release_namespace() -> None:
    rule = one(render("monitoring.prometheusRule.enabled=true", namespace="ops"), "PrometheusRule")
    assert rule["metadata"]["namespace"] == "ops"
    text = json.dumps(rule)
    assert "{{ $labels.workflow }}" in text or "$labels.workflow" in text
    assert "__NAMESPACE__" not in text
    source = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == source["spec"]


def test_dashboards_ship_as_config_maps_for_the_grafana_sidecar() -> None:
    maps = of_kind(render("monitoring.dashboards.enabled=true"), "ConfigMap")
    sources = sorted((REPO / "dashboards").glob("*.json"))
    assert len(maps) == len(sources)
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, body),) = config_map["data"].items()
        assert json.loads(body) == json.loads((REPO / "dashboards" / key).read_text())


def test_the_network_policy_is_on_by_default_and_admits_only_the_operators_ports() -> None:
    policy = one(render(), "NetworkPolicy")
    ports = [port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]]
    assert ports == ["http", "metrics", "liveness"]
    assert of_kind(render("networkPolicy.enabled=false"), "NetworkPolicy") == []


def test_the_network_policy_admits_the_listed_peers_to_the_invoke_and_metrics_ports() -> None:
    shop = "networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=shop"
    monitoring = "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring"
    policy = one(render(shop, monitoring), "NetworkPolicy")
    by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert by_port == {
        "http": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}],
        "metrics": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
        "liveness": None,
    }


@pytest.mark.parametrize("mode", [(), ("watchNamespaces={shop}",)])
def test_the_operator_may_create_token_and_access_reviews_while_invoke_auth_is_on(
    mode: tuple[str, ...],
) -> None:
    reviews = {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    on = granted(named(render(*mode), "ClusterRole", "stepline"))
    off_docs = render("operator.invokeAuth.enabled=false", *mode)
    off = granted(named(off_docs, "ClusterRole", "stepline"))
    assert reviews <= on
    assert not reviews & off
    env = one(off_docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STEPLINE_INVOKE_AUTH", "value": "false"} in env


def test_the_invoker_cluster_role_grants_invoke_on_workflows_and_nothing_else() -> None:
    invoker = named(render(), "ClusterRole", "stepline-invoker")
    assert granted(invoker) == {("stepline.io", "workflows", "invoke")}
    assert not any("aggregate-to" in label for label in invoker["metadata"]["labels"])
    aggregated = named(render("rbac.invokerAggregateTo={admin,edit}"), "ClusterRole",
                       "stepline-invoker")  # fmt: skip
    labels = aggregated["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert not [doc for doc in render("rbac.create=false") if "Role" in doc["kind"]]


def test_invoke_auth_settings_reach_the_operator() -> None:
    docs = render(
        "operator.invokeAuth.audiences={stepline,other}",
        "operator.invokeAuth.allowedCacheSeconds=30",
        "operator.invokeAuth.deniedCacheSeconds=1",
    )
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STEPLINE_INVOKE_AUTH_AUDIENCES", "value": "stepline,other"} in env
    assert {"name": "STEPLINE_INVOKE_AUTH_ALLOWED_TTL_SECONDS", "value": "30"} in env
    assert {"name": "STEPLINE_INVOKE_AUTH_DENIED_TTL_SECONDS", "value": "1"} in env


def test_tracing_settings_reach_the_operator_and_tracing_is_off_by_default() -> None:
    def env_of(*values: str) -> list[dict[str, str]]:
        deployment = one(render(*values), "Deployment")
        env: list[dict[str, str]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        return env

    assert {"name": "STEPLINE_TRACING_ENDPOINT", "value": ""} in env_of()
    env = env_of(
        "operator.tracing.endpoint=http://jaeger-collector.observability:4318",
        "operator.tracing.samplingRatio=0",
    )
    endpoint = "http://jaeger-collector.observability:4318"
    assert {"name": "STEPLINE_TRACING_ENDPOINT", "value": endpoint} in env
    assert {"name": "STEPLINE_TRACING_SAMPLING_RATIO", "value": "0"} in env
    assert {"name": "STEPLINE_TRACING_EXPORT_TIMEOUT_SECONDS", "value": "5"} in env


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("ha.replicas=1", "at '/ha/replicas': minimum: got 1, want 2"),
        ("watchNamespaces={Shop_Floor}", "at '/watchNamespaces/0': 'Shop_Floor' does not match"),
        ("operator.httpPort=70000", "at '/operator/httpPort': maximum: got 70,000, want 65,535"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("service.type=ExternalName", "at '/service/type': value must be one of"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("monitoring.serviceMonitor.enabled=yes", "at '/monitoring/serviceMonitor/enabled'"),
        ("operator.invokeAuth.enabled=maybe", "at '/operator/invokeAuth/enabled'"),
        ("operator.invokeAuth.deniedCacheSeconds=-1", "'/operator/invokeAuth/deniedCacheSeconds'"),
        ("rbac.invokerAggregateTo={view}", "at '/rbac/invokerAggregateTo/0'"),
        ("operator.metricsPort=0", "at '/operator/metricsPort'"),
        ("operator.tracing.samplingRatio=2", "at '/operator/tracing/samplingRatio': maximum"),
        ("operator.tracing.samplingRatio=half", "at '/operator/tracing/samplingRatio': got string"),
        ("operator.tracing.endpoint=jaeger:4318", "at '/operator/tracing/endpoint'"),
    ],
)
def test_the_values_schema_rejects_a_wrong_value_naming_the_field(bad: str, message: str) -> None:
    out = helm("template", "stepline", str(CHART), "--set", bad, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
ADAPTER = ("scaling.adapter.enabled=true", f"scaling.adapter.prometheusUrl={PROMETHEUS}")


def adapter_objects(docs: Sequence[Manifest]) -> list[Manifest]:
    return [
        doc for doc in docs
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        == "prometheus-adapter"
    ]  # fmt: skip


def named(docs: Sequence[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    return found


def test_the_external_metrics_adapter_is_off_by_default() -> None:
    docs = render()
    assert adapter_objects(docs) == []
    assert of_kind(docs, "APIService") == []


def test_the_adapter_registers_the_external_metrics_api_and_runs_restricted() -> None:
    docs = render(*ADAPTER)
    service = named(docs, "Service", "stepline-prometheus-adapter")
    api = one(docs, "APIService")
    assert api["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    assert api["spec"] == {
        "group": "external.metrics.k8s.io", "version": "v1beta1",
        "service": {"name": "stepline-prometheus-adapter", "namespace": "stepline-system",
                    "port": 443},
        "groupPriorityMinimum": 100, "versionPriority": 100, "insecureSkipTLSVerify": True,
    }  # fmt: skip
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https")]

    deployment = named(docs, "Deployment", "stepline-prometheus-adapter")
    pod = deployment["spec"]["template"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod_labels
    operator_selector = named(docs, "Service", "stepline")["spec"]["selector"]
    assert not operator_selector.items() <= pod_labels, "the operator's Service selects the adapter"
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == "stepline-prometheus-adapter"
    assert pod["securityContext"]["runAsUser"] == 65534
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "stepline/prometheus-adapter:v0.12.0"
    assert container["args"] == [
        "--secure-port=6443", "--cert-dir=/tmp/cert", f"--prometheus-url={PROMETHEUS}",
        "--metrics-relist-interval=30s", "--config=/etc/adapter/config.yaml", "--v=1",
    ]  # fmt: skip
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsUser"] == 65534
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz", "port": "https", "scheme": "HTTPS",
    }  # fmt: skip
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/livez", "port": "https", "scheme": "HTTPS",
    }  # fmt: skip
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 (the pod's scratch dir, not ours)
    assert volumes[mounts["/etc/adapter"]]["configMap"]["name"] == "stepline-prometheus-adapter"


def test_the_adapter_delegates_auth_and_the_autoscaler_may_read_external_metrics() -> None:
    docs = render(*ADAPTER)
    adapter = {"kind": "ServiceAccount", "name": "stepline-prometheus-adapter",
               "namespace": "stepline-system"}  # fmt: skip
    bindings = {b["roleRef"]["name"]: b for b in of_kind(docs, "ClusterRoleBinding")}
    assert bindings["system:auth-delegator"]["subjects"] == [adapter]
    reader = named(docs, "RoleBinding", "stepline-prometheus-adapter-auth-reader")
    assert reader["metadata"]["namespace"] == "kube-system"
    assert reader["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
        "name": "extension-apiserver-authentication-reader",
    }  # fmt: skip
    assert reader["subjects"] == [adapter]

    hpa_reader = named(docs, "ClusterRole", "stepline-external-metrics-reader")
    assert granted(hpa_reader) == {
        ("external.metrics.k8s.io", "*", verb) for verb in ("get", "list", "watch")
    }
    assert bindings["stepline-external-metrics-reader"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"}
    ]
    resources = named(docs, "ClusterRole", "stepline-prometheus-adapter-resource-reader")
    assert {verb for _, _, verb in granted(resources)} == {"get", "list", "watch"}
    assert bindings["stepline-prometheus-adapter-resource-reader"]["subjects"] == [adapter]


def test_the_adapter_config_serves_the_step_scaling_value_as_an_external_metric() -> None:
    config_map = named(render(*ADAPTER), "ConfigMap", "stepline-prometheus-adapter")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config == yaml.safe_load((CHART / "files" / "prometheus-adapter.yaml").read_text())
    assert set(config) == {"externalRules"}, "the adapter serves external metrics only"
    (rule,) = config["externalRules"]
    assert rule["seriesQuery"].startswith("stepline_step_scaling_value{")
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}
    assert rule["name"]["as"] == "stepline_step_scaling_value"
    assert rule["metricsQuery"].startswith("sum(<<.Series>>{<<.LabelMatchers>>})")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("scaling.adapter.enabled=true",), "at '/scaling/adapter/prometheusUrl': minLength"),
        (("scaling.adapter.prometheusUrl=prometheus:9090",),
         "at '/scaling/adapter/prometheusUrl': 'prometheus:9090' does not match"),
        ((*ADAPTER, "scaling.adapter.metricsRelistInterval=soon"),
         "at '/scaling/adapter/metricsRelistInterval': 'soon' does not match"),
        (("scaling.adapter.replicas=two",),
         "at '/scaling/adapter/replicas': got string, want integer"),
        (("scaling.adapter.image.pullPolicy=Sometimes",),
         "at '/scaling/adapter/image/pullPolicy': value must be one of"),
        (("scaling.adapter.logLevel=11",), "at '/scaling/adapter/logLevel': maximum"),
        (("scaling.adapter.enable=true",), "additional properties 'enable' not allowed"),
    ],
)  # fmt: skip
def test_the_values_schema_rejects_a_wrong_adapter_value_naming_the_field(
    bad: tuple[str, ...], message: str
) -> None:
    args = [arg for item in bad for arg in ("--set", item)]
    out = helm("template", "stepline", str(CHART), *args, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("copies", "source", "pattern"),
    [
        ("crds", "crds", "*.yaml"),
        ("files/dashboards", "dashboards", "*.json"),
        ("files/monitoring", "deploy/monitoring", "*.yaml"),
        ("files/admission", "deploy/admission", "*.yaml"),
    ],
)
def test_the_charts_copies_equal_their_sources(copies: str, source: str, pattern: str) -> None:
    names = sorted(path.name for path in (REPO / source).glob(pattern))
    assert sorted(path.name for path in (CHART / copies).glob(pattern)) == names
    _, mismatch, errors = filecmp.cmpfiles(REPO / source, CHART / copies, names, shallow=False)
    assert (mismatch, errors) == ([], []), "run hack/render-manifests.sh"


def test_the_plain_manifests_are_the_chart_rendered(tmp_path: Path) -> None:
    subprocess.run(
        [str(REPO / "hack" / "render-manifests.sh"), str(tmp_path)],
        capture_output=True, check=True,
    )  # fmt: skip
    comparison = filecmp.dircmp(REPO / "manifests", tmp_path)
    differing = comparison.diff_files + comparison.left_only + comparison.right_only
    differing += comparison.subdirs["crds"].diff_files if "crds" in comparison.subdirs else []
    assert differing == [], "manifests/ drifted from the chart: run hack/render-manifests.sh"
