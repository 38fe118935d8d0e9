"""Approvals on the real control plane, through the API server's own admission: the generated
policies (deploy/admission/approval-policies.yaml) refuse a ServiceAccount without verb `approve`
on the Workflow with the policy's message, admit one with it and stamp its name over whatever the
client wrote, refuse a rejection without a reason and any change of the spec; the operator (a
process) judges each Approval from the run as the API server holds it: Recorded for a run waiting
at the step (owned by the run, an Approved Event, counted), NotWaiting, WorkflowMismatch and
RunNotFound otherwise, and Unverified once a policy binding is deleted. `stepline approve` runs as
the approver would run it, with a kubeconfig holding only its token.

Runs that really wait come from the engine's side; here a run stands still (its Workflow does not
exist, so the operator leaves it Pending) and its status is patched to show its step `release`
waiting (`kubectl patch --subresource=status`), as the engine writes it. While the WorkflowRun
CRD does not know the phase `Waiting` yet, the module adds it to the served CRD's step phases
(and a `waitingFor` list), a stand-in that does nothing once the engine's schema has them.

One namespace, operator and set of accounts serve the module; its tests run in file order, the
policy deletion last (it puts the policies back).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import REPO, LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, condition, get
from tests.integration.stepservices import account_token

pytestmark = pytest.mark.integration

POLICIES = REPO / "deploy" / "admission" / "approval-policies.yaml"
VALIDATING_BINDING = "validatingadmissionpolicybinding/approvals.stepline.io-approver"
WORKFLOW = "production-shift"
WAITING_RUN = "line-7-morning"
IDLE_RUN = "line-8-morning"  # exists, waits for nothing
# The operator checks the policies this often here (60 s by default).
CHECK_SECONDS = 2
JUDGED_TIMEOUT = 30.0


@dataclass(frozen=True)
class Bed:
    cluster: LocalCluster
    namespace: str
    operator: OperatorProcess
    kubeconfigs: dict[str, Path]  # account → a kubeconfig holding only its token

    def user(self, account: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{account}"

    def as_account(self, account: str, *args: str, stdin: str | None = None) -> Any:
        """kubectl as the ServiceAccount `account`; the CompletedProcess, not checked."""
        return subprocess.run(
            [str(self.cluster.kubectl_path), "--kubeconfig", str(self.kubeconfigs[account]),
             "-n", self.namespace, *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def create_as(self, account: str | None, **spec: Any) -> Any:
        """Creates an Approval (as the module's admin when `account` is None); the process."""
        body = json.dumps(approval(self.namespace, **spec))
        if account is None:
            return self.cluster.kubectl("create", "-o", "json", "-f", "-", stdin=body, check=False)
        return self.as_account(account, "create", "-o", "json", "-f", "-", stdin=body)


def approval(namespace: str, **spec: Any) -> dict[str, Any]:
    run = spec.setdefault("runRef", WAITING_RUN)
    step = spec.setdefault("step", "release")
    spec.setdefault("workflowRef", WORKFLOW)
    spec.setdefault("decision", "Approve")
    return {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"generateName": f"{run}-{step}-", "namespace": namespace},
        "spec": spec,
    }


def kubeconfig_of(cluster: LocalCluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with the cluster's server and CA and a token of the ServiceAccount only."""
    view = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": view["clusters"][0]["cluster"]}],
        "users": [{"name": account, "user": {"token": account_token(cluster, namespace, account)}}],
        "contexts": [{"name": account,
                      "context": {"cluster": "c", "user": account, "namespace": namespace}}],
        "current-context": account,
    }  # fmt: skip
    path.write_text(json.dumps(config))
    return path


