"""city-report: the three services' answers joined district by district, the status by its fixed
rules, actions and summary in a fixed order, and malformed requests refused."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest
from city import city_report
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve


def traffic(congested: list[str], index: float = 0.3) -> dict[str, Any]:
    segments = [
        {"id": "ring", "district": "old-town", "level": "heavy"},
        {"id": "quay", "district": "harbour", "level": "free"},
        {"id": "pass", "district": "hillside", "level": "free"},
    ]
    return {
        "cityId": "c",
        "segments": segments,
        "congestedSegments": congested,
        "congestionIndex": index,
    }


def air(harbour: int = 1, city: int | None = None) -> dict[str, Any]:
    stations = [
        {"id": "st-1", "district": "old-town", "index": 1},
        {"id": "st-2", "district": "harbour", "index": harbour},
        {"id": "st-3", "district": "harbour", "index": 2},
    ]
    return {"cityId": "c", "stations": stations, "cityIndex": city or max(harbour, 2)}


def complaints(
    by_district: dict[str, int] | None = None,
    *,
    hotspots: list[str] | None = None,
    overdue: list[str] | None = None,
) -> dict[str, Any]:
    by_district = {"harbour": 1} if by_district is None else by_district
    return {
        "cityId": "c",
        "open": sum(by_district.values()),
        "byDistrict": by_district,
        "overdue": overdue or [],
        "hotspots": hotspots or [],
    }


def report(traffic: dict[str, Any], air: dict[str, Any], complaints: dict[str, Any]) -> Any:
    request = {"cityId": "c", "traffic": traffic, "air": air, "complaints": complaints}
    status, answer = city_report.report_city(request)
    assert status == 200, answer
    return answer


def test_flags_by_district_put_the_city_on_watch_with_an_action_for_each() -> None:
    answer = report(
        traffic(["ring"]),
        air(harbour=3),
        complaints({"university": 5, "harbour": 1}, hotspots=["university"], overdue=["c-9"]),
    )

    assert answer == {
        "cityId": "c",
        "status": "watch",
        "districts": [
            {"district": "harbour", "airCategory": "moderate", "congestedSegments": [],
             "openComplaints": 1, "flags": ["air-quality"]},
            {"district": "hillside", "airCategory": None, "congestedSegments": [],
             "openComplaints": 0, "flags": []},
            {"district": "old-town", "airCategory": "good", "congestedSegments": ["ring"],
             "openComplaints": 0, "flags": ["congestion"]},
            {"district": "university", "airCategory": None, "congestedSegments": [],
             "openComplaints": 5, "flags": ["complaint-hotspot"]},
        ],
        "actions": [
            "harbour: advise people sensitive to air pollution to limit time outdoors "
            "(air moderate)",
            "old-town: retime signals and divert traffic around ring",
            "university: send a crew for its 5 open complaints",
            "chase the overdue complaints (1): c-9",
        ],
        "summary": "c: watch. Air moderate, congestion index 0.30, open complaints 6 "
        "(1 overdue). Flagged: harbour (air-quality); old-town (congestion); "
        "university (complaint-hotspot).",
    }  # fmt: skip


def test_with_no_flag_the_city_is_normal_and_overdue_complaints_alone_do_not_change_that() -> None:
    answer = report(traffic([]), air(), complaints(overdue=["c-1", "c-2"]))

    assert answer["status"] == "normal"
    assert answer["actions"] == ["chase the overdue complaints (2): c-1, c-2"]
    assert answer["summary"].endswith("(2 overdue). No district flagged.")


@pytest.mark.parametrize(("city_index", "status"), [(3, "watch"), (4, "alert"), (6, "alert")])
def test_air_poor_or_worse_anywhere_is_an_alert_with_a_city_wide_action_first(
    city_index: int, status: str
) -> None:
    answer = report(traffic([]), air(harbour=city_index), complaints())

    assert answer["status"] == status
    alerted = answer["actions"][0].startswith("issue a city-wide air-quality alert")
    assert alerted is (status == "alert")


@pytest.mark.parametrize(("index", "status"), [(0.59, "normal"), (0.6, "alert"), (1, "alert")])
def test_a_congestion_index_of_0_6_or_more_is_an_alert(index: float, status: str) -> None:
    answer = report(traffic([], index=index), air(), complaints())

    assert answer["status"] == status
    if status == "alert":
        assert answer["actions"] == [
            f"put the city-wide traffic plan into effect: congestion index {index:.2f}"
        ]


def test_actions_go_flag_by_flag_then_district_by_district() -> None:
    answer = report(
        traffic(["ring", "quay"]),
        air(harbour=3),
        complaints({"harbour": 6, "old-town": 5}, hotspots=["harbour", "old-town"]),
    )

    assert [action.split(":")[0] for action in answer["actions"]] == [
        "harbour",  # air-quality
        "harbour", "old-town",  # congestion
        "harbour", "old-town",  # complaint-hotspot
    ]  # fmt: skip
    assert answer["districts"][0]["flags"] == ["air-quality", "congestion", "complaint-hotspot"]


def test_the_same_answers_always_get_the_same_report() -> None:
    answers = (traffic(["ring"]), air(harbour=5), complaints(hotspots=["harbour"]))

    assert report(*copy.deepcopy(answers)) == report(*answers)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"cityId": None}, "cityId", "is required (a non-empty string)"),
        ({"traffic": None}, "traffic", "is required (an object)"),
        ({"air": [1]}, "air", "is required (an object)"),
        (
            {"complaints": complaints() | {"cityId": "elsewhere"}},
            "complaints.cityId",
            "must be the report's cityId 'c'",
        ),
        (
            {"traffic": traffic(["bridge"])},
            "traffic.congestedSegments[0]",
            "must be the id of one of traffic.segments",
        ),
        (
            {"traffic": traffic([]) | {"congestedSegments": "ring"}},
            "traffic.congestedSegments",
            "must be a list of strings",
        ),
        ({"traffic": traffic([], index=1.2)}, "traffic.congestionIndex", "must be at most 1"),
        (
            {"traffic": traffic([]) | {"segments": traffic([])["segments"] * 2}},
            "traffic.segments[3].id",
            "repeats 'ring'",
        ),
        (
            {"traffic": traffic([]) | {"segments": [{"id": "ring"}]}},
            "traffic.segments[0].district",
            "is required (a non-empty string)",
        ),
        ({"air": air(city=7)}, "air.cityIndex", "must be at most 6"),
        ({"air": air(harbour=0, city=2)}, "air.stations[1].index", "must be at least 1"),
        (
            {"complaints": complaints() | {"byDistrict": {"harbour": "3"}}},
            "complaints.byDistrict.harbour",
            "must be a whole number",
        ),
        (
            {"complaints": complaints() | {"open": -1}},
            "complaints.open",
            "must be at least 0",
        ),
        (
            {"complaints": complaints() | {"hotspots": [""]}},
            "complaints.hotspots[0]",
            "is required (a non-empty string)",
        ),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    change: dict[str, Any], field: str, reason: str
) -> None:
    request = {"cityId": "c", "traffic": traffic([]), "air": air(), "complaints": complaints()}

    status, answer = city_report.report_city(request | change)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(build_step_app(city_report.PATH, city_report.report_city))
    request = {"cityId": "c", "traffic": traffic([]), "air": air(), "complaints": complaints()}

    async with http.post(f"{base}/report", json=request) as got:
        assert got.status == 200
        assert (await got.json())["status"] == "normal"
    async with http.post(f"{base}/report", json=request | {"air": None}) as got:
        assert got.status == 400
        assert (await got.json())["field"] == "air"
