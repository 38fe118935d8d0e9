"""Who may invoke, on the real control plane: the operator (a process, invoke authentication on
as by default) checks each caller's bearer token with the API server's TokenReview and its
permission with a SubjectAccessReview. ServiceAccounts get tokens from the TokenRequest API
(`kubectl create token`) and the verb `invoke` on workflows.stepline.io from RoleBindings, as
users grant it: bound, 200; unbound or bound to another workflow, 403; no header, a garbage
token, or a token for another audience, 401 with `WWW-Authenticate: Bearer`; the API server
down, 503. /metrics, on a port of its own, asks for no token.

One namespace, step server and operator serve the module (stepservices.py); its tests run in
file order, the API server outage last.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.stepservices import (
    StepBed,
    account_token,
    add_caller,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    post_invoke,
)

pytestmark = pytest.mark.integration

BODY = b'{"hello": "world"}'
DENIED_TTL_SECONDS = 2  # the operator's default STEPLINE_INVOKE_AUTH_DENIED_TTL_SECONDS
SLACK_SECONDS = 3  # the RBAC cache of a loaded API server, and the requests themselves


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StepBed]:
    opened = open_step_bed(cluster, "auth", ("echo",), tmp_path_factory.mktemp("auth"))
    try:
        opened.server.answer("/echo", lambda got: got)
        for name in ("greet", "other"):
            apply_workflow(opened, name, [{"name": "echo", "stepRef": "echo"}])
        yield opened
    finally:
        close_step_bed(opened)


def invoke(bed: StepBed, token: str | None, workflow: str = "greet") -> httpx.Response:
    url = f"{bed.operator.base_url}/v1/namespaces/{bed.namespace}/workflows/{workflow}:invoke"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(url, content=BODY, headers=headers, timeout=30)


def assert_refused(answer: httpx.Response, status: int, reason: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["reason"] == reason, answer.text


def test_a_service_account_bound_to_invoke_gets_the_output(bed: StepBed) -> None:
    calls_before = len(bed.server.calls("/echo"))

    status, answer = post_invoke(bed.operator.base_url, bed.namespace, "greet", BODY,
                                 token=bed.token)  # fmt: skip

    assert status == 200, answer
    assert answer["output"] == {"hello": "world"}
    assert len(bed.server.calls("/echo")) == calls_before + 1


def test_without_an_authorization_header_invoke_answers_401_asking_for_a_bearer_token(
    bed: StepBed,
) -> None:
    calls_before = len(bed.server.calls("/echo"))

    answer = invoke(bed, None)

    assert_refused(answer, 401, "Unauthorized")
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in answer.json()["error"]["message"]
    assert len(bed.server.calls("/echo")) == calls_before


def test_a_garbage_token_answers_401(bed: StepBed) -> None:
    answer = invoke(bed, "not-a-token")

    assert_refused(answer, 401, "Unauthorized")
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_token_issued_for_another_audience_answers_401(bed: StepBed) -> None:
    # The invoker's own account, bound to invoke: only the audience is wrong.
    elsewhere = account_token(bed.cluster, bed.namespace, "invoker", audience="elsewhere")

    assert_refused(invoke(bed, elsewhere), 401, "Unauthorized")


def test_a_service_account_without_the_permission_answers_403_naming_it(bed: StepBed) -> None:
    add_caller(bed.cluster, bed.namespace, "stranger", workflows=None)
    token = account_token(bed.cluster, bed.namespace, "stranger")

    answer = invoke(bed, token)

    assert_refused(answer, 403, "Forbidden")
    user = f"system:serviceaccount:{bed.namespace}:stranger"
    assert user in answer.json()["error"]["message"]


def test_a_binding_to_one_workflow_allows_that_one_only(bed: StepBed) -> None:
    add_caller(bed.cluster, bed.namespace, "narrow", workflows=["other"])
    token = account_token(bed.cluster, bed.namespace, "narrow")

    assert invoke(bed, token, "other").status_code == 200
    assert_refused(invoke(bed, token, "greet"), 403, "Forbidden")


def test_a_binding_made_after_a_refusal_takes_effect_within_the_denied_ttl(
    bed: StepBed,
) -> None:
    add_caller(bed.cluster, bed.namespace, "latecomer", workflows=None)
    token = account_token(bed.cluster, bed.namespace, "latecomer")
    assert_refused(invoke(bed, token), 403, "Forbidden")

    add_caller(bed.cluster, bed.namespace, "latecomer")  # now with its Role and RoleBinding

    wait_until(
        lambda: invoke(bed, token).status_code == 200,
        timeout=DENIED_TTL_SECONDS + SLACK_SECONDS, interval=0.2,
        what="the new binding honoured once the refusal is forgotten",
    )  # fmt: skip


def test_metrics_answer_on_their_own_port_without_a_token_and_not_on_the_invoke_port(
    bed: StepBed,
) -> None:
    metrics = httpx.get(f"{bed.operator.metrics_url}/metrics", timeout=10)
    on_invoke_port = httpx.get(f"{bed.operator.base_url}/metrics", timeout=10)

    assert metrics.status_code == 200
    assert "stepline_runs_finished_total" in metrics.text
    assert on_invoke_port.status_code == 404


def test_with_the_api_server_down_an_unchecked_caller_gets_503_never_the_workflow(
    bed: StepBed,
) -> None:
    add_caller(bed.cluster, bed.namespace, "during-outage")
    token = account_token(bed.cluster, bed.namespace, "during-outage")  # never reviewed yet
    calls_before = len(bed.server.calls("/echo"))

    bed.cluster.kill_component("kube-apiserver")
    try:
        answer = invoke(bed, token)
        cached = invoke(bed, bed.token)  # allowed by a review within the allowed TTL, or 503
    finally:
        bed.cluster.restore()

    assert_refused(answer, 503, "AuthorizationUnavailable")
    assert cached.status_code in (200, 503), cached.text
    assert len(bed.server.calls("/echo")) == calls_before + (cached.status_code == 200)
    assert "a token or access review failed" in bed.operator.log_tail(400)
    wait_until(
        lambda: invoke(bed, token).status_code == 200,
        timeout=60, interval=1, what="invoke allowed again once the API server is back",
    )  # fmt: skip
