"""quality-inspection: a lot per SKU, passed only when enough parts were measured and all are
within tolerance, and malformed requests refused."""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp
import pytest
from finance.serving import build_step_app
from manufacturing import quality_inspection

from tests.unit.examples.conftest import Serve

GEARS = [
    {"batchId": "l:GEAR-12:1", "sku": "GEAR-12", "quantity": 100, "deviceId": "press-1"},
    {"batchId": "l:GEAR-12:2", "sku": "GEAR-12", "quantity": 100, "deviceId": "press-2"},
]
SHAFTS = [{"batchId": "l:SHAFT-3:1", "sku": "SHAFT-3", "quantity": 50}]
GEAR_SPEC = {"sku": "GEAR-12", "nominalMm": 12.0, "toleranceMm": 0.05}
SHAFT_SPEC = {"sku": "SHAFT-3", "nominalMm": 30.0, "toleranceMm": 0.1}


def inspect(batches: list[Any], measurements: list[Any], *, sample_rate: float = 0.01) -> Any:
    request = {"lineId": "l", "batches": batches, "measurements": measurements}
    status, answer = quality_inspection.inspect_quality(request, sample_rate=sample_rate)
    assert status == 200, answer
    return answer


def test_a_lot_with_enough_parts_all_within_tolerance_passes() -> None:
    answer = inspect(GEARS, [GEAR_SPEC | {"samplesMm": [12.01, 11.98]}])

    assert answer == {
        "lineId": "l",
        "verdict": "pass",
        "lots": [
            {
                "sku": "GEAR-12",
                "batchIds": ["l:GEAR-12:1", "l:GEAR-12:2"],
                "quantity": 200,
                "samplesRequired": 2,
                "samplesMeasured": 2,
                "verdict": "pass",
                "reasons": [],
            }
        ],
    }


def test_one_part_out_of_tolerance_fails_its_lot_and_the_shift() -> None:
    measurements = [
        GEAR_SPEC | {"samplesMm": [12.01, 11.98]},
        SHAFT_SPEC | {"samplesMm": [30.12]},
    ]

    answer = inspect(GEARS + SHAFTS, measurements)

    assert answer["verdict"] == "fail"
    assert [(lot["sku"], lot["verdict"]) for lot in answer["lots"]] == [
        ("GEAR-12", "pass"),
        ("SHAFT-3", "fail"),
    ]
    assert answer["lots"][1]["reasons"] == ["sample 1: 30.12 mm is outside 30 ± 0.1 mm"]


def test_a_part_measured_exactly_at_the_limit_is_within_tolerance() -> None:
    answer = inspect(GEARS, [GEAR_SPEC | {"samplesMm": [12.05, 11.95]}])

    assert answer["verdict"] == "pass"


def test_too_few_parts_measured_fails_the_lot_whatever_they_measured() -> None:
    answer = inspect(GEARS, [GEAR_SPEC | {"samplesMm": [12.0]}], sample_rate=0.07)

    (lot,) = answer["lots"]
    assert (lot["samplesRequired"], lot["verdict"]) == (14, "fail")
    assert lot["reasons"] == ["1 of 14 required parts measured"]


def test_a_lot_nobody_measured_fails_and_measurements_of_other_skus_are_ignored() -> None:
    answer = inspect(SHAFTS, [GEAR_SPEC | {"samplesMm": [12.0, 12.0]}])

    (lot,) = answer["lots"]
    assert lot["sku"] == "SHAFT-3"
    assert lot["reasons"] == ["no measurements of SHAFT-3"]
    assert lot["samplesMeasured"] == 0


BATCH = {"batchId": "b-1", "sku": "GEAR-12", "quantity": 100}
MEASURED = GEAR_SPEC | {"samplesMm": [12.0]}


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        (
            {"lineId": "l", "batches": [], "measurements": [MEASURED]},
            "batches",
            "must be a non-empty list",
        ),
        (
            {"lineId": "l", "batches": [BATCH | {"quantity": 0}], "measurements": [MEASURED]},
            "batches[0].quantity",
            "must be a positive whole number",
        ),
        (
            {"lineId": "l", "batches": [BATCH, BATCH], "measurements": [MEASURED]},
            "batches[1].batchId",
            "repeats 'b-1'",
        ),
        ({"lineId": "l", "batches": [BATCH]}, "measurements", "must be a non-empty list"),
        (
            {"lineId": "l", "batches": [BATCH], "measurements": [MEASURED | {"samplesMm": 12.0}]},
            "measurements[0].samplesMm",
            "must be a list of numbers",
        ),
        (
            {
                "lineId": "l",
                "batches": [BATCH],
                "measurements": [MEASURED | {"samplesMm": [12, None]}],
            },
            "measurements[0].samplesMm[1]",
            "must be a number",
        ),
        (
            {"lineId": "l", "batches": [BATCH], "measurements": [MEASURED | {"toleranceMm": -0.1}]},
            "measurements[0].toleranceMm",
            "must be a positive number",
        ),
        (
            {"lineId": "l", "batches": [BATCH], "measurements": [MEASURED, MEASURED]},
            "measurements[1].sku",
            "repeats 'GEAR-12'",
        ),
    ],
)
def test_a_malformed_request_is_answered_400_naming_the_field_and_the_reason(
    request_body: dict[str, Any], field: str, reason: str
) -> None:
    status, answer = quality_inspection.inspect_quality(request_body)

    assert status == 400
    assert answer == {"error": f"{field} {reason}", "field": field, "reason": reason}


async def test_the_service_answers_over_http_with_the_sample_rate_it_was_started_with(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    decide = partial(quality_inspection.inspect_quality, sample_rate=0.5)
    base = await serve(build_step_app(quality_inspection.PATH, decide))
    request = {"lineId": "l", "batches": [BATCH], "measurements": [MEASURED]}

    async with http.post(f"{base}/inspect", json=request) as response:
        assert response.status == 200
        (lot,) = (await response.json())["lots"]
        assert lot["samplesRequired"] == 50


@pytest.mark.parametrize("rate", ["0", "1.5", "-0.1"])
def test_the_command_line_refuses_a_sample_rate_outside_zero_to_one(rate: str) -> None:
    with pytest.raises(SystemExit):
        quality_inspection.main(["--sample-rate", rate])
