"""service-complaints: where a city's open complaints pile up and which are overdue, at one moment.
Deterministic: the moment is in the request (`asOf`), never read from a clock, so the same request
always gets the same answer.

POST /complaints with `{"cityId", "asOf", "complaints": [{"id", "district", "category",
"openedAt", "status"}]}` (times in RFC 3339; categories and statuses as in CATEGORIES and
STATUSES) answers `{"cityId", "open", "byCategory": {category: open}, "byDistrict": {district:
open}, "overdue": [ids], "hotspots": [districts]}`. Only open complaints are counted: every
category in CATEGORIES' order, each district with one or more in the order first met. A complaint
is overdue when it has been open longer than its category's service level (SERVICE_HOURS); a
district is a hotspot with HOTSPOT_OPEN open complaints or more. No complaints at all is not an
error. A complaint opened after `asOf`, or any other malformed field, is answered 400 naming the
field.

    python -m city.service_complaints --port 9023     # from examples/
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from finance.serving import build_parser, serve_step
from manufacturing.parsing import InvalidFieldError, require_distinct, require_items, require_text

from city.parsing import require_choice, require_time

PATH = "/complaints"
# Hours from a complaint's opening to its closing that the city promises, by category: a noise or
# a water leak by the next day, a missed collection in two, a street light within the week.
SERVICE_HOURS = {"noise": 24, "waste": 48, "roads": 120, "lighting": 168, "water": 24, "other": 240}
CATEGORIES = tuple(SERVICE_HOURS)
STATUSES = ("open", "closed")
HOTSPOT_OPEN = 5  # open complaints that make a district a hotspot: a crew's morning of work


@dataclass(frozen=True)
class Complaint:
    id: str
    district: str
    category: str
    opened_at: datetime
    open: bool


def summarize_complaints(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    try:
        city_id = require_text(request.get("cityId"), "cityId")
        as_of = require_time(request.get("asOf"), "asOf")
        complaints = _parse_complaints(request.get("complaints"), as_of)
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    still_open = [complaint for complaint in complaints if complaint.open]
    by_category = Counter(complaint.category for complaint in still_open)
    by_district = Counter(complaint.district for complaint in still_open)  # in the order met
    return 200, {
        "cityId": city_id,
        "open": len(still_open),
        "byCategory": {category: by_category[category] for category in CATEGORIES},
        "byDistrict": dict(by_district),
        "overdue": [c.id for c in still_open if is_overdue(c, as_of)],
        "hotspots": [d for d, count in by_district.items() if count >= HOTSPOT_OPEN],
    }


def is_overdue(complaint: Complaint, as_of: datetime) -> bool:
    """Open for longer than its category's service level: exactly at it is still in time."""
    promised = timedelta(hours=SERVICE_HOURS[complaint.category])
    return complaint.open and as_of - complaint.opened_at > promised


def _parse_complaints(value: Any, as_of: datetime) -> list[Complaint]:
    """The complaints; an empty list is allowed (a city nobody complained about)."""
    if not isinstance(value, list):
        raise InvalidFieldError("complaints", "must be a list (empty when there are none)")
    if not value:
        return []
    complaints = require_items(value, "complaints", _parse_complaint)
    require_distinct((complaint.id for complaint in complaints), "complaints", "id")
    for index, complaint in enumerate(complaints):
        if complaint.opened_at > as_of:
            raise InvalidFieldError(f"complaints[{index}].openedAt", "must not be after asOf")
    return complaints


def _parse_complaint(complaint: dict[str, Any], field: str) -> Complaint:
    return Complaint(
        id=require_text(complaint.get("id"), f"{field}.id"),
        district=require_text(complaint.get("district"), f"{field}.district"),
        category=require_choice(complaint.get("category"), f"{field}.category", CATEGORIES),
        opened_at=require_time(complaint.get("openedAt"), f"{field}.openedAt"),
        open=require_choice(complaint.get("status"), f"{field}.status", STATUSES) == "open",
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, summarize_complaints, args)


if __name__ == "__main__":
    main()
