"""build_deployment(): the Deployment a ServiceStep becomes, compared value by value."""

from __future__ import annotations

import pytest

from stepline.resources import STEP_LABEL, build_deployment
from tests.unit.resources.samples import NAMESPACE, UID, make_step

LABELS = {
    "app.kubernetes.io/name": "validate",
    "app.kubernetes.io/instance": "validate",
    "app.kubernetes.io/component": "step",
    "app.kubernetes.io/part-of": "stepline",
    "app.kubernetes.io/managed-by": "stepline",
    STEP_LABEL: "validate",
}


def test_the_deployment_is_named_and_labelled_after_the_step_and_owned_by_it() -> None:
    metadata = build_deployment(make_step())["metadata"]
    assert metadata == {
        "name": "validate",
        "namespace": NAMESPACE,
        "labels": LABELS,
        "ownerReferences": [
            {
                "apiVersion": "stepline.io/v1alpha1",
                "kind": "ServiceStep",
                "name": "validate",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def test_the_selector_is_the_step_label_alone_and_the_pods_carry_every_label() -> None:
    spec = build_deployment(make_step())["spec"]
    assert spec["selector"] == {"matchLabels": {STEP_LABEL: "validate"}}
    assert spec["template"]["metadata"]["labels"] == LABELS


def test_the_replica_count_is_left_to_the_autoscaler() -> None:
    step = make_step(image="svc:1", scaling={"minReplicas": 3, "maxReplicas": 9})
    assert "replicas" not in build_deployment(step)["spec"]


def test_the_pod_follows_the_restricted_security_profile() -> None:
    pod = build_deployment(make_step())["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # A read-only root filesystem still leaves the container a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_the_container_runs_the_image_on_the_steps_port_with_its_command_and_env() -> None:
    step = make_step(
        image="registry.example/validate:2",
        command=["python", "-m", "validate"],
        args=["--strict"],
        port=9000,
        env=[
            {"name": "MODE", "value": "strict"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        ],
    )
    (container,) = build_deployment(step)["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "step"
    assert container["image"] == "registry.example/validate:2"
    assert container["command"] == ["python", "-m", "validate"]
    assert container["args"] == ["--strict"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["env"] == [
        {"name": "MODE", "value": "strict"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ]


def test_a_container_without_command_args_or_env_leaves_them_to_the_image() -> None:
    (container,) = build_deployment(make_step())["spec"]["template"]["spec"]["containers"]
    assert not {"command", "args", "env"} & container.keys()
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_default_probes_check_healthz_on_the_named_port() -> None:
    (container,) = build_deployment(make_step())["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }


def test_probes_given_in_the_spec_replace_the_defaults() -> None:
    step = make_step(
        image="svc:1",
        probes={
            "readiness": {"path": "/ready", "port": 9090, "periodSeconds": 2},
            "liveness": {"path": "/alive", "initialDelaySeconds": 15, "failureThreshold": 6},
        },
    )
    (container,) = build_deployment(step)["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 9090},
        "initialDelaySeconds": 0,
        "periodSeconds": 2,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/alive", "port": "http"},
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "failureThreshold": 6,
    }


def test_resources_default_to_a_cpu_request_so_the_autoscaler_can_work() -> None:
    (container,) = build_deployment(make_step())["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_resources_in_the_spec_are_merged_over_the_defaults_per_resource() -> None:
    step = make_step(image="svc:1", resources={"requests": {"cpu": "250m"}, "limits": {"cpu": 1}})
    (container,) = build_deployment(step)["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "64Mi"},
        "limits": {"memory": "256Mi", "cpu": 1},
    }


def test_building_twice_gives_equal_manifests_and_shares_no_mutable_defaults() -> None:
    first = build_deployment(make_step())
    first["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "9"
    first["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    second = build_deployment(make_step())
    (container,) = second["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert second["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_step_with_a_url_has_no_deployment() -> None:
    with pytest.raises(ValueError, match="no image"):
        build_deployment(make_step(url="https://partner.example/validate"))
