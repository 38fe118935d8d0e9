"""air-quality: each station's index on the European Air Quality Index (its worst pollutant's),
the city's worst station, and malformed requests refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from city import air_quality
from finance.serving import build_step_app

from tests.unit.examples.conftest import Serve

CLEAN = {"pm25": 5, "pm10": 10, "no2": 20, "o3": 30}


def station(identity: str, district: str, **concentrations: float) -> dict[str, Any]:
    return {"id": identity, "district": district} | CLEAN | concentrations


def assess(*stations: dict[str, Any]) -> Any:
    status, answer = air_quality.assess_air({"cityId": "c", "stations": list(stations)})
    assert status == 200, answer
    return answer


def test_the_worst_pollutant_sets_the_stations_index_and_the_worst_station_the_citys() -> None:
    answer = assess(
        station("st-1", "old-town"),
        station("st-2", "harbour", no2=95, pm25=14),
        station("st-3", "campus", o3=55),
    )

    assert answer == {
        "cityId": "c",
        "stations": [
            {"id": "st-1", "district": "old-town", "index": 1, "category": "good",
             "dominant": "pm25"},
            {"id": "st-2", "district": "harbour", "index": 3, "category": "moderate",
             "dominant": "no2"},
            {"id": "st-3", "district": "campus", "index": 2, "category": "fair",
             "dominant": "o3"},
        ],
        "worstDistrict": "harbour",
        "cityIndex": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("pollutant", "concentration", "index"),
    [
        ("pm25", 10, 1),  # exactly at a band's upper limit is still in the band
        ("pm25", 10.1, 2),
        ("pm25", 25, 3),
        ("pm25", 50, 4),
        ("pm25", 75, 5),
        ("pm25", 75.5, 6),
        ("pm10", 150.5, 6),
        ("no2", 120, 3),
        ("no2", 230.5, 5),
        ("o3", 240, 4),
        ("o3", 1000, 6),  # beyond the table's top: still the worst band
    ],
)
def test_each_pollutant_falls_in_its_band(pollutant: str, concentration: float, index: int) -> None:
    assert air_quality.band_index(pollutant, concentration) == index


def test_of_equally_bad_pollutants_the_first_in_a_fixed_order_is_dominant() -> None:
    (assessed,) = assess(station("s", "d", pm10=45, o3=120))["stations"]

    assert (assessed["index"], assessed["dominant"]) == (3, "pm10")


def test_of_equally_bad_stations_the_first_listed_gives_the_worst_district() -> None:
    answer = assess(station("a", "north", no2=100), station("b", "south", pm25=22))

    assert (answer["worstDistrict"], answer["cityIndex"]) == ("north", 3)


def test_the_categories_run_from_good_to_extremely_poor() -> None:
    indices = [air_quality.band_index("pm10", value) for value in (0, 30, 45, 80, 120, 200)]

    assert [air_quality.CATEGORIES[index - 1] for index in indices] == [
        "good", "fair", "moderate", "poor", "very-poor", "extremely-poor",
    ]  # fmt: skip


STATION = station("s", "d")


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"cityId": " ", "stations": [STATION]}, "cityId", "is required (a non-empty string)"),
        ({"cityId": "c"}, "stations", "must be a non-empty list"),
        ({"cityId": "c", "stations": [STATION, 7]}, "stations[1]", "is required (an object)"),
        (
            {"cityId": "c", "stations": [STATION | {"id": None}]},
            "stations[0].id",
            "is required (a non-empty string)",
        ),
        (
            {"cityId": "c", "stations": [{k: v for k, v in STATION.items() if k != "no2"}]},
            "stations[0].no2",
            "must be a number",
        ),
        (
            {"cityId": "c", "stations": [STATION | {"pm25": "12"}]},
            "stations[0].pm25",
            "must be a number",
        ),
        (
            {"cityId": "c", "stations": [STATION | {"o3": -0.5}]},
            "stations[0].o3",
            "must be at least 0",
        ),
        ({"cityId": "c", "stations": [STATION, STATION]}, "stations[1].id", "repeats 's'"),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = air_quality.assess_air(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_and_refuses_what_is_not_json(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(build_step_app(air_quality.PATH, air_quality.assess_air))

    async with http.post(f"{base}/air", json={"cityId": "c", "stations": [STATION]}) as got:
        assert got.status == 200
        assert (await got.json())["cityIndex"] == 1
    async with http.post(f"{base}/air", data=b"pm25=12") as got:
        assert got.status == 400
