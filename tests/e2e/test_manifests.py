"""The plain manifests (`kubectl apply -k manifests/`, rendered from the chart) on real pods: the
operator comes up in stepline-system, runs the finance example's steps as pods and a run to its
right output, and `kubectl delete -k manifests/` removes it."""

from __future__ import annotations

import json

from tests.e2e import expected
from tests.e2e.realpods import (
    EXAMPLES,
    MANIFESTS,
    OPERATOR_SELECTOR,
    SYSTEM,
    apply_file,
    pods,
    restricted_namespace,
    step_selector,
    wait_pods_ready,
    wait_run_finished,
    wait_step_ready,
)
from tests.integration.localcluster import LocalCluster, wait_until

NAMESPACE = "plain"


def test_the_plain_manifests_run_the_finance_example_and_delete_cleanly(
    kind: LocalCluster,
) -> None:
    kind.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(MANIFESTS), timeout=120)
    try:
        restricted_namespace(kind, NAMESPACE)
        wait_pods_ready(kind, SYSTEM, OPERATOR_SELECTOR, count=1)
        apply_file(kind, "finance/servicesteps.yaml", NAMESPACE)
        apply_file(kind, "finance/workflow.yaml", NAMESPACE)
        for step, replicas in (("user-validation", 1), ("order-processing", 2)):
            wait_step_ready(kind, step, NAMESPACE)
            wait_pods_ready(kind, NAMESPACE, step_selector(step), count=replicas)
        kind.kubectl("create", "-n", NAMESPACE, "-f", str(EXAMPLES / "finance/workflowrun.yaml"))
        run = wait_run_finished(kind, "trade-ada-1", NAMESPACE)
        assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"], indent=1)
        run_input = run["spec"]["input"]
        assert expected.without_run_ids(run["status"]["output"]) == expected.trade(run_input)
        # Deleting the steps while the operator runs lets it release them (finalizers). The
        # folder also holds a run never created here (workflowrun-unsettled.yaml).
        kind.kubectl("delete", "-n", NAMESPACE, "-f", str(EXAMPLES / "finance"), "--wait",
                     "--ignore-not-found", timeout=120)  # fmt: skip
    finally:
        kind.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false",
                     check=False)  # fmt: skip
        kind.kubectl("delete", "-k", str(MANIFESTS), "--ignore-not-found", "--wait",
                     timeout=180, check=False)  # fmt: skip
    wait_until(
        lambda: not pods(kind, SYSTEM, OPERATOR_SELECTOR)
        and not kind.get_json("deployments", "-A", "-l", "app.kubernetes.io/part-of=stepline")[
            "items"
        ],
        timeout=120, interval=2, what="nothing of Stepline left running",
    )  # fmt: skip
