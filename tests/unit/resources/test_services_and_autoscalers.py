"""build_service() and build_autoscaler(): the Service in front of a step's pods and the
HorizontalPodAutoscaler that sizes its Deployment."""

from __future__ import annotations

from stepline.resources import STEP_LABEL, build_autoscaler, build_deployment, build_service
from tests.unit.resources.samples import make_step


def test_the_service_selects_the_steps_pods_on_its_port_by_name() -> None:
    service = build_service(make_step(image="svc:1", port=9000))
    assert service["apiVersion"] == "v1"
    assert service["kind"] == "Service"
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {STEP_LABEL: "validate"},
        "ports": [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}],
    }


def test_the_service_and_the_autoscaler_share_the_deployments_metadata() -> None:
    step = make_step()
    deployment = build_deployment(step)["metadata"]
    assert build_service(step)["metadata"] == deployment
    assert build_autoscaler(step)["metadata"] == deployment


def test_the_service_selector_matches_the_pod_template_labels() -> None:
    step = make_step()
    pod_labels = build_deployment(step)["spec"]["template"]["metadata"]["labels"]
    selector = build_service(step)["spec"]["selector"]
    assert selector.items() <= pod_labels.items()


def test_the_autoscaler_scales_the_steps_deployment_on_cpu_within_the_bounds() -> None:
    step = make_step(
        image="svc:1",
        scaling={"minReplicas": 2, "maxReplicas": 7, "targetCPUUtilizationPercentage": 65},
    )
    autoscaler = build_autoscaler(step)
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["kind"] == "HorizontalPodAutoscaler"
    assert autoscaler["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "validate"},
        "minReplicas": 2,
        "maxReplicas": 7,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 65},
                },
            }
        ],
    }


def test_without_scaling_the_autoscaler_keeps_one_to_five_replicas_at_80_percent() -> None:
    spec = build_autoscaler(make_step())["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 5)
    assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert "behavior" not in spec


def test_the_scaling_behavior_is_copied_as_autoscaling_v2_spells_it() -> None:
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        },
    }
    step = make_step(image="svc:1", scaling={"maxReplicas": 10, "behavior": behavior})
    assert build_autoscaler(step)["spec"]["behavior"] == behavior


def test_a_behavior_in_one_direction_only_leaves_the_other_to_kubernetes() -> None:
    behavior = {"scaleDown": {"selectPolicy": "Disabled"}}
    step = make_step(image="svc:1", scaling={"behavior": behavior})
    assert build_autoscaler(step)["spec"]["behavior"] == behavior


def test_in_flight_and_calls_per_second_become_external_metrics_on_the_operators_gauge() -> None:
    step = make_step(
        image="svc:1",
        scaling={
            "metrics": [
                {"type": "InFlight", "target": 4},
                {"type": "CallsPerSecond", "target": 2.5},
            ]
        },
    )
    metrics = build_autoscaler(step)["spec"]["metrics"]
    assert metrics == [
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "stepline_step_scaling_value",
                    "selector": {"matchLabels": {"step": "validate", "metric": "in_flight"}},
                },
                "target": {"type": "AverageValue", "averageValue": "4"},
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "stepline_step_scaling_value",
                    "selector": {"matchLabels": {"step": "validate", "metric": "calls_per_second"}},
                },
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        },
    ]


def test_cpu_among_the_metrics_takes_its_target_or_the_percentage_field() -> None:
    step = make_step(
        image="svc:1",
        scaling={
            "targetCPUUtilizationPercentage": 70,
            "metrics": [{"type": "CPU"}, {"type": "InFlight", "target": 0.5}],
        },
    )
    metrics = build_autoscaler(step)["spec"]["metrics"]
    assert metrics[0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert metrics[1]["external"]["target"]["averageValue"] == "500m"
    own = make_step(image="svc:1", scaling={"metrics": [{"type": "CPU", "target": 55}]})
    only = build_autoscaler(own)["spec"]["metrics"]
    assert only == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 55},
            },
        }
    ]
