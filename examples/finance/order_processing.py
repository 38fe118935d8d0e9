"""order-processing: accept or reject a user's order given their validated risk. Deterministic.

POST /orders with `{"user": {"id"}, "order": {"symbol", "side", "quantity", "limitPrice"},
"riskScore"}` answers `{"orderId", "userId", "status": "accepted"|"rejected", "symbol", "side",
"quantity", "limitPrice", "notional", "exchange", "reasons"}`. The riskier the user, the smaller
the order accepted (see NOTIONAL_LIMITS). A malformed order is answered 400, which Stepline never
retries; a rejected order is a 200 with status "rejected" — a business answer, not an error.
The order id is derived from the request and its Idempotency-Key, so a retried call gets the
same id.

    python -m finance.order_processing --port 9002 --exchange XNYS     # from examples/
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeGuard

from finance.serving import build_parser, serve_step

PATH = "/orders"
SIDES = frozenset({"buy", "sell"})
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")
# (risk score below, largest notional accepted): a user scored 60 or more may not trade at all.
NOTIONAL_LIMITS = ((30, 1_000_000.0), (60, 100_000.0))


def process_order(
    request: dict[str, Any], key: str | None = None, *, exchange: str = "XNYS"
) -> tuple[int, Any]:
    problem = _find_problem(request)
    if problem is not None:
        return 400, {"error": problem}
    user, order, risk = request["user"], request["order"], request["riskScore"]
    notional = round(order["quantity"] * order["limitPrice"], 2)
    limit = next((notional for below, notional in NOTIONAL_LIMITS if risk < below), 0.0)
    reasons = []
    if limit == 0:
        reasons.append(f"risk score {risk} is too high to trade")
    elif notional > limit:
        reasons.append(f"notional {notional:,.2f} exceeds {limit:,.0f} for risk score {risk}")
    return 200, {
        "orderId": _order_id(request, key),
        "userId": user["id"],
        "status": "rejected" if reasons else "accepted",
        "symbol": order["symbol"],
        "side": order["side"],
        "quantity": order["quantity"],
        "limitPrice": order["limitPrice"],
        "notional": notional,
        "exchange": exchange,
        "reasons": reasons,
    }


def _find_problem(request: dict[str, Any]) -> str | None:
    """What is wrong with the request, if anything: the first failed check's message."""
    return next((message for check, message in _CHECKS if not check(request)), None)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# In order: a check runs only when the ones before it passed, so later ones may index freely.
_CHECKS: tuple[tuple[Callable[[dict[str, Any]], bool], str], ...] = (
    (
        lambda r: isinstance(r.get("user"), dict) and isinstance(r["user"].get("id"), str),
        "user.id is required (a string)",
    ),
    (
        lambda r: _is_number(r.get("riskScore")) and 0 <= r["riskScore"] <= 100,
        "riskScore is required (a number from 0 to 100)",
    ),
    (lambda r: isinstance(r.get("order"), dict), "order is required (an object)"),
    (
        lambda r: (
            isinstance(r["order"].get("symbol"), str)
            and SYMBOL.match(r["order"]["symbol"]) is not None
        ),
        "order.symbol must be 1 to 12 capital letters, digits or dots",
    ),
    (lambda r: r["order"].get("side") in SIDES, "order.side must be buy or sell"),
    (
        lambda r: _is_positive_whole(r["order"].get("quantity")),
        "order.quantity must be a positive whole number",
    ),
    (
        lambda r: _is_number(r["order"].get("limitPrice")) and r["order"]["limitPrice"] > 0,
        "order.limitPrice must be a positive number",
    ),
)


def _order_id(request: dict[str, Any], key: str | None) -> str:
    canonical = json.dumps([key, request], sort_keys=True, separators=(",", ":"))
    return "ord-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--exchange",
        default=os.environ.get("EXCHANGE", "XNYS"),
        help="exchange the orders go to (default: $EXCHANGE, else XNYS)",
    )
    args = parser.parse_args(argv)
    decide = partial(process_order, exchange=args.exchange)
    serve_step(PATH, decide, args)


if __name__ == "__main__":
    main()
