"""order-cancellation: a placed order cancelled with an id derived from the Idempotency-Key (or,
without one, from the order), and malformed requests refused with 400 naming the field."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from finance import order_cancellation
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

REQUEST = {"orderId": "ord-1", "userId": "u-1002", "reason": "trade not settled"}


def test_an_order_is_cancelled_under_an_id_derived_from_the_key() -> None:
    status, answer = order_cancellation.cancel_order(REQUEST, "uid-1/order/compensation")

    assert status == 200
    assert answer == {
        "cancellationId": order_cancellation.cancellation_id("uid-1/order/compensation"),
        "orderId": "ord-1",
        "status": "cancelled",
    }
    assert answer["cancellationId"].startswith("cxl-")


def test_the_same_key_gives_the_same_id_and_another_key_another() -> None:
    def cancellation(key: str | None, **changes: str) -> str:
        _, answer = order_cancellation.cancel_order(REQUEST | changes, key)
        return str(answer["cancellationId"])

    assert cancellation("uid-1/order/compensation") == cancellation("uid-1/order/compensation")
    assert cancellation("uid-1/order/compensation") != cancellation("uid-2/order/compensation")
    # Without a key, an order is cancelled once however often, and for whatever reason, asked.
    assert cancellation(None) == cancellation(None, reason="asked twice")
    assert cancellation(None) != cancellation(None, orderId="ord-2")


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({k: v for k, v in REQUEST.items() if k != "orderId"}, "orderId"),
        (REQUEST | {"userId": 1002}, "userId"),
        (REQUEST | {"reason": "  "}, "reason"),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field(
    request_body: dict[str, Any], field: str
) -> None:
    status, answer = order_cancellation.cancel_order(request_body, "k")

    assert status == 400
    reason = "is required (a non-empty string)"
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_cancels_over_http_and_replays_under_the_same_key(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(build_step_app(order_cancellation.PATH, order_cancellation.cancel_order))
    headers = {"Idempotency-Key": "uid-1/order/compensation"}

    async with http.post(f"{base}/cancellations", json=REQUEST, headers=headers) as first:
        assert first.status == 200
        cancelled = await first.json()
    async with http.post(f"{base}/cancellations", json=REQUEST, headers=headers) as again:
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await again.json() == cancelled
    assert cancelled["status"] == "cancelled"
