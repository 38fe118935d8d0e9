"""device-monitoring: each device's status from its readings, and malformed requests refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from finance.serving import build_step_app
from manufacturing import device_monitoring

from tests.unit.examples.conftest import Serve

FINE = {"temperatureC": 60, "vibrationMmS": 2.0, "hoursSinceService": 100}


def assess(*readings: dict[str, Any]) -> tuple[int, Any]:
    devices = [{"id": f"dev-{i}", "readings": r} for i, r in enumerate(readings, start=1)]
    return device_monitoring.assess_devices({"lineId": "line-1", "devices": devices})


def test_devices_within_every_limit_are_healthy_and_listed_as_such() -> None:
    status, answer = assess(FINE, FINE)

    assert status == 200
    assert answer == {
        "lineId": "line-1",
        "devices": [
            {"id": "dev-1", "status": "healthy", "anomalies": []},
            {"id": "dev-2", "status": "healthy", "anomalies": []},
        ],
        "healthy": ["dev-1", "dev-2"],
    }


def test_a_reading_above_its_warning_limit_degrades_the_device() -> None:
    _, answer = assess(FINE | {"vibrationMmS": 5.2, "hoursSinceService": 640})

    assert answer["devices"][0] == {
        "id": "dev-1",
        "status": "degraded",
        "anomalies": [
            "vibrationMmS 5.2 above the warning 4.5",
            "hoursSinceService 640 above the warning 500",
        ],
    }
    assert answer["healthy"] == []


def test_the_worst_anomaly_sets_the_status_so_one_critical_reading_takes_it_down() -> None:
    _, answer = assess(FINE | {"temperatureC": 93.5, "vibrationMmS": 5.0})

    assert answer["devices"][0]["status"] == "down"
    assert answer["devices"][0]["anomalies"] == [
        "temperatureC 93.5 above the critical 90",
        "vibrationMmS 5 above the warning 4.5",
    ]


def test_a_reading_exactly_at_its_limit_is_still_within_it() -> None:
    _, answer = assess({"temperatureC": 75, "vibrationMmS": 4.5, "hoursSinceService": 500})

    assert answer["devices"][0]["status"] == "healthy"


def test_a_reading_not_reported_is_a_warning_as_the_device_is_not_known_to_be_fit() -> None:
    _, answer = assess({"temperatureC": 60, "vibrationMmS": 2.0})

    assert answer["devices"][0]["status"] == "degraded"
    assert answer["devices"][0]["anomalies"] == ["hoursSinceService not reported"]


def test_fields_the_monitor_does_not_read_are_ignored() -> None:
    device = {"id": "press-1", "ratePerHour": 120, "readings": FINE, "vendor": "Acme"}

    status, answer = device_monitoring.assess_devices({"lineId": "l", "devices": [device]})

    assert status == 200
    assert answer["healthy"] == ["press-1"]


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        (
            {"devices": [{"id": "d", "readings": FINE}]},
            "lineId",
            "is required (a non-empty string)",
        ),
        ({"lineId": "l", "devices": []}, "devices", "must be a non-empty list"),
        ({"lineId": "l", "devices": ["press-1"]}, "devices[0]", "is required (an object)"),
        (
            {"lineId": "l", "devices": [{"readings": FINE}]},
            "devices[0].id",
            "is required (a non-empty string)",
        ),
        (
            {"lineId": "l", "devices": [{"id": "d"}]},
            "devices[0].readings",
            "is required (an object)",
        ),
        (
            {"lineId": "l", "devices": [{"id": "d", "readings": FINE | {"temperatureC": "hot"}}]},
            "devices[0].readings.temperatureC",
            "must be a number",
        ),
        (
            {"lineId": "l", "devices": [{"id": "d", "readings": FINE | {"vibrationMmS": -1}}]},
            "devices[0].readings.vibrationMmS",
            "must be at least 0",
        ),
        (
            {
                "lineId": "l",
                "devices": [{"id": "d", "readings": FINE}, {"id": "d", "readings": FINE}],
            },
            "devices[1].id",
            "repeats 'd'",
        ),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = device_monitoring.assess_devices(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_with_its_health_and_metrics(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(build_step_app(device_monitoring.PATH, device_monitoring.assess_devices))

    async with http.post(f"{base}/assess", json={"lineId": "l", "devices": []}) as response:
        assert response.status == 400
        assert (await response.json())["field"] == "devices"
    async with http.get(f"{base}/healthz") as response:
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{base}/metrics") as response:
        assert 'step_requests_total{code="400"} 1.0' in await response.text()
