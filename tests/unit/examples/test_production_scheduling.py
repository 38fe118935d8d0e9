"""production-scheduling: batches placed on the device that finishes them first, within the
shift, and malformed requests refused."""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp
import pytest
from finance.serving import build_step_app
from manufacturing import production_scheduling

from tests.unit.examples.conftest import Serve

PRESSES = [{"id": "press-1", "ratePerHour": 120}, {"id": "press-2", "ratePerHour": 100}]


def schedule(orders: list[Any], devices: list[Any], *, shift_hours: float = 8) -> Any:
    request = {"lineId": "line-7", "orders": orders, "devices": devices}
    status, answer = production_scheduling.schedule_production(request, shift_hours=shift_hours)
    assert status == 200, answer
    return answer


def placed(answer: Any) -> list[tuple[str, int, str, int, int]]:
    return [
        (b["batchId"], b["quantity"], b["deviceId"], b["startMinute"], b["endMinute"])
        for b in answer["batches"]
    ]


def test_batches_go_to_the_device_that_finishes_them_first() -> None:
    answer = schedule(
        [{"sku": "GEAR-12", "quantity": 400}, {"sku": "SHAFT-3", "quantity": 150}], PRESSES
    )

    assert answer["shiftMinutes"] == 480
    assert placed(answer) == [
        ("line-7:GEAR-12:1", 100, "press-1", 0, 50),
        ("line-7:GEAR-12:2", 100, "press-2", 0, 60),
        ("line-7:GEAR-12:3", 100, "press-1", 50, 100),
        ("line-7:GEAR-12:4", 100, "press-2", 60, 120),
        ("line-7:SHAFT-3:1", 100, "press-1", 100, 150),
        ("line-7:SHAFT-3:2", 50, "press-2", 120, 150),
    ]
    assert answer["unscheduled"] == []


def test_a_batch_takes_whole_minutes_rounded_up() -> None:
    answer = schedule([{"sku": "PIN-1", "quantity": 7}], [{"id": "lathe", "ratePerHour": 80}])

    assert placed(answer) == [("line-7:PIN-1:1", 7, "lathe", 0, 6)]  # 5.25 minutes


def test_of_equally_fast_devices_the_one_listed_first_is_used_first() -> None:
    twins = [{"id": "b", "ratePerHour": 60}, {"id": "a", "ratePerHour": 60}]

    answer = schedule([{"sku": "X", "quantity": 200}], twins)

    assert [b["deviceId"] for b in answer["batches"]] == ["b", "a"]


def test_what_does_not_fit_in_the_shift_is_left_unscheduled_with_the_reason() -> None:
    orders = [{"sku": "GEAR-12", "quantity": 250}, {"sku": "SHAFT-3", "quantity": 30}]

    answer = schedule(orders, [{"id": "press-1", "ratePerHour": 60}], shift_hours=2)

    assert [b["batchId"] for b in answer["batches"]] == ["line-7:GEAR-12:1"]
    assert answer["unscheduled"] == [
        {"sku": "GEAR-12", "quantity": 150, "reason": "does not fit in the 120-minute shift"},
        {"sku": "SHAFT-3", "quantity": 30, "reason": "does not fit in the 120-minute shift"},
    ]


def test_without_a_device_every_order_is_unscheduled_rather_than_refused() -> None:
    answer = schedule([{"sku": "GEAR-12", "quantity": 10}], [])

    assert answer["batches"] == []
    assert answer["unscheduled"] == [{"sku": "GEAR-12", "quantity": 10, "reason": "no device"}]


def test_a_device_so_slow_that_no_batch_fits_is_not_an_error() -> None:
    answer = schedule([{"sku": "X", "quantity": 1}], [{"id": "d", "ratePerHour": 5e-324}])

    assert answer["unscheduled"][0]["quantity"] == 1


def test_the_devices_other_fields_such_as_their_readings_are_ignored() -> None:
    device = {"id": "press-1", "ratePerHour": 120, "readings": {"temperatureC": 60}}

    answer = schedule([{"sku": "X", "quantity": 1}], [device])

    assert answer["batches"][0]["deviceId"] == "press-1"


ORDER = {"sku": "GEAR-12", "quantity": 10}


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"lineId": "l", "orders": [], "devices": PRESSES}, "orders", "must be a non-empty list"),
        (
            {"lineId": "l", "orders": [ORDER, {"sku": "gear 12", "quantity": 1}], "devices": []},
            "orders[1].sku",
            "must be 1 to 32 capital letters, digits or dashes",
        ),
        (
            {"lineId": "l", "orders": [ORDER | {"quantity": 2.5}], "devices": []},
            "orders[0].quantity",
            "must be a positive whole number",
        ),
        (
            {"lineId": "l", "orders": [ORDER, ORDER], "devices": []},
            "orders[1].sku",
            "repeats 'GEAR-12'",
        ),
        (
            {"lineId": "l", "orders": [ORDER]},
            "devices",
            "must be a list (empty when no device is fit to run)",
        ),
        (
            {"lineId": "l", "orders": [ORDER], "devices": [{"id": "press-1"}]},
            "devices[0].ratePerHour",
            "must be a number",
        ),
        (
            {"lineId": "l", "orders": [ORDER], "devices": [{"id": "p", "ratePerHour": 0}]},
            "devices[0].ratePerHour",
            "must be a positive number",
        ),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = production_scheduling.schedule_production(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_with_the_shift_it_was_started_with(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    decide = partial(production_scheduling.schedule_production, shift_hours=6)
    base = await serve(build_step_app(production_scheduling.PATH, decide))
    request = {"lineId": "l", "orders": [ORDER], "devices": PRESSES}

    async with http.post(f"{base}/schedule", json=request) as response:
        assert response.status == 200
        assert (await response.json())["shiftMinutes"] == 360


def test_the_command_line_refuses_a_shift_longer_than_a_day() -> None:
    with pytest.raises(SystemExit):
        production_scheduling.main(["--shift-hours", "25"])
