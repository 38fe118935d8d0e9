"""The operator's HTTP routes through aiohttp's client: invoke with a real `Invoker` and executor
calling a step server on loopback, with and without an `Authorizer` (on a stand-in for the API
server's reviews), /metrics on a port of its own, /healthz, and the JSON errors of wrong paths
and methods."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from stepline.api import (
    MAX_INPUT_BYTES,
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    Workflow,
)
from stepline.engine import Executor, Http1Transport, RunSlots, StepIndex, build_plan
from stepline.errors import KubeApiError
from stepline.gateway.authorizing import Authorizer
from stepline.gateway.invoking import Invoker
from stepline.gateway.server import (
    ReadinessReport,
    build_app,
    build_metrics_app,
    parse_invoke_path,
    start_server,
)
from stepline.observability import Metrics
from tests.unit.engine.stepservers import (
    T0,
    Answer,
    StepServer,
    build_service_step,
    build_workflow,
)
from tests.unit.gateway.clients import HOST
from tests.unit.gateway.reviewers import HEADER, USER, Reviewer

INVOKE = "/v1/namespaces/shop/workflows/trade:invoke"


def ready(workflow: Workflow) -> Workflow:
    condition = Condition(
        type=ConditionType.READY,
        status=ConditionStatus.TRUE,
        reason=Reason.AVAILABLE,
        message="test",
        last_transition_time=T0,
    )
    workflow.status.conditions = [condition]
    return workflow


@pytest.fixture
async def step_server() -> AsyncIterator[StepServer]:
    started = StepServer()
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
def authorizer() -> Authorizer | None:
    """None: invoke without authentication (STEPLINE_INVOKE_AUTH=false); tests of
    authentication override it."""
    return None


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def refusals(metrics: Metrics) -> dict[str, float | None]:
    """stepline_invoke_refusals_total by status."""
    counted = "stepline_invoke_refusals_total"
    return {
        status: metrics.registry.get_sample_value(counted, {"status": status})
        for status in ("401", "403", "503")
    }


@pytest.fixture
async def base_url(
    step_server: StepServer, authorizer: Authorizer | None, metrics: Metrics
) -> AsyncIterator[str]:
    workflows = {("shop", "trade"): ready(build_workflow([{"name": "greet", "stepRef": "greet"}]))}
    async with Http1Transport() as transport:
        executor = Executor(
            transport=transport,
            directory=StepIndex([build_service_step("greet", path="/greet")]),
            overrides={"greet": step_server.base_url},
        )
        invoker = Invoker(
            executor=executor,
            slots=RunSlots(),
            find_workflow=lambda namespace, name: workflows.get((namespace, name)),
            plan_of=build_plan,
            deadline_seconds=5,
            metrics=metrics,
        )
        app = build_app(invoker=invoker, authorizer=authorizer, metrics=metrics)
        server = await start_server(app, host=HOST, port=0)
        yield f"http://{HOST}:{server.port}"
        await server.close()


@pytest.fixture
async def metrics_url() -> AsyncIterator[str]:
    server = await start_server(build_metrics_app(metrics=Metrics()), host=HOST, port=0)
    yield f"http://{HOST}:{server.port}"
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_invoke_answers_the_workflows_output(
    base_url: str, http: aiohttp.ClientSession, step_server: StepServer
) -> None:
    step_server.answer("/greet", lambda got: {"greeting": f"hello {got['name']}"})

    async with http.post(base_url + INVOKE, json={"name": "ada"}) as response:
        answer = await response.json()

    assert response.status == 200
    assert response.content_type == "application/json"
    assert answer["output"] == {"greeting": "hello ada"}
    assert [step["name"] for step in answer["steps"]] == ["greet"]


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/v1/namespaces/shop/workflows/nothing:invoke", 404, "WorkflowNotFound"),
        ("/v1/namespaces/shop/workflows/trade", 404, "NotFound"),
        ("/v1/namespaces/shop/workflows/a:b:invoke", 404, "NotFound"),
        ("/elsewhere", 404, "NotFound"),
        ("/healthz", 405, "MethodNotAllowed"),
    ],
)
async def test_a_post_elsewhere_answers_a_json_error(
    base_url: str, http: aiohttp.ClientSession, path: str, status: int, reason: str
) -> None:
    async with http.post(base_url + path, json={}) as response:
        answer = await response.json()

    assert response.status == status
    assert answer["error"]["reason"] == reason


async def test_another_method_than_post_on_invoke_answers_405_naming_post(
    base_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(base_url + INVOKE) as response:
        answer = await response.json()

    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert answer["error"]["reason"] == "MethodNotAllowed"


@pytest.mark.parametrize(
    ("body", "mentioning"),
    [
        (b"[1]", "JSON object"),
        (b"{no", "not usable JSON"),
        (b"", "the body is empty"),
        (b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", "nest more than 64 deep"),
        (b'{"s":"\\ud800"}', "surrogate"),
        (b'{"n": NaN}', "NaN and Infinity are not JSON numbers"),
        (b'{"n": 1e999999}', "infinity"),
        (b'{"n": 184467440737095516160}', "beyond 64 bits"),
    ],
)
async def test_invoke_with_an_input_that_is_not_a_json_object_answers_400(
    base_url: str, http: aiohttp.ClientSession, body: bytes, mentioning: str
) -> None:
    async with http.post(base_url + INVOKE, data=body) as response:
        answer = await response.json()

    assert response.status == 400
    assert answer["error"]["reason"] == "InvalidInput"
    assert mentioning in answer["error"]["message"]


async def test_invoke_with_an_input_over_the_limit_answers_400_naming_the_limit(
    base_url: str, http: aiohttp.ClientSession, step_server: StepServer
) -> None:
    body = b'{"pad": "' + b"x" * MAX_INPUT_BYTES + b'"}'

    async with http.post(base_url + INVOKE, data=body) as response:
        answer = await response.json()

    assert response.status == 400
    assert answer["error"]["reason"] == "InputTooLarge"
    assert answer["error"]["message"] == (
        f"the input is {len(body)} bytes; the limit is {MAX_INPUT_BYTES}"
    )
    assert step_server.calls("/greet") == []


async def test_health_answers_ok(base_url: str, http: aiohttp.ClientSession) -> None:
    async with http.get(base_url + "/healthz") as response:
        answer = await response.json()

    assert (response.status, answer) == (200, {"status": "ok"})


async def test_metrics_answer_the_text_format_or_openmetrics_when_asked(
    metrics_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(metrics_url + "/metrics") as response:
        text = await response.text()
    openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with http.get(metrics_url + "/metrics", headers=openmetrics) as asked:
        asked_text = await asked.text()

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "stepline_" in text
    assert asked.content_type == "application/openmetrics-text"
    assert asked_text.endswith("# EOF\n")


def test_the_invoke_path_names_a_namespace_and_a_workflow() -> None:
    assert parse_invoke_path("/v1/namespaces/shop/workflows/trade:invoke") == ("shop", "trade")
    assert parse_invoke_path("/v1/namespaces//workflows/trade:invoke") is None
    assert parse_invoke_path("/v1/namespaces/shop/workflows/:invoke") is None
    assert parse_invoke_path("/v1/namespaces/shop/workflows/trade:invoke/") is None
    assert parse_invoke_path("/v1/namespaces/shop/steps/trade:invoke") is None


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"[" * 1500 + b"]" * 1500, "deep"),
        (b'{"s": "\\ud800"}', "surrogate"),
        (b'{"n": NaN}', "NaN"),
    ],
)
async def test_a_step_answering_json_the_engine_cannot_use_fails_the_invoke_with_502_naming_it(
    base_url: str, http: aiohttp.ClientSession, step_server: StepServer, answer: bytes, why: str
) -> None:
    step_server.answer("/greet", Answer(text=answer.decode()))

    async with http.post(base_url + INVOKE, json={"name": "ada"}) as response:
        error = (await response.json())["error"]

    assert response.status == 502
    assert error["reason"] == "StepFailed"
    assert error["step"] == "greet"
    assert "not usable JSON" in error["message"]
    assert why in error["message"]
    assert len(step_server.calls("/greet")) == 1  # an unusable answer is not retried


async def test_metrics_are_served_on_their_own_port_only(
    base_url: str, metrics_url: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(base_url + "/metrics") as on_invoke_port:
        refused = await on_invoke_port.json()
    async with http.get(metrics_url + "/healthz") as health:
        assert health.status == 200
    async with http.post(metrics_url + INVOKE, json={}) as invoke_on_metrics_port:
        assert invoke_on_metrics_port.status == 404
    async with http.post(metrics_url + "/metrics", json={}) as posted:
        assert posted.status == 405

    assert (on_invoke_port.status, refused["error"]["reason"]) == (404, "NotFound")


class TestWithAuthentication:
    """The invoke port with an `Authorizer`: each refusal with the JSON error body."""

    @pytest.fixture
    def reviewer(self) -> Reviewer:
        return Reviewer()

    @pytest.fixture
    def authorizer(self, reviewer: Reviewer) -> Authorizer:
        return Authorizer(reviewer, allowed_ttl=10, denied_ttl=2)

    async def test_a_token_allowed_to_invoke_gets_the_output_and_no_refusal_is_counted(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        step_server: StepServer,
        metrics: Metrics,
    ) -> None:
        step_server.answer("/greet", lambda got: {"greeting": f"hello {got['name']}"})
        headers = {"Authorization": HEADER}

        async with http.post(base_url + INVOKE, json={"name": "ada"}, headers=headers) as answer:
            assert answer.status == 200
            assert (await answer.json())["output"] == {"greeting": "hello ada"}
        assert refusals(metrics) == {"401": 0, "403": 0, "503": 0}

    @pytest.mark.parametrize("authorization", [None, "Bearer garbage", "Basic YWRhOnNlY3JldA=="])
    async def test_without_a_valid_bearer_token_invoke_answers_401_naming_the_scheme(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        step_server: StepServer,
        authorization: str | None,
        metrics: Metrics,
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}

        async with http.post(base_url + INVOKE, json={"name": "ada"}, headers=headers) as answer:
            body = await answer.json()

        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.content_type == "application/json"
        assert body["error"]["reason"] == "Unauthorized"
        assert step_server.calls("/greet") == []
        assert refusals(metrics) == {"401": 1, "403": 0, "503": 0}

    async def test_a_token_without_the_permission_answers_403(
        self, base_url: str, http: aiohttp.ClientSession, reviewer: Reviewer, metrics: Metrics
    ) -> None:
        reviewer.grants.clear()

        async with http.post(base_url + INVOKE, json={}, headers={"Authorization": HEADER}) as a:
            body = await a.json()

        assert a.status == 403
        assert "WWW-Authenticate" not in a.headers
        assert body["error"]["reason"] == "Forbidden"
        assert USER["username"] in body["error"]["message"]
        assert refusals(metrics) == {"401": 0, "403": 1, "503": 0}

    async def test_an_unreachable_api_server_answers_503(
        self, base_url: str, http: aiohttp.ClientSession, reviewer: Reviewer, metrics: Metrics
    ) -> None:
        reviewer.failing = KubeApiError("POST …/tokenreviews: no answer", status=0)

        for _ in range(2):  # a 503 is not kept: each invoke is reviewed, refused and counted
            headers = {"Authorization": HEADER}
            async with http.post(base_url + INVOKE, json={}, headers=headers) as a:
                body = await a.json()

        assert (a.status, body["error"]["reason"]) == (503, "AuthorizationUnavailable")
        assert refusals(metrics) == {"401": 0, "403": 0, "503": 2}

    async def test_the_token_is_checked_before_the_body(
        self, base_url: str, http: aiohttp.ClientSession
    ) -> None:
        oversized = b"x" * (MAX_INPUT_BYTES + 1)

        async with http.post(base_url + INVOKE, data=oversized) as anonymous:
            assert anonymous.status == 401
        async with http.post(base_url + INVOKE, data=b"[1]") as malformed:
            assert malformed.status == 401

    async def test_health_needs_no_token(self, base_url: str, http: aiohttp.ClientSession) -> None:
        async with http.get(base_url + "/healthz") as response:
            assert response.status == 200


async def test_readyz_says_whether_the_replica_is_ready_and_its_role(
    http: aiohttp.ClientSession,
) -> None:
    reports = [
        ReadinessReport(ready=False, role="standby", detail="watch caches are still filling"),
        ReadinessReport(ready=True, role="standby", detail="serving invoke; the leader writes"),
        ReadinessReport(ready=True, role="leader", detail="serving invoke and writing"),
    ]
    app = build_metrics_app(metrics=Metrics(), readiness=lambda: reports[0])
    server = await start_server(app, host=HOST, port=0)
    answers = []
    try:
        for _ in range(3):
            async with http.get(f"http://{HOST}:{server.port}/readyz") as response:
                answers.append((response.status, await response.json()))
            reports.pop(0)
        async with http.post(f"http://{HOST}:{server.port}/readyz") as posted:
            assert (posted.status, posted.headers["Allow"]) == (405, "GET, HEAD")
    finally:
        await server.close()

    assert answers == [
        (503, {"ready": False, "role": "standby", "detail": "watch caches are still filling"}),
        (200, {"ready": True, "role": "standby", "detail": "serving invoke; the leader writes"}),
        (200, {"ready": True, "role": "leader", "detail": "serving invoke and writing"}),
    ]
