"""device-monitoring: which of a line's devices are fit to run, from their latest readings.
Deterministic: the same readings always get the same answer.

POST /assess with `{"lineId", "devices": [{"id", "readings": {"temperatureC", "vibrationMmS",
"hoursSinceService"}}]}` answers `{"lineId", "devices": [{"id", "status", "anomalies"}],
"healthy": [ids]}`. Each reading is compared with its limits (see LIMITS): above the critical one
the device is "down", above the warning one "degraded", else "healthy"; a reading not reported is
a warning, since a device nobody can see is not known to be fit. Other fields of a device (its
`ratePerHour`, for the scheduler) are ignored. A malformed request is answered 400 naming the
field.

    python -m manufacturing.device_monitoring --port 9011     # from examples/
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
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

PATH = "/assess"


class Severity(IntEnum):
    """Ordered, so that a device's status is its worst anomaly's."""

    NONE = 0
    WARNING = 1
    CRITICAL = 2


STATUS = {Severity.NONE: "healthy", Severity.WARNING: "degraded", Severity.CRITICAL: "down"}


@dataclass(frozen=True)
class Limit:
    reading: str
    warning: float
    critical: float
    minimum: float | None = None  # below it a reading is malformed, not an anomaly


LIMITS = (
    # Bearing housing temperature: lubricants thin out above 75 °C and fail above 90 °C.
    Limit("temperatureC", warning=75, critical=90),
    # ISO 10816-3 zone boundaries, medium machines on flexible foundations (mm/s RMS): above 4.5
    # only limited operation, above 7.1 vibration damages the machine.
    Limit("vibrationMmS", warning=4.5, critical=7.1, minimum=0),
    # The service interval is 500 running hours; twice that and the device is stopped.
    Limit("hoursSinceService", warning=500, critical=1000, minimum=0),
)


@dataclass(frozen=True)
class Device:
    id: str
    readings: dict[str, float | None]


def assess_devices(request: dict[str, Any], _key: str | None = None) -> tuple[int, Any]:
    try:
        line_id = require_text(request.get("lineId"), "lineId")
        devices = require_items(request.get("devices"), "devices", _parse_device)
        require_distinct((device.id for device in devices), "devices", "id")
    except InvalidFieldError as invalid:
        return 400, invalid.as_answer()
    assessed = [assess_device(device) for device in devices]
    return 200, {
        "lineId": line_id,
        "devices": assessed,
        "healthy": [device["id"] for device in assessed if device["status"] == "healthy"],
    }


def assess_device(device: Device) -> dict[str, Any]:
    """The device's status (its worst anomaly's) and its anomalies, in the order of LIMITS."""
    found = [_compare(limit, device.readings[limit.reading]) for limit in LIMITS]
    anomalies = [(severity, message) for severity, message in found if severity]
    worst = max((severity for severity, _ in anomalies), default=Severity.NONE)
    return {
        "id": device.id,
        "status": STATUS[worst],
        "anomalies": [message for _, message in anomalies],
    }


def _compare(limit: Limit, value: float | None) -> tuple[Severity, str]:
    if value is None:
        return Severity.WARNING, f"{limit.reading} not reported"
    if value > limit.critical:
        return Severity.CRITICAL, f"{limit.reading} {value:g} above the critical {limit.critical:g}"
    if value > limit.warning:
        return Severity.WARNING, f"{limit.reading} {value:g} above the warning {limit.warning:g}"
    return Severity.NONE, ""


def _parse_device(device: dict[str, Any], field: str) -> Device:
    identity = require_text(device.get("id"), f"{field}.id")
    readings = require_object(device.get("readings"), f"{field}.readings")
    return Device(
        id=identity,
        readings={
            limit.reading: _parse_reading(readings.get(limit.reading), limit, f"{field}.readings")
            for limit in LIMITS
        },
    )


def _parse_reading(value: Any, limit: Limit, field: str) -> float | None:
    if value is None:
        return None
    return require_number(value, f"{field}.{limit.reading}", minimum=limit.minimum)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    serve_step(PATH, assess_devices, args)


if __name__ == "__main__":
    main()
