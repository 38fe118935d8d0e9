"""Who may invoke: the Authorizer's verdicts on a bearer token (401, 403, 503 or allowed), what
it asks the API server, how long it keeps a verdict, and that the raw token is never logged or
kept — on a fake reviewer and a fake clock, no network."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from stepline.errors import KubeApiError
from stepline.gateway.authorizing import (
    MAX_VERDICTS,
    Authorizer,
    build_access_review_spec,
    build_authorizer,
    parse_bearer,
)
from stepline.settings import Settings
from tests.unit.gateway.reviewers import HEADER, TOKEN, USER, Clock, Reviewer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer() -> Reviewer:
    return Reviewer()


@pytest.fixture
def authorizer(reviewer: Reviewer, clock: Clock) -> Authorizer:
    return Authorizer(reviewer, allowed_ttl=10, denied_ttl=2, clock=clock)


async def test_a_valid_token_whose_user_may_invoke_the_workflow_is_allowed(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    verdict = await authorizer.authorize(HEADER, "shop", "trade")

    assert verdict.allowed
    assert reviewer.kinds() == ["TokenReview", "SubjectAccessReview"]


async def test_the_access_review_asks_whether_the_tokens_user_may_invoke_that_workflow(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    await authorizer.authorize(HEADER, "shop", "trade")

    token_spec, access_spec = (spec for _, spec in reviewer.asked)
    assert token_spec == {"token": TOKEN}  # no audiences: the API server's own
    assert access_spec == {
        "user": USER["username"],
        "uid": USER["uid"],
        "groups": USER["groups"],
        "extra": USER["extra"],
        "resourceAttributes": {
            "namespace": "shop",
            "verb": "invoke",
            "group": "stepline.io",
            "resource": "workflows",
            "name": "trade",
        },
    }


def test_an_access_review_of_a_user_without_uid_or_extra_leaves_them_out() -> None:
    spec = build_access_review_spec({"username": "ada"}, namespace="shop", name="trade")

    assert spec["user"] == "ada"
    assert spec["groups"] == []
    assert "uid" not in spec
    assert "extra" not in spec


async def test_a_request_without_an_authorization_header_is_401_and_asks_nothing(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    verdict = await authorizer.authorize(None, "shop", "trade")

    assert (verdict.status, verdict.reason) == (401, "Unauthorized")
    assert "Authorization: Bearer" in verdict.message
    assert reviewer.asked == []


@pytest.mark.parametrize(
    "header", ["Basic YWRhOnNlY3JldA==", "Bearer", "Bearer ", "Bearer two words", "token abc", ""]
)
async def test_a_header_that_is_not_bearer_and_one_token_is_401_and_asks_nothing(
    authorizer: Authorizer, reviewer: Reviewer, header: str
) -> None:
    verdict = await authorizer.authorize(header, "shop", "trade")

    assert verdict.status == 401
    assert reviewer.asked == []


def test_the_bearer_scheme_is_read_in_any_case() -> None:
    assert parse_bearer("bearer abc") == "abc"
    assert parse_bearer("BEARER  abc ") == "abc"
    assert parse_bearer(None) is None


async def test_a_token_the_api_server_does_not_accept_is_401(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    verdict = await authorizer.authorize("Bearer garbage", "shop", "trade")

    assert (verdict.status, verdict.reason) == (401, "Unauthorized")
    assert "does not accept the bearer token" in verdict.message
    assert reviewer.kinds() == ["TokenReview"]


async def test_with_audiences_set_a_token_issued_for_another_audience_is_401(
    reviewer: Reviewer, clock: Clock
) -> None:
    authorizer = Authorizer(
        reviewer, audiences=("stepline",), allowed_ttl=10, denied_ttl=2, clock=clock
    )
    reviewer.tokens["for-stepline"] = (USER, ("stepline",))

    refused = await authorizer.authorize(HEADER, "shop", "trade")  # the API server's audience
    allowed = await authorizer.authorize("Bearer for-stepline", "shop", "trade")

    assert refused.status == 401
    assert allowed.allowed
    assert reviewer.asked[0] == ("TokenReview", {"token": TOKEN, "audiences": ["stepline"]})


async def test_an_authenticated_answer_naming_none_of_our_audiences_is_401(
    clock: Clock,
) -> None:
    class Careless(Reviewer):
        """An authenticator that ignores the audiences asked for (the client must check)."""

        def _token_review(self, spec: Mapping[str, Any]) -> dict[str, Any]:
            return {"authenticated": True, "user": USER, "audiences": ["elsewhere"]}

    authorizer = Authorizer(
        Careless(), audiences=("stepline",), allowed_ttl=10, denied_ttl=2, clock=clock
    )

    assert (await authorizer.authorize(HEADER, "shop", "trade")).status == 401


async def test_a_user_without_the_permission_is_403_naming_the_user_and_the_workflow(
    authorizer: Authorizer,
) -> None:
    verdict = await authorizer.authorize(HEADER, "shop", "refund")

    assert (verdict.status, verdict.reason) == (403, "Forbidden")
    assert verdict.message.startswith(
        "user 'system:serviceaccount:shop:checkout' may not invoke workflows.stepline.io "
        "'refund' in namespace 'shop'"
    )
    assert "invoker" in verdict.message


@pytest.mark.parametrize(
    "failure",
    [
        KubeApiError("POST /apis/authentication.k8s.io/v1/tokenreviews: no answer", status=0),
        KubeApiError("POST …/tokenreviews: 403 tokenreviews is forbidden", status=403),
        KubeApiError("POST …/tokenreviews: 500 etcd is down", status=500),
    ],
)
async def test_a_review_that_fails_is_503_and_never_lets_the_call_through(
    authorizer: Authorizer, reviewer: Reviewer, failure: KubeApiError
) -> None:
    reviewer.failing = failure

    verdict = await authorizer.authorize(HEADER, "shop", "trade")

    assert (verdict.status, verdict.reason) == (503, "AuthorizationUnavailable")
    assert not verdict.allowed


async def test_a_failed_access_review_after_an_accepted_token_is_503(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    original = reviewer.review

    async def failing_access_review(
        api_version: str, kind: str, spec: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        if kind == "SubjectAccessReview":
            raise KubeApiError("POST …/subjectaccessreviews: no answer", status=0)
        return await original(api_version, kind, spec, timeout=timeout)

    reviewer.review = failing_access_review  # type: ignore[method-assign]

    assert (await authorizer.authorize(HEADER, "shop", "trade")).status == 503


async def test_a_503_is_not_kept_the_next_request_is_reviewed_again(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    reviewer.failing = KubeApiError("no answer", status=0)
    await authorizer.authorize(HEADER, "shop", "trade")
    reviewer.failing = None

    assert (await authorizer.authorize(HEADER, "shop", "trade")).allowed


async def test_an_allowed_verdict_is_kept_for_the_allowed_ttl_then_asked_again(
    authorizer: Authorizer, reviewer: Reviewer, clock: Clock
) -> None:
    await authorizer.authorize(HEADER, "shop", "trade")
    reviewer.grants.clear()  # the binding is removed

    clock.now += 9.9
    kept = await authorizer.authorize(HEADER, "shop", "trade")
    clock.now += 0.1
    asked_again = await authorizer.authorize(HEADER, "shop", "trade")

    assert kept.allowed
    assert asked_again.status == 403
    assert reviewer.kinds().count("TokenReview") == 2


async def test_a_refusal_is_kept_for_the_shorter_denied_ttl(
    authorizer: Authorizer, reviewer: Reviewer, clock: Clock
) -> None:
    await authorizer.authorize(HEADER, "shop", "refund")
    reviewer.grants.add((USER["username"], "shop", "refund"))  # a binding is created

    clock.now += 1.9
    kept = await authorizer.authorize(HEADER, "shop", "refund")
    clock.now += 0.1
    asked_again = await authorizer.authorize(HEADER, "shop", "refund")

    assert kept.status == 403
    assert asked_again.allowed


async def test_an_invalid_token_is_kept_for_the_denied_ttl(
    authorizer: Authorizer, reviewer: Reviewer, clock: Clock
) -> None:
    for _ in range(3):
        assert (await authorizer.authorize("Bearer garbage", "shop", "trade")).status == 401
    clock.now += 2

    await authorizer.authorize("Bearer garbage", "shop", "trade")

    assert reviewer.kinds() == ["TokenReview", "TokenReview"]


async def test_verdicts_are_kept_per_token_namespace_and_workflow(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    reviewer.tokens["other"] = (USER, ("https://kubernetes.default.svc",))
    reviewer.grants |= {(USER["username"], "shop", "refund"), (USER["username"], "bank", "trade")}

    for header, namespace, name in [
        (HEADER, "shop", "trade"), (HEADER, "shop", "refund"), (HEADER, "bank", "trade"),
        ("Bearer other", "shop", "trade"), (HEADER, "shop", "trade"),
    ]:  # fmt: skip
        assert (await authorizer.authorize(header, namespace, name)).allowed

    assert reviewer.kinds().count("SubjectAccessReview") == 4


async def test_with_ttls_of_zero_nothing_is_kept(reviewer: Reviewer, clock: Clock) -> None:
    authorizer = Authorizer(reviewer, allowed_ttl=0, denied_ttl=0, clock=clock)

    await authorizer.authorize(HEADER, "shop", "trade")
    await authorizer.authorize(HEADER, "shop", "trade")

    assert reviewer.kinds().count("TokenReview") == 2


async def test_requests_that_miss_the_same_verdict_at_once_share_one_review(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    reviewer.gate = asyncio.Event()
    calls = [authorizer.authorize(HEADER, "shop", "trade") for _ in range(20)]
    waiting = [asyncio.create_task(call) for call in calls]
    await asyncio.sleep(0)
    reviewer.gate.set()

    verdicts = await asyncio.gather(*waiting)

    assert all(verdict.allowed for verdict in verdicts)
    assert reviewer.kinds() == ["TokenReview", "SubjectAccessReview"]


async def test_a_caller_that_goes_away_leaves_the_shared_review_to_the_others(
    authorizer: Authorizer, reviewer: Reviewer
) -> None:
    reviewer.gate = asyncio.Event()
    leaving = asyncio.create_task(authorizer.authorize(HEADER, "shop", "trade"))
    staying = asyncio.create_task(authorizer.authorize(HEADER, "shop", "trade"))
    await asyncio.sleep(0)
    leaving.cancel()
    reviewer.gate.set()

    assert (await staying).allowed
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_at_most_max_verdicts_are_kept_the_least_recently_used_dropped_first(
    reviewer: Reviewer, clock: Clock
) -> None:
    authorizer = Authorizer(reviewer, allowed_ttl=10, denied_ttl=2, max_verdicts=2, clock=clock)
    reviewer.grants |= {(USER["username"], "shop", name) for name in ("a", "b", "c")}

    for name in ("a", "b", "a", "c"):  # "b" is then the least recently used
        await authorizer.authorize(HEADER, "shop", name)
    before = len(reviewer.asked)
    await authorizer.authorize(HEADER, "shop", "a")
    kept = len(reviewer.asked) == before
    await authorizer.authorize(HEADER, "shop", "b")

    assert kept
    # "b" was dropped: its access reviewed again; who the token is, is still known
    assert len(reviewer.asked) == before + 1
    assert MAX_VERDICTS >= 1000


async def test_the_raw_token_is_never_logged_nor_kept(
    reviewer: Reviewer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    authorizer = Authorizer(reviewer, allowed_ttl=10, denied_ttl=2, clock=clock)

    await authorizer.authorize(HEADER, "shop", "trade")  # allowed
    await authorizer.authorize(HEADER, "shop", "refund")  # 403
    await authorizer.authorize(f"Bearer {TOKEN}x", "shop", "trade")  # 401
    reviewer.failing = KubeApiError("POST …/tokenreviews: no answer", status=0)
    await authorizer.authorize(HEADER, "bank", "trade")  # 503

    assert caplog.records  # the refusals and the failure were logged
    assert not [r for r in caplog.records if "secret-part" in r.getMessage()]
    kept = repr(vars(authorizer)) + repr(authorizer._cache._entries)
    assert "secret-part" not in kept


async def test_while_reviews_fail_the_warning_is_written_once_per_interval(
    authorizer: Authorizer, reviewer: Reviewer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    reviewer.failing = KubeApiError("POST …/tokenreviews: no answer", status=0)

    for _ in range(5):
        await authorizer.authorize(HEADER, "shop", "trade")
    clock.now += 30
    await authorizer.authorize(HEADER, "shop", "trade")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "no answer" in warnings[0]
    assert "4 more since the last warning" in warnings[1]


def test_with_invoke_auth_off_there_is_no_authorizer_and_a_warning_says_so(
    reviewer: Reviewer, caplog: pytest.LogCaptureFixture
) -> None:
    off = Settings(invoke_auth=False, http_port=18080)

    assert build_authorizer(off, reviewer) is None
    assert "STEPLINE_INVOKE_AUTH=false" in caplog.text
    assert "18080" in caplog.text
    assert isinstance(build_authorizer(Settings(), reviewer), Authorizer)