def grant(cluster: LocalCluster, namespace: str, account: str, *, approve: list[str]) -> None:
    """The ServiceAccount, allowed to create Approvals and read runs and workflows; with verb
    `approve` on the Workflows named in `approve` (resourceNames), as a user grants it."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": ["stepline.io"], "resources": ["approvals"],
         "verbs": ["create", "get", "list", "watch"]},
        {"apiGroups": ["stepline.io"], "resources": ["workflowruns", "workflows"],
         "verbs": ["get"]},
    ]  # fmt: skip
    if approve:
        rules.append({"apiGroups": ["stepline.io"], "resources": ["workflows"],
                      "resourceNames": approve, "verbs": ["approve"]})  # fmt: skip
    meta = {"name": account, "namespace": namespace}
    cluster.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ])  # fmt: skip


def admit_waiting_runs(cluster: LocalCluster) -> None:
    """The stand-in of the module docstring: the served WorkflowRun CRD gets the step phase
    Waiting and a `waitingFor` list when it lacks them."""
    crd = cluster.get_json("crd", "workflowruns.stepline.io")
    base = "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties"
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    patch: list[dict[str, Any]] = []
    if "Waiting" not in status["properties"]["steps"]["items"]["properties"]["phase"]["enum"]:
        patch.append({"op": "add", "value": "Waiting",
                      "path": f"{base}/steps/items/properties/phase/enum/-"})  # fmt: skip
    if "waitingFor" not in status["properties"]:
        item = {"type": "object", "properties": {"step": {"type": "string"},
                                                 "since": {"type": "string"}}}  # fmt: skip
        patch.append({"op": "add", "path": f"{base}/waitingFor",
                      "value": {"type": "array", "items": item}})  # fmt: skip
    if patch:
        cluster.kubectl("patch", "crd", "workflowruns.stepline.io", "--type=json",
                        "-p", json.dumps(patch))  # fmt: skip


def policies_refuse(bed: Bed) -> bool:
    """The policies are in force: a dry run by the account without `approve` is refused."""
    body = json.dumps(approval(bed.namespace))
    out = bed.as_account("bystander", "create", "--dry-run=server", "-f", "-", stdin=body)
    return out.returncode != 0 and "may not approve" in out.stderr


def start_run(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """A run of the absent Workflow: the operator writes it Pending (WorkflowNotFound) once
    and then leaves its status alone."""
    cluster.apply({"apiVersion": API_VERSION, "kind": "WorkflowRun",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"workflowRef": WORKFLOW, "input": {"lineId": "line-7"}}})  # fmt: skip
    pending = wait_until(
        lambda: (run := get(cluster, "workflowrun", name, namespace))
        and condition(run, "Succeeded").get("reason") == "WorkflowNotFound" and run,
        timeout=JUDGED_TIMEOUT, what=f"run {name} Pending for its Workflow",
    )  # fmt: skip
    found: dict[str, Any] = pending
    return found


def make_wait(cluster: LocalCluster, namespace: str, name: str, since: datetime) -> None:
    """Writes the run's status as the engine does for a step waiting for a person."""
    at = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    deadline = (since + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    approvers = f"a user with verb approve on workflows.stepline.io/{WORKFLOW} in {namespace}"
    waiting = {"step": "release", "since": at, "deadline": deadline,
               "message": "Release the plan for line-7", "approvers": approvers}  # fmt: skip
    status = {"steps": [{"name": "scheduling", "phase": "Succeeded"},
                        {"name": "release", "phase": "Waiting", "startedAt": at}],
              "waitingFor": [waiting]}  # fmt: skip
    cluster.kubectl("patch", "workflowrun", name, "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": status}))  # fmt: skip


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bed]:
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/approvals.stepline.io")  # fmt: skip
    admit_waiting_runs(cluster)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(POLICIES))
    folder = tmp_path_factory.mktemp("approvals")
    namespace = f"t-approvals-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        grant(cluster, namespace, "approver", approve=[WORKFLOW])
        grant(cluster, namespace, "bystander", approve=[])
        kubeconfigs = {account: kubeconfig_of(cluster, namespace, account,
                                              folder / f"{account}.kubeconfig")
                       for account in ("approver", "bystander")}  # fmt: skip
        operator = OperatorProcess(
            cluster, (namespace,), folder / "operator.log",
            extra_env={"STEPLINE_APPROVAL_POLICY_CHECK_SECONDS": str(CHECK_SECONDS)},
        ).start()  # fmt: skip
        try:
            opened = Bed(cluster, namespace, operator, kubeconfigs)
            wait_until(lambda: policies_refuse(opened), timeout=30, what="the policies in force")
            yield opened
        finally:
            operator.stop()
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        # Cluster-scoped: a later `helm install` of the chart ships its own.
        cluster.kubectl("delete", "--ignore-not-found", "-f", str(POLICIES), check=False)


