"""service-complaints: open complaints counted by category and district, the overdue ones by
their category's service level at the request's own `asOf`, hotspots, and malformed requests
refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from city import service_complaints
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

AS_OF = "2026-12-07T07:30:00Z"


def complaint(
    identity: str,
    district: str = "centre",
    *,
    category: str = "noise",
    opened: str = "2026-12-07T06:00:00Z",
    status: str = "open",
) -> dict[str, Any]:
    return {
        "id": identity,
        "district": district,
        "category": category,
        "openedAt": opened,
        "status": status,
    }


def summarize(*complaints: dict[str, Any], as_of: str = AS_OF) -> Any:
    request = {"cityId": "c", "asOf": as_of, "complaints": list(complaints)}
    status, answer = service_complaints.summarize_complaints(request)
    assert status == 200, answer
    return answer


def test_open_complaints_are_counted_by_category_and_district_and_closed_ones_are_not() -> None:
    answer = summarize(
        complaint("c-1", "harbour", category="waste"),
        complaint("c-2", "old-town", category="roads"),
        complaint("c-3", "harbour", category="waste", status="closed"),
        complaint("c-4", "harbour", category="noise"),
    )

    assert answer == {
        "cityId": "c",
        "open": 3,
        "byCategory": {
            "noise": 1, "waste": 1, "roads": 1, "lighting": 0, "water": 0, "other": 0,
        },
        "byDistrict": {"harbour": 2, "old-town": 1},
        "overdue": [],
        "hotspots": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("category", "opened", "overdue"),
    [
        ("noise", "2026-12-06T07:30:00Z", False),  # exactly 24 hours: still in time
        ("noise", "2026-12-06T07:29:59Z", True),
        ("water", "2026-12-06T06:00:00Z", True),
        ("waste", "2026-12-05T08:00:00Z", False),
        ("roads", "2026-12-02T07:00:00Z", True),
        ("lighting", "2026-11-30T08:30:00+01:00", False),  # exactly 7 days, in another zone
        ("lighting", "2026-11-30T08:29:00+01:00", True),
        ("other", "2026-11-27T07:00:00Z", True),
    ],
)
def test_a_complaint_is_overdue_when_open_longer_than_its_categorys_service_level(
    category: str, opened: str, overdue: bool
) -> None:
    answer = summarize(complaint("c-1", category=category, opened=opened))

    assert answer["overdue"] == (["c-1"] if overdue else [])


def test_a_closed_complaint_is_never_overdue() -> None:
    answer = summarize(complaint("c-1", opened="2026-10-01T00:00:00Z", status="closed"))

    assert answer["overdue"] == []


def test_a_district_with_five_open_complaints_is_a_hotspot() -> None:
    five = [complaint(f"u-{n}", "university") for n in range(5)]
    four = [complaint(f"h-{n}", "harbour") for n in range(4)]

    answer = summarize(*four, *five, complaint("h-9", "harbour", status="closed"))

    assert answer["byDistrict"] == {"harbour": 4, "university": 5}
    assert answer["hotspots"] == ["university"]


def test_no_complaints_at_all_is_not_an_error() -> None:
    answer = summarize()

    assert (answer["open"], answer["byDistrict"], answer["overdue"]) == (0, {}, [])
    assert set(answer["byCategory"].values()) == {0}


def test_the_same_request_gets_the_same_answer_whatever_the_time_it_is_asked() -> None:
    old = complaint("c-1", opened="2020-01-01T00:00:00Z")

    first = summarize(old, as_of="2020-01-01T12:00:00Z")
    again = summarize(old, as_of="2020-01-01T12:00:00Z")

    assert first == again
    assert first["overdue"] == []


def test_lower_case_separators_and_fractions_of_a_second_are_rfc_3339_too() -> None:
    answer = summarize(complaint("c-1", opened="2026-12-07t06:00:00.250z"))

    assert answer["open"] == 1


COMPLAINT = complaint("c-1")


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"asOf": AS_OF, "complaints": []}, "cityId", "is required (a non-empty string)"),
        (
            {"cityId": "c", "complaints": []},
            "asOf",
            "must be an RFC 3339 time such as 2026-12-07T07:30:00Z",
        ),
        (
            {"cityId": "c", "asOf": "2026-12-07T07:30:00", "complaints": []},
            "asOf",
            "must be an RFC 3339 time such as 2026-12-07T07:30:00Z",
        ),
        (
            {"cityId": "c", "asOf": "2026-02-30T07:30:00Z", "complaints": []},
            "asOf",
            "is not a valid date and time",
        ),
        (
            {"cityId": "c", "asOf": AS_OF},
            "complaints",
            "must be a list (empty when there are none)",
        ),
        (
            {"cityId": "c", "asOf": AS_OF, "complaints": [COMPLAINT | {"category": "parking"}]},
            "complaints[0].category",
            "must be one of noise, waste, roads, lighting, water, other",
        ),
        (
            {"cityId": "c", "asOf": AS_OF, "complaints": [COMPLAINT | {"status": "OPEN"}]},
            "complaints[0].status",
            "must be one of open, closed",
        ),
        (
            {"cityId": "c", "asOf": AS_OF, "complaints": [COMPLAINT | {"openedAt": 1733553000}]},
            "complaints[0].openedAt",
            "must be an RFC 3339 time such as 2026-12-07T07:30:00Z",
        ),
        (
            {
                "cityId": "c",
                "asOf": AS_OF,
                "complaints": [
                    COMPLAINT,
                    COMPLAINT | {"id": "c-2", "openedAt": "2026-12-08T00:00:00Z"},
                ],
            },
            "complaints[1].openedAt",
            "must not be after asOf",
        ),
        (
            {"cityId": "c", "asOf": AS_OF, "complaints": [COMPLAINT, COMPLAINT]},
            "complaints[1].id",
            "repeats 'c-1'",
        ),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = service_complaints.summarize_complaints(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_and_replays_a_repeated_key(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(
        build_step_app(service_complaints.PATH, service_complaints.summarize_complaints)
    )
    request = {"cityId": "c", "asOf": AS_OF, "complaints": [COMPLAINT]}
    headers = {"Idempotency-Key": "run-1/complaints"}

    async with http.post(f"{base}/complaints", json=request, headers=headers) as got:
        assert got.status == 200
        assert (await got.json())["open"] == 1
    async with http.post(f"{base}/complaints", json=request, headers=headers) as got:
        assert got.headers["Idempotent-Replayed"] == "true"
