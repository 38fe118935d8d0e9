"""quality-inspection: pass or fail each lot of a shift's production, from the scheduled batches
and the sample measurements. Deterministic: the same request always gets the same verdicts.

POST /inspect with `{"lineId", "batches": [{"batchId", "sku", "quantity"}], "measurements":
[{"sku", "nominalMm", "toleranceMm", "samplesMm": [numbers]}]}` answers `{"lineId", "verdict":
"pass"|"fail", "lots": [{"sku", "batchIds", "quantity", "samplesRequired", "samplesMeasured",
"verdict", "reasons"}]}`. A lot is every batch of one SKU (the batches' other fields, such as the
device and the minutes, are ignored). It passes when at least `sample rate * quantity` parts
(rounded up) were measured and every one of them is within nominal ± tolerance — an acceptance
number of zero, the usual plan for a critical dimension. The shift passes when every lot does.
A lot without measurements fails; measurements of a SKU not scheduled are ignored. A failed lot
is a 200 with verdict "fail" — a business answer, not an error; a malformed request is answered
400 naming the field.

    python -m manufacturing.quality_inspection --port 9013 --sample-rate 0.01    # from examples/
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from finance.serving import build_parser, serve_step

from manufacturing.parsing import (
    InvalidFieldError,
    number_between,
    require_distinct,
    require_items,
    require_number,
    require_positive_number,
    require_positive_whole,
    require_text,
)

PATH = "/inspect"
SAMPLE_RATE = 0.01  # one part in a hundred is measured
# Rates and measurements are decimals computed in binary floating point; rounding to this many
# places keeps 7% of 100 parts at 7 samples (not 8) and a part measured exactly at the limit
# (12.05 for 12.00 ± 0.05) in tolerance.
DECIMALS = 6


@dataclass(frozen=True)
class Batch:
    id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class Measurement:
    sku: str
    nominal_mm: float
    tolerance_mm: float
    samples_mm: tuple[float, ...]


def inspect_quality(
    request: dict[str, Any], _key: str | None = None, *, sample_rate: float = SAMPLE_RATE
) -> tuple[int, Any]:
    try:
        line_id = require_text(request.get("lineId"), "lineId")
        batches = require_items(request.get("batches"), "batches", _parse_batch)
        require_distinct((batch.id for batch in batches), "batches", "batchId")
        measurements = require_items(
            request.get("measurements"), "measurements", _parse_measurement
        )
        require_distinct((measurement.sku for measurement in measurements), "measurements", "sku")
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    by_sku = {measurement.sku: measurement for measurement in measurements}
    skus = dict.fromkeys(batch.sku for batch in batches)  # in the order first scheduled
    lots = [
        inspect_lot([b for b in batches if b.sku == sku], by_sku.get(sku), sample_rate=sample_rate)
        for sku in skus
    ]
    passed = all(lot["verdict"] == "pass" for lot in lots)
    return 200, {"lineId": line_id, "verdict": "pass" if passed else "fail", "lots": lots}


def inspect_lot(
    batches: Sequence[Batch], measurement: Measurement | None, *, sample_rate: float
) -> dict[str, Any]:
    """The verdict on the batches of one SKU, with the reasons it failed."""
    sku = batches[0].sku
    quantity = sum(batch.quantity for batch in batches)
    required = math.ceil(round(quantity * sample_rate, DECIMALS))
    if measurement is None:
        measured, reasons = 0, [f"no measurements of {sku}"]
    else:
        measured, reasons = len(measurement.samples_mm), _out_of_tolerance(measurement)
        if measured < required:
            reasons.insert(0, f"{measured} of {required} required parts measured")
    return {
        "sku": sku,
        "batchIds": [batch.id for batch in batches],
        "quantity": quantity,
        "samplesRequired": required,
        "samplesMeasured": measured,
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
    }


def _out_of_tolerance(measurement: Measurement) -> list[str]:
    nominal, tolerance = measurement.nominal_mm, measurement.tolerance_mm
    return [
        f"sample {number}: {sample:g} mm is outside {nominal:g} ± {tolerance:g} mm"
        for number, sample in enumerate(measurement.samples_mm, start=1)
        if round(abs(sample - nominal), DECIMALS) > tolerance
    ]


def _parse_batch(batch: dict[str, Any], field: str) -> Batch:
    return Batch(
        id=require_text(batch.get("batchId"), f"{field}.batchId"),
        sku=require_text(batch.get("sku"), f"{field}.sku"),
        quantity=require_positive_whole(batch.get("quantity"), f"{field}.quantity"),
    )


def _parse_measurement(measurement: dict[str, Any], field: str) -> Measurement:
    samples = measurement.get("samplesMm")
    if not isinstance(samples, list):
        raise InvalidFieldError(f"{field}.samplesMm", "must be a list of numbers")
    return Measurement(
        sku=require_text(measurement.get("sku"), f"{field}.sku"),
        nominal_mm=require_positive_number(measurement.get("nominalMm"), f"{field}.nominalMm"),
        tolerance_mm=require_positive_number(
            measurement.get("toleranceMm"), f"{field}.toleranceMm"
        ),
        samples_mm=tuple(
            require_number(sample, f"{field}.samplesMm[{i}]", minimum=0)
            for i, sample in enumerate(samples)
        ),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--sample-rate",
        type=number_between(0, 1),
        default=os.environ.get("SAMPLE_RATE", str(SAMPLE_RATE)),
        help=f"share of each lot's parts measured (default: $SAMPLE_RATE, else {SAMPLE_RATE:g})",
    )
    args = parser.parse_args(argv)
    decide = partial(inspect_quality, sample_rate=args.sample_rate)
    serve_step(PATH, decide, args)


if __name__ == "__main__":
    main()
