"""city-report: one report on a city's morning, joining what traffic-flow, air-quality and
service-complaints answered. Deterministic: fixed rules in a fixed order, so the same three
answers always get the same report.

POST /report with `{"cityId", "traffic", "air", "complaints"}` (the three services' answers, each
for the same cityId) answers `{"cityId", "status": "normal"|"watch"|"alert", "districts":
[{"district", "airCategory", "congestedSegments", "openComplaints", "flags"}], "actions",
"summary"}`. Districts are every district the three answers name, by name; a district's air is
its worst station's (null without a station). Its flags, in FLAGS' order: "air-quality" when
that air is moderate or worse, "congestion" when one of its segments is congested,
"complaint-hotspot" when service-complaints found it one. The status is "alert" when the city's
air is poor or worse or its congestion index is ALERT_CONGESTION or more, else "watch" when any
district has a flag, else "normal". `actions` are the city-wide ones an alert calls for, then one
per flag (flag by flag, district by district), then chasing the overdue complaints; `summary` is
one paragraph from the same figures. A malformed request is answered 400 naming the field.

    python -m city.city_report --port 9024     # from examples/
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from finance.serving import build_parser, serve_step
from manufacturing.parsing import (
    InvalidFieldError,
    require_distinct,
    require_items,
    require_number,
    require_object,
    require_text,
)

from city.air_quality import CATEGORIES
from city.parsing import require_names, require_whole

PATH = "/report"
AIR_FLAG_INDEX = CATEGORIES.index("moderate") + 1  # sensitive people should limit time outdoors
ALERT_AIR_INDEX = CATEGORIES.index("poor") + 1  # everyone should
WORST_INDEX = len(CATEGORIES)
ALERT_CONGESTION = 0.6  # the city's segments lose 60% of their free-flow speed on average
FLAGS = ("air-quality", "congestion", "complaint-hotspot")
ADVICE: dict[str, Callable[[dict[str, Any]], str]] = {
    "air-quality": lambda d: (
        f"{d['district']}: advise people sensitive to air pollution to limit time outdoors "
        f"(air {d['airCategory']})"
    ),
    "congestion": lambda d: (
        f"{d['district']}: retime signals and divert traffic around "
        f"{', '.join(d['congestedSegments'])}"
    ),
    "complaint-hotspot": lambda d: (
        f"{d['district']}: send a crew for its {d['openComplaints']} open complaints"
    ),
}


@dataclass(frozen=True)
class Traffic:
    districts: dict[str, str]  # segment id → its district
    congested: tuple[str, ...]
    congestion_index: float


@dataclass(frozen=True)
class Air:
    stations: tuple[tuple[str, int], ...]  # (district, index) of each station
    city_index: int


@dataclass(frozen=True)
class Complaints:
    open: int
    by_district: dict[str, int]
    overdue: tuple[str, ...]
    hotspots: tuple[str, ...]


@dataclass(frozen=True)
class Answers:
    """The three services' answers for one city, as far as the report reads them."""

    city_id: str
    traffic: Traffic
    air: Air
    complaints: Complaints