def created(out: Any) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def accepted(bed: Bed, name: str) -> dict[str, Any]:
    """The Accepted condition, once the operator wrote it."""
    return wait_until(
        lambda: condition(get(bed.cluster, "approval", name, bed.namespace), "Accepted"),
        timeout=JUDGED_TIMEOUT, what=f"Approval {name} judged",
    )  # fmt: skip


def events_of(bed: Bed, name: str) -> list[tuple[str, str, str]]:
    listed = bed.cluster.get_json("events", "-n", bed.namespace, "--field-selector",
                                  f"involvedObject.name={name}")["items"]  # fmt: skip
    return [(event["type"], event["reason"], event["message"]) for event in listed]


def test_a_service_account_without_approve_is_refused_with_the_policys_message(bed: Bed) -> None:
    out = bed.create_as("bystander")
    assert out.returncode != 0
    assert (
        f"{bed.user('bystander')} may not approve runs of Workflow {WORKFLOW}: it needs verb "
        f"approve on workflows.stepline.io in {bed.namespace}"
    ) in out.stderr
    assert "ValidatingAdmissionPolicy 'approvals.stepline.io-approver'" in out.stderr


def test_approve_on_one_workflow_reaches_no_other(bed: Bed) -> None:
    out = bed.create_as("approver", workflowRef="other-flow")
    assert out.returncode != 0
    assert "may not approve runs of Workflow other-flow" in out.stderr


def test_an_approver_is_admitted_and_stamped_as_the_author_whatever_the_client_wrote(
    bed: Bed,
) -> None:
    forged = {"username": "system:serviceaccount:kube-system:root", "uid": "forged"}
    made = created(bed.create_as("approver", runRef=IDLE_RUN, decidedBy=forged))
    account = bed.cluster.get_json("serviceaccount", "approver", "-n", bed.namespace)
    assert made["spec"]["decidedBy"] == {
        "username": bed.user("approver"), "uid": account["metadata"]["uid"],
    }  # fmt: skip
    assert made["metadata"]["name"].startswith(f"{IDLE_RUN}-release-")


def test_a_rejection_without_a_reason_is_refused(bed: Bed) -> None:
    out = bed.create_as("approver", decision="Reject")
    assert out.returncode != 0
    assert "spec.reason: Required value: a rejection needs a reason" in out.stderr


