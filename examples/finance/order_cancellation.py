"""order-cancellation: cancel an order that was placed; the finance trade's compensation for its
`order` step. Deterministic.

POST /cancellations with `{"orderId", "userId", "reason"}` answers `{"cancellationId", "orderId",
"status": "cancelled"}`. The cancellation id is derived from the request's Idempotency-Key
(Stepline sends `<run uid>/order/compensation`), so every retry of one compensation, and a
resumed run's call again, gets the same id; without a key it is derived from the order id, so an
order is cancelled once however often it is asked. A malformed request is answered 400 naming
the field.

    python -m finance.order_cancellation --port 9004     # from examples/
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from manufacturing.parsing import InvalidFieldError, require_text

from finance.serving import build_parser, serve_step

PATH = "/cancellations"


def cancel_order(request: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    try:
        order_id = require_text(request.get("orderId"), "orderId")
        require_text(request.get("userId"), "userId")
        require_text(request.get("reason"), "reason")
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    return 200, {
        "cancellationId": cancellation_id(key if key is not None else f"order/{order_id}"),
        "orderId": order_id,
        "status": "cancelled",
    }


def cancellation_id(source: str) -> str:
    return "cxl-" + hashlib.sha256(source.encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, cancel_order, args)


if __name__ == "__main__":
    main()
