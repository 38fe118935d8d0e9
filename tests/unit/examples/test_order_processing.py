"""order-processing over real HTTP: acceptance by risk, malformed orders, deterministic ids."""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp
from finance import order_processing
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

ORDER = {"symbol": "ACME", "side": "buy", "quantity": 10, "limitPrice": 101.5}
REQUEST = {"user": {"id": "u-1001"}, "order": ORDER, "riskScore": 5}


async def place(
    serve: Serve, http: aiohttp.ClientSession, body: Any, key: str | None = None
) -> tuple[int, Any]:
    decide = partial(order_processing.process_order, exchange="XLON")
    base = await serve(build_step_app(order_processing.PATH, decide))
    headers = {"Idempotency-Key": key} if key else {}
    async with http.post(f"{base}/orders", json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_a_low_risk_users_order_is_accepted_with_its_notional(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    status, answer = await place(serve, http, REQUEST)

    assert status == 200
    assert answer["status"] == "accepted"
    assert answer["notional"] == 1015.0
    assert answer["exchange"] == "XLON"
    assert answer["userId"] == "u-1001"
    assert answer["reasons"] == []
    assert answer["orderId"].startswith("ord-")


async def test_an_order_above_the_limit_for_the_users_risk_is_rejected(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    big = REQUEST | {"order": ORDER | {"quantity": 2000}, "riskScore": 45}

    status, answer = await place(serve, http, big)

    assert status == 200
    assert answer["status"] == "rejected"
    assert answer["reasons"] == ["notional 203,000.00 exceeds 100,000 for risk score 45"]


async def test_a_user_scored_60_or_more_may_not_trade(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    _, answer = await place(serve, http, REQUEST | {"riskScore": 60})

    assert answer["status"] == "rejected"
    assert answer["reasons"] == ["risk score 60 is too high to trade"]


async def test_a_malformed_order_is_answered_400_naming_the_field(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    status, answer = await place(serve, http, REQUEST | {"order": ORDER | {"side": "hold"}})

    assert status == 400
    assert answer == {"error": "order.side must be buy or sell"}


async def test_a_missing_risk_score_is_answered_400(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    body = {"user": {"id": "u-1001"}, "order": ORDER}

    status, answer = await place(serve, http, body)

    assert status == 400
    assert "riskScore" in answer["error"]


def test_the_order_id_is_the_same_for_the_same_request_and_key_and_differs_otherwise() -> None:
    def order_id(key: str | None) -> str:
        _, answer = order_processing.process_order(REQUEST, key)
        return str(answer["orderId"])

    assert order_id("run-1/order") == order_id("run-1/order")
    assert order_id("run-1/order") != order_id("run-2/order")
