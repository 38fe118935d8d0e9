"""air-quality: how good a city's air is, station by station, on the European Air Quality Index.
Deterministic: the same measurements always get the same answer.

POST /air with `{"cityId", "stations": [{"id", "district", "pm25", "pm10", "no2", "o3"}]}`
(hourly means in µg/m³, 0 or more) answers `{"cityId", "stations": [{"id", "district", "index",
"category", "dominant"}], "worstDistrict", "cityIndex"}`. Each pollutant falls in one of six
bands (see BANDS), 1 "good" to 6 "extremely-poor"; a station's index is its worst pollutant's,
which is `dominant` (the first in POLLUTANTS' order when several are equally bad), and the
city's is its worst station's, in `worstDistrict` (the first listed when several are). A value
exactly at a band's upper limit is in that band. A malformed request is answered 400 naming the
field.

    python -m city.air_quality --port 9022     # from examples/
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
    require_text,
)

PATH = "/air"
CATEGORIES = ("good", "fair", "moderate", "poor", "very-poor", "extremely-poor")
# The upper limits of the bands good to very poor, in µg/m³; above the last is extremely poor.
# The European Environment Agency's six-level index as first published; the EEA has revised
# the bands since, and a city would take the table in force.
BANDS = {
    "pm25": (10, 20, 25, 50, 75),
    "pm10": (20, 40, 50, 100, 150),
    "no2": (40, 90, 120, 230, 340),
    "o3": (50, 100, 130, 240, 380),
}
POLLUTANTS = tuple(BANDS)


@dataclass(frozen=True)
class Station:
    id: str
    district: str
    concentrations: dict[str, float]


def assess_air(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    try:
        city_id = require_text(request.get("cityId"), "cityId")
        stations = require_items(request.get("stations"), "stations", _parse_station)
        require_distinct((station.id for station in stations), "stations", "id")
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    assessed = [assess_station(station) for station in stations]
    worst = max(assessed, key=lambda station: station["index"])  # max() keeps the first
    return 200, {
        "cityId": city_id,
        "stations": assessed,
        "worstDistrict": worst["district"],
        "cityIndex": worst["index"],
    }


def assess_station(station: Station) -> dict[str, Any]:
    """The station's index and category: those of its worst pollutant, the dominant one."""
    indices = {p: band_index(p, station.concentrations[p]) for p in POLLUTANTS}
    dominant = max(POLLUTANTS, key=lambda pollutant: indices[pollutant])
    return {
        "id": station.id,
        "district": station.district,
        "index": indices[dominant],
        "category": CATEGORIES[indices[dominant] - 1],
        "dominant": dominant,
    }


def band_index(pollutant: str, concentration: float) -> int:
    """1 to 6: one more than the number of band limits the concentration is above."""
    return 1 + sum(concentration > limit for limit in BANDS[pollutant])


def _parse_station(station: dict[str, Any], field: str) -> Station:
    return Station(
        id=require_text(station.get("id"), f"{field}.id"),
        district=require_text(station.get("district"), f"{field}.district"),
        concentrations={
            p: require_number(station.get(p), f"{field}.{p}", minimum=0) for p in POLLUTANTS
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, assess_air, args)


if __name__ == "__main__":
    main()