def report_city(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    try:
        answers = _parse_answers(request)
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    districts = compute_districts(answers)
    status = compute_status(answers, districts)
    return 200, {
        "cityId": answers.city_id,
        "status": status,
        "districts": districts,
        "actions": build_actions(answers, districts),
        "summary": build_summary(answers, districts, status=status),
    }


def compute_districts(answers: Answers) -> list[dict[str, Any]]:
    """Each district the three answers name, in name order, with its figures and flags."""
    traffic, air, complaints = answers.traffic, answers.air, answers.complaints
    names = {*traffic.districts.values(), *(district for district, _ in air.stations)}
    names |= {*complaints.by_district, *complaints.hotspots}
    return [_district(name, answers) for name in sorted(names)]


def _district(name: str, answers: Answers) -> dict[str, Any]:
    traffic, air, complaints = answers.traffic, answers.air, answers.complaints
    air_index = max((index for district, index in air.stations if district == name), default=0)
    congested = [s for s in traffic.congested if traffic.districts[s] == name]
    raised = {
        "air-quality": air_index >= AIR_FLAG_INDEX,
        "congestion": bool(congested),
        "complaint-hotspot": name in complaints.hotspots,
    }
    return {
        "district": name,
        "airCategory": CATEGORIES[air_index - 1] if air_index else None,
        "congestedSegments": congested,
        "openComplaints": complaints.by_district.get(name, 0),
        "flags": [flag for flag in FLAGS if raised[flag]],
    }


def compute_status(answers: Answers, districts: Sequence[dict[str, Any]]) -> str:
    if _air_alert(answers) or _traffic_alert(answers):
        return "alert"
    return "watch" if any(district["flags"] for district in districts) else "normal"


def build_actions(answers: Answers, districts: Sequence[dict[str, Any]]) -> list[str]:
    """The city-wide actions of an alert, one per district flag, then the overdue complaints."""
    actions = []
    if _air_alert(answers):
        actions.append(f"issue a city-wide air-quality alert: the air is {_city_air(answers)}")
    if _traffic_alert(answers):
        index = answers.traffic.congestion_index
        actions.append(f"put the city-wide traffic plan into effect: congestion index {index:.2f}")
    actions += [ADVICE[flag](d) for flag in FLAGS for d in districts if flag in d["flags"]]
    overdue = answers.complaints.overdue
    if overdue:
        actions.append(f"chase the overdue complaints ({len(overdue)}): {', '.join(overdue)}")
    return actions


def build_summary(answers: Answers, districts: Sequence[dict[str, Any]], *, status: str) -> str:
    traffic, complaints = answers.traffic, answers.complaints
    flagged = [f"{d['district']} ({', '.join(d['flags'])})" for d in districts if d["flags"]]
    return (
        f"{answers.city_id}: {status}. Air {_city_air(answers)}, congestion index "
        f"{traffic.congestion_index:.2f}, open complaints {complaints.open} "
        f"({len(complaints.overdue)} overdue). "
        + (f"Flagged: {'; '.join(flagged)}." if flagged else "No district flagged.")
    )


def _air_alert(answers: Answers) -> bool:
    return answers.air.city_index >= ALERT_AIR_INDEX


def _traffic_alert(answers: Answers) -> bool:
    return answers.traffic.congestion_index >= ALERT_CONGESTION


def _city_air(answers: Answers) -> str:
    """The city's air category: its worst station's."""
    return CATEGORIES[answers.air.city_index - 1]


def _parse_answers(request: dict[str, Any]) -> Answers:
    city_id = require_text(request.get("cityId"), "cityId")
    return Answers(
        city_id=city_id,
        traffic=_parse_traffic(_require_part(request, "traffic", city_id)),
        air=_parse_air(_require_part(request, "air", city_id)),
        complaints=_parse_complaints(_require_part(request, "complaints", city_id)),
    )


def _require_part(request: dict[str, Any], field: str, city_id: str) -> dict[str, Any]:
    """One service's answer, which must be about the report's city."""
    part = require_object(request.get(field), field)
    if require_text(part.get("cityId"), f"{field}.cityId") != city_id:
        raise InvalidFieldError(f"{field}.cityId", f"must be the report's cityId {city_id!r}")
    return part


def _parse_traffic(traffic: dict[str, Any]) -> Traffic:
    segments = require_items(traffic.get("segments"), "traffic.segments", _parse_segment)
    require_distinct((segment for segment, _ in segments), "traffic.segments", "id")
    districts = dict(segments)
    congested = require_names(traffic.get("congestedSegments"), "traffic.congestedSegments")
    for index, segment in enumerate(congested):
        if segment not in districts:
            field = f"traffic.congestedSegments[{index}]"
            raise InvalidFieldError(field, "must be the id of one of traffic.segments")
    congestion = require_number(
        traffic.get("congestionIndex"), "traffic.congestionIndex", minimum=0
    )
    if congestion > 1:
        raise InvalidFieldError("traffic.congestionIndex", "must be at most 1")
    return Traffic(districts=districts, congested=tuple(congested), congestion_index=congestion)


def _parse_segment(segment: dict[str, Any], field: str) -> tuple[str, str]:
    """A segment's id and district: all the report reads of it."""
    identity = require_text(segment.get("id"), f"{field}.id")
    return identity, require_text(segment.get("district"), f"{field}.district")


def _parse_air(air: dict[str, Any]) -> Air:
    stations = require_items(air.get("stations"), "air.stations", _parse_station)
    city_index = require_whole(
        air.get("cityIndex"), "air.cityIndex", minimum=1, maximum=WORST_INDEX
    )
    return Air(stations=tuple(stations), city_index=city_index)


def _parse_station(station: dict[str, Any], field: str) -> tuple[str, int]:
    district = require_text(station.get("district"), f"{field}.district")
    index = require_whole(station.get("index"), f"{field}.index", minimum=1, maximum=WORST_INDEX)
    return district, index


def _parse_complaints(complaints: dict[str, Any]) -> Complaints:
    by_district = require_object(complaints.get("byDistrict"), "complaints.byDistrict")
    return Complaints(
        open=require_whole(complaints.get("open"), "complaints.open"),
        by_district={
            district: require_whole(count, f"complaints.byDistrict.{district}")
            for district, count in by_district.items()
        },
        overdue=tuple(require_names(complaints.get("overdue"), "complaints.overdue")),
        hotspots=tuple(require_names(complaints.get("hotspots"), "complaints.hotspots")),
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, report_city, args)


if __name__ == "__main__":
    main()
