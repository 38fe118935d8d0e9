"""user-validation: how risky is the user placing an order? Deterministic: the same input always
gets the same answer.

POST /validate with `{"user": {...}, "order": {...}}` (order optional) answers
`{"userId", "riskScore", "approved", "reasons"}`. The score starts at 5 and grows with each
risk found; the user is approved below 60, unless a hard rule refuses them outright (a sanctioned
country, under 18). A request without `user.id` is answered 400.

    python -m finance.user_validation --port 9001     # from examples/
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

from finance.serving import build_parser, serve_step

PATH = "/validate"
BASE_SCORE = 5
APPROVAL_LIMIT = 60  # scores at or above this are refused
SANCTIONED = frozenset({"CU", "IR", "KP", "SY"})
HIGH_RISK = frozenset({"AF", "MM", "RU", "VE", "YE"})
# (notional above, points): larger orders from the same user carry more risk.
ORDER_RISK = ((1_000_000, 35), (100_000, 20))


def score_user(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    user = request.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return 400, {"error": "user.id is required (a string)"}
    age = user.get("age")
    if age is not None and (not isinstance(age, int) or isinstance(age, bool)):
        return 400, {"error": "user.age must be a whole number of years"}
    points: list[tuple[int, str]] = []
    refusals: list[str] = []
    _score_country(user.get("country"), points, refusals)
    _score_age(age, points, refusals)
    if user.get("kycVerified") is not True:
        points.append((30, "KYC not verified"))
    _score_order(request.get("order"), points)
    score = 100 if refusals else min(BASE_SCORE + sum(p for p, _ in points), 100)
    return 200, {
        "userId": user["id"],
        "riskScore": score,
        "approved": not refusals and score < APPROVAL_LIMIT,
        "reasons": refusals + [reason for _, reason in points],
    }


def _score_country(country: Any, points: list[tuple[int, str]], refusals: list[str]) -> None:
    if not isinstance(country, str) or not country:
        points.append((20, "country unknown"))
    elif country.upper() in SANCTIONED:
        refusals.append(f"country {country.upper()} is sanctioned")
    elif country.upper() in HIGH_RISK:
        points.append((40, f"high-risk country {country.upper()}"))


def _score_age(age: int | None, points: list[tuple[int, str]], refusals: list[str]) -> None:
    if age is None:
        points.append((10, "age unknown"))
    elif age < 18:
        refusals.append("under 18")
    elif age < 21:
        points.append((15, "under 21"))
    elif age > 85:
        points.append((10, "over 85"))


def _score_order(order: Any, points: list[tuple[int, str]]) -> None:
    if not isinstance(order, dict):
        return
    quantity, price = order.get("quantity"), order.get("limitPrice")
    if not (_is_number(quantity) and _is_number(price)):
        return
    notional = quantity * price
    for above, extra in ORDER_RISK:
        if notional > above:
            points.append((extra, f"order above {above:,}"))
            return


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, score_user, args)


if __name__ == "__main__":
    main()
