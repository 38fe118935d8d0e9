"""trade-settlement: settle an accepted order against the trader's account. Deterministic.

POST /settlements with `{"order": {"orderId", "status", "side", "notional"}, "account": {"id",
"cash"}}` (the order as order-processing answered it; its other fields are ignored) answers
`{"settlementId", "orderId", "status": "settled", "cashAfter"}`: a buy is paid from the
account's cash, a sell is credited to it. Amounts are settled in whole cents.

A well-formed request that cannot be settled is answered 409 naming the field that stops it: an
account whose cash does not cover a buy (`{"error": "insufficient funds: notional 12000.00
exceeds cash 5000.00", "field": "account.cash"}`), or an order that was not accepted
(`order.status`). Stepline never retries a 409: the run fails, and the finance Workflow's
compensation cancels the order placed before. A malformed request is answered 400 naming the
field. The settlement id is derived from the request and its Idempotency-Key, so a retried call
gets the same id.

    python -m finance.trade_settlement --port 9003     # from examples/
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from manufacturing.parsing import (
    InvalidFieldError,
    require_number,
    require_object,
    require_positive_number,
    require_text,
)

from finance.serving import build_parser, serve_step

PATH = "/settlements"
SIDES = ("buy", "sell")
CENTS = 100  # amounts are compared and computed in whole cents, not binary fractions


@dataclass(frozen=True)
class Order:
    id: str
    status: str
    side: str
    notional_cents: int


@dataclass(frozen=True)
class Account:
    id: str
    cash_cents: int


def settle_trade(request: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    try:
        order = _parse_order(require_object(request.get("order"), "order"))
        account = _parse_account(require_object(request.get("account"), "account"))
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    refusal = find_refusal(order, account)
    if refusal is not None:
        return 409, refusal
    change = order.notional_cents if order.side == "sell" else -order.notional_cents
    return 200, {
        "settlementId": _settlement_id(request, key),
        "orderId": order.id,
        "status": "settled",
        "cashAfter": (account.cash_cents + change) / CENTS,
    }


def find_refusal(order: Order, account: Account) -> dict[str, str] | None:
    """Why the order cannot be settled against the account, naming the field; None if it can."""
    if order.status != "accepted":
        return {
            "error": f"order {order.id} is {order.status}: only an accepted order is settled",
            "field": "order.status",
        }
    if order.side == "buy" and order.notional_cents > account.cash_cents:
        notional, cash = order.notional_cents / CENTS, account.cash_cents / CENTS
        return {
            "error": f"insufficient funds: notional {notional:.2f} exceeds cash {cash:.2f}",
            "field": "account.cash",
        }
    return None


def _parse_order(order: dict[str, Any]) -> Order:
    return Order(
        id=require_text(order.get("orderId"), "order.orderId"),
        status=require_text(order.get("status"), "order.status"),
        side=_require_side(order.get("side")),
        notional_cents=round(
            require_positive_number(order.get("notional"), "order.notional") * CENTS
        ),
    )


def _require_side(value: Any) -> str:
    if value not in SIDES:
        raise InvalidFieldError("order.side", "must be buy or sell")
    return str(value)


def _parse_account(account: dict[str, Any]) -> Account:
    return Account(
        id=require_text(account.get("id"), "account.id"),
        cash_cents=round(require_number(account.get("cash"), "account.cash", minimum=0) * CENTS),
    )


def _settlement_id(request: dict[str, Any], key: str | None) -> str:
    canonical = json.dumps([key, request], sort_keys=True, separators=(",", ":"))
    return "stl-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, settle_trade, args)


if __name__ == "__main__":
    main()
