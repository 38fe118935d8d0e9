"""user-validation over real HTTP: risk scoring, refusals, idempotency and health."""

from __future__ import annotations

from typing import Any

import aiohttp
from finance import user_validation
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

ADA = {"id": "u-1001", "name": "Ada", "country": "GB", "age": 36, "kycVerified": True}


async def validate(
    serve: Serve, http: aiohttp.ClientSession, body: Any, **headers: str
) -> tuple[int, Any]:
    base = await serve(build_step_app(user_validation.PATH, user_validation.score_user))
    async with http.post(f"{base}/validate", json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_a_verified_adult_from_a_low_risk_country_is_approved_with_a_low_score(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    status, answer = await validate(serve, http, {"user": ADA})

    assert status == 200
    assert answer == {"userId": "u-1001", "riskScore": 5, "approved": True, "reasons": []}


async def test_unknown_facts_and_a_large_order_add_up_to_a_refusal(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    order = {"symbol": "ACME", "quantity": 2000, "limitPrice": 100.0}

    _, answer = await validate(serve, http, {"user": {"id": "u-2"}, "order": order})

    assert answer["riskScore"] == 5 + 20 + 10 + 30 + 20
    assert answer["approved"] is False
    assert answer["reasons"] == [
        "country unknown", "age unknown", "KYC not verified", "order above 100,000",
    ]  # fmt: skip


async def test_a_sanctioned_country_is_refused_whatever_else_is_known(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    _, answer = await validate(serve, http, {"user": ADA | {"country": "KP"}})

    assert answer["approved"] is False
    assert answer["riskScore"] == 100
    assert answer["reasons"] == ["country KP is sanctioned"]


async def test_a_minor_is_refused(serve: Serve, http: aiohttp.ClientSession) -> None:
    _, answer = await validate(serve, http, {"user": ADA | {"age": 17}})

    assert answer["approved"] is False
    assert "under 18" in answer["reasons"]


async def test_a_high_risk_country_raises_the_score_but_may_still_pass(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    _, answer = await validate(serve, http, {"user": ADA | {"country": "ve"}})

    assert answer["riskScore"] == 45
    assert answer["approved"] is True
    assert answer["reasons"] == ["high-risk country VE"]


async def test_a_request_without_a_user_id_is_answered_400(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    status, answer = await validate(serve, http, {"user": {"name": "nobody"}})

    assert status == 400
    assert answer == {"error": "user.id is required (a string)"}


async def test_a_body_that_is_not_a_json_object_is_answered_400(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    status, _ = await validate(serve, http, ["not", "an", "object"])

    assert status == 400


async def test_the_health_endpoint_answers_ok(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(build_step_app(user_validation.PATH, user_validation.score_user))

    async with http.get(f"{base}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


def test_the_command_line_takes_a_port() -> None:
    from finance.serving import build_parser  # noqa: PLC0415

    args = build_parser("test").parse_args(["--port", "9001"])

    assert (args.host, args.port) == ("0.0.0.0", 9001)  # noqa: S104