def test_the_spec_of_an_approval_never_changes(bed: Bed) -> None:
    made = created(bed.create_as(None, runRef=IDLE_RUN, decision="Reject", reason="too early"))
    out = bed.cluster.kubectl(
        "patch", "approval", made["metadata"]["name"], "-n", bed.namespace, "--type=merge",
        "-p", json.dumps({"spec": {"decision": "Approve"}}), check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "an Approval is a record: create another instead" in out.stderr


def test_stepline_approve_on_a_waiting_run_is_recorded_owned_by_the_run_and_announced(
    bed: Bed,
) -> None:
    run = start_run(bed.cluster, bed.namespace, WAITING_RUN)
    make_wait(bed.cluster, bed.namespace, WAITING_RUN, datetime.now(UTC) - timedelta(seconds=5))
    out = subprocess.run(
        [sys.executable, "-m", "stepline", "approve", WAITING_RUN, "--step", "release",
         "--reason", "checked with the line lead",
         "--kubeconfig", str(bed.kubeconfigs["approver"])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    name = out.stdout.strip().removeprefix("approval.stepline.io/").removesuffix(" created")
    assert name.startswith(f"{WAITING_RUN}-release-")

    judged = accepted(bed, name)
    assert (judged["status"], judged["reason"]) == ("True", "Recorded")
    assert judged["message"] == (
        f"step 'release' of run '{WAITING_RUN}' approved by {bed.user('approver')}"
    )
    approval_object = get(bed.cluster, "approval", name, bed.namespace) or {}
    (owner,) = approval_object["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "WorkflowRun", WAITING_RUN, run["metadata"]["uid"],
    )  # fmt: skip
    assert wait_until(lambda: [e for e in events_of(bed, name) if e[1] == "Approved"],
                      timeout=JUDGED_TIMEOUT, what="the Approved Event")  # fmt: skip
    labels = {"namespace": bed.namespace, "workflow": WORKFLOW, "decision": "approved"}
    assert sample(scraped(bed.operator), "stepline_approvals_total", labels) == 1.0


def test_stepline_approve_refuses_a_run_that_does_not_wait_and_creates_nothing(bed: Bed) -> None:
    start_run(bed.cluster, bed.namespace, IDLE_RUN)
    before = bed.cluster.get_json("approvals", "-n", bed.namespace)["items"]
    out = subprocess.run(
        [sys.executable, "-m", "stepline", "approve", IDLE_RUN, "--step", "release",
         "--kubeconfig", str(bed.kubeconfigs["approver"])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert f"WorkflowRun '{IDLE_RUN}' is not waiting at step 'release'" in out.stderr
    assert bed.cluster.get_json("approvals", "-n", bed.namespace)["items"] == before


@pytest.mark.parametrize(
    ("spec", "reason", "says"),
    [
        ({"runRef": IDLE_RUN}, "NotWaiting", f"run '{IDLE_RUN}' (Pending) does not wait at step"),
        ({"workflowRef": "cheap"}, "WorkflowMismatch",
         f"spec.workflowRef is 'cheap', but run '{WAITING_RUN}' runs Workflow '{WORKFLOW}'"),
        ({"runRef": "line-9-night"}, "RunNotFound",
         "WorkflowRun 'line-9-night' not found in namespace"),
        ({}, "NotWaiting", f"step 'release' of run '{WAITING_RUN}' was already decided"),
    ],
    ids=["not-waiting", "workflow-mismatch", "run-not-found", "already-decided"],
)  # fmt: skip
def test_an_approval_the_run_does_not_take_is_refused_saying_why(
    bed: Bed, spec: dict[str, Any], reason: str, says: str
) -> None:
    # As the admin, who may approve every Workflow (`cheap` too).
    name = created(bed.create_as(None, **spec))["metadata"]["name"]
    judged = accepted(bed, name)
    assert (judged["status"], judged["reason"]) == ("False", reason)
    assert says in judged["message"]
    assert wait_until(lambda: [e for e in events_of(bed, name) if e[:2] == ("Warning", reason)],
                      timeout=JUDGED_TIMEOUT, what=f"the {reason} Event")  # fmt: skip


def test_with_a_policy_binding_deleted_approvals_are_unverified(bed: Bed) -> None:
    cluster = bed.cluster
    cluster.kubectl("delete", VALIDATING_BINDING)
    try:
        # The operator's next check (every CHECK_SECONDS here) finds it gone and says so.
        wait_until(lambda: "Approvals are not honoured" in bed.operator.log_tail(200),
                   timeout=JUDGED_TIMEOUT, what="the operator noticing")  # fmt: skip
        # Without the binding, the account without `approve` gets its Approval admitted, once
        # the API server's own informer has seen the binding go (it lags the delete; seen
        # refused seconds after it on a loaded CI machine).
        admitted = wait_until(
            lambda: (out := bed.create_as("bystander", runRef=WAITING_RUN)).returncode == 0
            and out,
            timeout=30, what="the API server admitting the bystander's Approval",
        )  # fmt: skip
        name = created(admitted)["metadata"]["name"]
        judged = accepted(bed, name)
        assert (judged["status"], judged["reason"]) == ("False", "Unverified")
        assert (
            "ValidatingAdmissionPolicyBinding approvals.stepline.io-approver is missing"
            in judged["message"]
        )
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(POLICIES))
        wait_until(lambda: policies_refuse(bed), timeout=30, what="the policies back in force")


def scraped(operator: OperatorProcess) -> str:
    url = f"{operator.metrics_url}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http, our own)
        text: str = response.read().decode()
        return text


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of the sample `name` with exactly `labels` in a text exposition, if any."""
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric == name and sorted(rest.rstrip("}").split(",")) == wanted:
            return float(value)
    return None
