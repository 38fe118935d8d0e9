"""traffic-flow: each segment's congestion and level from its readings, the city's index, and
malformed requests refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from city import traffic_flow
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve


def segment(identity: str, *speeds: float, free_flow: float = 50, vehicles: int = 40) -> Any:
    readings = [{"speedKmh": speed, "vehicles": vehicles} for speed in speeds]
    return {"id": identity, "district": "centre", "freeFlowKmh": free_flow, "readings": readings}


def assess(*segments: Any) -> Any:
    status, answer = traffic_flow.assess_traffic({"cityId": "c", "segments": list(segments)})
    assert status == 200, answer
    return answer


def test_a_segment_gets_its_mean_speed_hourly_flow_congestion_and_level() -> None:
    readings = [{"speedKmh": 18, "vehicles": 52}, {"speedKmh": 15, "vehicles": 47}]
    ring = {"id": "ring", "district": "old-town", "freeFlowKmh": 50, "readings": readings}

    answer = assess(ring)

    assert answer == {
        "cityId": "c",
        "segments": [
            {
                "id": "ring",
                "district": "old-town",
                "avgSpeedKmh": 16.5,
                "vehiclesPerHour": 594,  # 99 vehicles in two 5-minute readings
                "congestion": 0.67,
                "level": "heavy",
            }
        ],
        "congestedSegments": ["ring"],
        "congestionIndex": 0.67,
    }


@pytest.mark.parametrize(
    ("speed", "congestion", "level"),
    [
        (50, 0.0, "free"),
        (33.5, 0.33, "moderate"),  # 67% of free flow: no longer above it
        (34, 0.32, "free"),
        (20, 0.6, "heavy"),
        (20.5, 0.59, "moderate"),
        (7.5, 0.85, "standstill"),
        (8, 0.84, "heavy"),
        (0, 1.0, "standstill"),
    ],
)
def test_the_level_follows_the_congestion_reported_at_its_bounds(
    speed: float, congestion: float, level: str
) -> None:
    (assessed,) = assess(segment("s", speed))["segments"]

    assert (assessed["congestion"], assessed["level"]) == (congestion, level)


def test_traffic_faster_than_free_flow_is_no_congestion_rather_than_a_negative_one() -> None:
    (assessed,) = assess(segment("s", 65))["segments"]

    assert assessed["congestion"] == 0


def test_only_heavy_and_standstill_segments_are_congested_and_the_index_is_their_mean() -> None:
    answer = assess(segment("free", 45), segment("jam", 5), segment("slow", 25))

    assert [s["level"] for s in answer["segments"]] == ["free", "standstill", "moderate"]
    assert answer["congestedSegments"] == ["jam"]
    assert answer["congestionIndex"] == 0.5  # (0.1 + 0.9 + 0.5) / 3


def test_a_reading_with_no_vehicle_counted_is_no_error() -> None:
    (assessed,) = assess(segment("s", 0, vehicles=0))["segments"]

    assert assessed["vehiclesPerHour"] == 0


READING = {"speedKmh": 30, "vehicles": 10}
SEGMENT = {"id": "s", "district": "d", "freeFlowKmh": 50, "readings": [READING]}


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"segments": [SEGMENT]}, "cityId", "is required (a non-empty string)"),
        ({"cityId": "c", "segments": []}, "segments", "must be a non-empty list"),
        (
            {"cityId": "c", "segments": [SEGMENT | {"district": ""}]},
            "segments[0].district",
            "is required (a non-empty string)",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"freeFlowKmh": 0}]},
            "segments[0].freeFlowKmh",
            "must be a positive number",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"readings": []}]},
            "segments[0].readings",
            "must be a non-empty list",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"readings": [READING | {"speedKmh": -3}]}]},
            "segments[0].readings[0].speedKmh",
            "must be at least 0",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"readings": [READING, {"speedKmh": 30}]}]},
            "segments[0].readings[1].vehicles",
            "must be a whole number",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"readings": [READING | {"vehicles": 2.5}]}]},
            "segments[0].readings[0].vehicles",
            "must be a whole number",
        ),
        (
            {"cityId": "c", "segments": [SEGMENT | {"readings": [READING | {"vehicles": -1}]}]},
            "segments[0].readings[0].vehicles",
            "must be at least 0",
        ),
        ({"cityId": "c", "segments": [SEGMENT, SEGMENT]}, "segments[1].id", "repeats 's'"),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = traffic_flow.assess_traffic(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_with_its_health_and_metrics(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(build_step_app(traffic_flow.PATH, traffic_flow.assess_traffic))

    async with http.post(f"{base}/traffic", json={"cityId": "c", "segments": [SEGMENT]}) as got:
        assert got.status == 200
        assert (await got.json())["congestionIndex"] == 0.4
    async with http.get(f"{base}/healthz") as got:
        assert await got.json() == {"status": "ok"}
    async with http.get(f"{base}/metrics") as got:
        assert 'step_requests_total{code="200"} 1.0' in await got.text()
