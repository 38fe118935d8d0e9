"""traffic-flow: how congested a city's road segments are, from their detectors' latest readings.
Deterministic: the same readings always get the same answer.

POST /traffic with `{"cityId", "segments": [{"id", "district", "freeFlowKmh", "readings":
[{"speedKmh", "vehicles"}]}]}` answers `{"cityId", "segments": [{"id", "district",
"avgSpeedKmh", "vehiclesPerHour", "congestion", "level"}], "congestedSegments": [ids],
"congestionIndex"}`. Each reading is one READING_MINUTES interval: its mean speed and the
vehicles counted. A segment's congestion is the share of its free-flow speed lost, from 0 (free
flow or faster) to 1 (stopped), rounded to two places; its level follows from that (see LEVELS),
and a segment at "heavy" or "standstill" is congested. The city's congestion index is the mean of
its segments' congestion. A malformed request is answered 400 naming the field.

    python -m city.traffic_flow --port 9021     # from examples/
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finance.serving import build_parser, serve_step
from manufacturing.parsing import (
    InvalidFieldError,
    require_distinct,
    require_items,
    require_number,
    require_positive_number,
    require_text,
)

from city.parsing import require_whole

PATH = "/traffic"
READING_MINUTES = 5  # the interval detectors commonly count over; 12 readings make an hour
# (congestion below, level), else "standstill". After the Highway Capacity Manual's levels of
# service for urban streets, by speed as a share of free-flow speed: above 67% is A-B, above 40%
# C-D, the rest E-F; at 15% or less (under 8 km/h on a 50 km/h street) traffic stops and goes.
LEVELS = ((0.33, "free"), (0.60, "moderate"), (0.85, "heavy"))
CONGESTED = frozenset({"heavy", "standstill"})


@dataclass(frozen=True)
class Reading:
    speed_kmh: float
    vehicles: int


@dataclass(frozen=True)
class Segment:
    id: str
    district: str
    free_flow_kmh: float
    readings: tuple[Reading, ...]


def assess_traffic(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    try:
        city_id = require_text(request.get("cityId"), "cityId")
        segments = require_items(request.get("segments"), "segments", _parse_segment)
        require_distinct((segment.id for segment in segments), "segments", "id")
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    assessed = [assess_segment(segment) for segment in segments]
    return 200, {
        "cityId": city_id,
        "segments": assessed,
        "congestedSegments": [s["id"] for s in assessed if s["level"] in CONGESTED],
        "congestionIndex": round(sum(s["congestion"] for s in assessed) / len(assessed), 2),
    }


def assess_segment(segment: Segment) -> dict[str, Any]:
    """The segment's mean speed and flow, and how much of its free-flow speed it lost."""
    readings = segment.readings
    speed = sum(reading.speed_kmh for reading in readings) / len(readings)
    vehicles = sum(reading.vehicles for reading in readings)
    congestion = round(max(0.0, 1 - speed / segment.free_flow_kmh), 2)
    return {
        "id": segment.id,
        "district": segment.district,
        "avgSpeedKmh": round(speed, 1),
        "vehiclesPerHour": round(vehicles * 60 / (len(readings) * READING_MINUTES)),
        "congestion": congestion,
        "level": next((level for below, level in LEVELS if congestion < below), "standstill"),
    }


def _parse_segment(segment: dict[str, Any], field: str) -> Segment:
    return Segment(
        id=require_text(segment.get("id"), f"{field}.id"),
        district=require_text(segment.get("district"), f"{field}.district"),
        free_flow_kmh=require_positive_number(segment.get("freeFlowKmh"), f"{field}.freeFlowKmh"),
        readings=tuple(require_items(segment.get("readings"), f"{field}.readings", _parse_reading)),
    )


def _parse_reading(reading: dict[str, Any], field: str) -> Reading:
    return Reading(
        speed_kmh=require_number(reading.get("speedKmh"), f"{field}.speedKmh", minimum=0),
        vehicles=require_whole(reading.get("vehicles"), f"{field}.vehicles"),
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, assess_traffic, args)


if __name__ == "__main__":
    main()
