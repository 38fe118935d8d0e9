"""trade-settlement: an accepted order paid from or credited to the account in whole cents, an
account that cannot pay or an order not accepted refused with 409 naming the field, malformed
requests refused with 400 naming it, and the same settlement id for the same call."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from finance import trade_settlement
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

ORDER = {
    "orderId": "ord-1", "userId": "u-1002", "status": "accepted", "symbol": "ACME",
    "side": "buy", "quantity": 100, "limitPrice": 120.0, "notional": 12000.0,
}  # fmt: skip
ACCOUNT = {"id": "acc-1002", "cash": 25000}


def settle(order: dict[str, Any] = ORDER, account: dict[str, Any] = ACCOUNT) -> tuple[int, Any]:
    return trade_settlement.settle_trade({"order": order, "account": account}, "run-1/settlement")


def test_a_buy_the_account_can_pay_is_settled_and_paid_from_its_cash() -> None:
    status, answer = settle()

    assert status == 200
    assert answer == {
        "settlementId": answer["settlementId"],
        "orderId": "ord-1",
        "status": "settled",
        "cashAfter": 13000.0,
    }
    assert answer["settlementId"].startswith("stl-")


def test_a_sell_needs_no_cash_and_is_credited_to_the_account() -> None:
    status, answer = settle(ORDER | {"side": "sell", "notional": 1015.0}, ACCOUNT | {"cash": 0})

    assert (status, answer["cashAfter"]) == (200, 1015.0)


def test_amounts_are_settled_in_whole_cents_not_binary_fractions() -> None:
    _, answer = settle(ORDER | {"notional": 0.3}, ACCOUNT | {"cash": 0.1 + 0.2})

    assert answer["cashAfter"] == 0.0


def test_exactly_the_cash_the_account_holds_pays_for_a_buy() -> None:
    status, answer = settle(account=ACCOUNT | {"cash": 12000})

    assert (status, answer["cashAfter"]) == (200, 0.0)


def test_an_account_that_cannot_pay_is_refused_with_409_naming_its_cash() -> None:
    status, answer = settle(account=ACCOUNT | {"cash": 5000})

    assert status == 409
    assert answer == {
        "error": "insufficient funds: notional 12000.00 exceeds cash 5000.00",
        "field": "account.cash",
    }


def test_an_order_that_was_not_accepted_is_refused_with_409_naming_its_status() -> None:
    status, answer = settle(ORDER | {"status": "rejected"})

    assert status == 409
    assert answer == {
        "error": "order ord-1 is rejected: only an accepted order is settled",
        "field": "order.status",
    }


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"account": ACCOUNT}, "order", "is required (an object)"),
        ({"order": ORDER}, "account", "is required (an object)"),
        ({"order": ORDER | {"side": "hold"}, "account": ACCOUNT}, "order.side",
         "must be buy or sell"),
        ({"order": ORDER | {"orderId": ""}, "account": ACCOUNT}, "order.orderId",
         "is required (a non-empty string)"),
        ({"order": {k: v for k, v in ORDER.items() if k != "status"}, "account": ACCOUNT},
         "order.status", "is required (a non-empty string)"),
        ({"order": ORDER | {"notional": 0}, "account": ACCOUNT}, "order.notional",
         "must be a positive number"),
        ({"order": ORDER | {"notional": "12000"}, "account": ACCOUNT}, "order.notional",
         "must be a number"),
        ({"order": ORDER, "account": ACCOUNT | {"id": None}}, "account.id",
         "is required (a non-empty string)"),
        ({"order": ORDER, "account": ACCOUNT | {"cash": -1}}, "account.cash",
         "must be at least 0"),
        ({"order": ORDER, "account": ACCOUNT | {"cash": True}}, "account.cash",
         "must be a number"),
    ],
)  # fmt: skip
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = trade_settlement.settle_trade(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


def test_the_settlement_id_is_the_same_for_the_same_request_and_key_and_differs_otherwise() -> None:
    def settlement_id(key: str | None) -> str:
        _, answer = trade_settlement.settle_trade({"order": ORDER, "account": ACCOUNT}, key)
        return str(answer["settlementId"])

    assert settlement_id("run-1/settlement") == settlement_id("run-1/settlement")
    assert settlement_id("run-1/settlement") != settlement_id("run-2/settlement")


async def test_the_service_answers_over_http_and_replays_a_refusal_under_its_key(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(build_step_app(trade_settlement.PATH, trade_settlement.settle_trade))
    body = {"order": ORDER, "account": ACCOUNT | {"cash": 5000}}
    headers = {"Idempotency-Key": "run-1/settlement"}

    async with http.post(f"{base}/settlements", json=body, headers=headers) as first:
        assert first.status == 409
        assert (await first.json())["field"] == "account.cash"
    async with http.post(f"{base}/settlements", json=body, headers=headers) as again:
        assert again.status == 409
        assert again.headers["Idempotent-Replayed"] == "true"
